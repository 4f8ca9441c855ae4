"""``lab3 release``: the student distribution holds no solution and still grades itself.

The release is built once into a temporary folder. Inside it the grader runs in a
subprocess started with ``python -S`` (no site initialisation, so no ``.pth`` file or
editable-install finder can put the instructor's repository on the path) and
``PYTHONPATH=<release>:<site-packages>``, with a private ``LAB3_CACHE_DIR`` so the
machine's cached reference records cannot stand in for missing shipped ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from grader.distribute.release import (
    HIDDEN_RECORD_DATA,
    PROJECT_ROOT,
    _reference_fingerprints,
    audit_release,
    build_release,
)
from grader.points import CHECKS, TOTAL_POINTS
from grader.probe.records import Record
from tests.harness.table import task_points

REFERENCE = PROJECT_ROOT / "reference"
HIDDEN = [c for c in CHECKS if c.hidden]
VISIBLE_POINTS = TOTAL_POINTS - sum(c.points for c in HIDDEN)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release, built under umask 077 (an instructor's strictest) to show its own modes."""
    folder = tmp_path_factory.mktemp("release")
    umask = os.umask(0o077)
    try:
        out, described = build_release(folder / "lab3")
    finally:
        os.umask(umask)
    assert described and all(d.startswith("reference records: ") for d in described)
    return out


@pytest.fixture(scope="module")
def student_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAB3_", "PYTEST_", "PYTHON"))}
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env["LAB3_SITE"] = os.pathsep.join(paths)
    env["LAB3_CACHE_DIR"] = str(tmp_path_factory.mktemp("student-cache"))
    env["MPLBACKEND"] = "Agg"
    return env


def run_in(folder: Path, env: dict[str, str], *args: str, timeout: float = 600,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -S *args`` in ``cwd`` (default: ``folder``) with only ``folder`` and
    site-packages on the path."""
    env = dict(env, PYTHONPATH=os.pathsep.join([str(folder), env["LAB3_SITE"]]))
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd or folder, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def pytest_in(folder: Path, env: dict[str, str], *args: str, cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    return run_in(folder, env, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, cwd=cwd)


def total_line(output: str) -> str:
    match = re.search(r"^total\s+(\S+)$", output, re.M)
    assert match, output[-3000:]
    return match.group(1)


def test_release_layout(release: Path) -> None:
    top = sorted(p.name for p in release.iterdir())
    assert top == ["Makefile", "README.md", "conftest.py", "constraints.txt", "fixtures",
                   "grader", "pyproject.toml", "student_template", "tests"]
    assert sorted(p.name for p in (release / "tests").iterdir()) == ["lab"]
    assert not (release / "grader" / "distribute" / "release.py").exists()
    records = release / "grader" / "refdata" / "reference_records" / "standin-v2"
    assert (records / "meta.json").is_file()
    assert 'include = ["student_template*", "grader*"]' in (release / "pyproject.toml").read_text()
    makefile = (release / "Makefile").read_text()
    assert "--impl $(IMPL)" in makefile and "reference" not in makefile
    readme = (release / "README.md").read_text()
    assert f"**{VISIBLE_POINTS:g}** points" in readme and "{" not in readme


def test_release_is_readable_by_everyone_writable_by_its_owner(release: Path) -> None:
    modes = {p.relative_to(release).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
             for p in [release, *release.rglob("*")]}
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o755 if (release / name).is_dir() else 0o644)}
    assert not wrong, wrong


def test_audit_finds_nothing_in_release(release: Path) -> None:
    assert audit_release(release) == []


def test_audit_looks_for_reference_bodies() -> None:
    code, answers = _reference_fingerprints()
    by_file = {p.stem: p.read_text() for p in REFERENCE.glob("*.py")}
    for module in ("integrated_gradients", "filters", "noise_tunnel", "comparison"):
        assert any(line in by_file[module] for line in code), module
    assert answers, "no line of reference/answers.md is looked for"


@pytest.mark.parametrize("leak", ["body", "answer", "pyc", "hidden_name"])
def test_audit_catches_leaks(leak: str, tmp_path: Path) -> None:
    code, answers = _reference_fingerprints()
    (tmp_path / "ok.txt").write_text("nothing to see\n")
    if leak == "body":
        (tmp_path / "notes.json").write_text(json.dumps({"x": code[0]}))
    elif leak == "answer":
        (tmp_path / "answers.md").write_text(answers[0])
    elif leak == "pyc":
        (tmp_path / "mod.cpython-311.pyc").write_bytes(b"\0")
    else:
        (tmp_path / "points.py").write_text(f"# {HIDDEN[0].name}\n")
    assert len(audit_release(tmp_path)) == 1


def test_no_reference_code_or_compiled_files(release: Path) -> None:
    names = {p.name for p in release.rglob("*")}
    assert "__pycache__" not in names and "__snapshots__" not in names
    assert not [p for p in release.rglob("*") if p.suffix in (".pyc", ".pyo")]
    ref_modules = {p.read_text() for p in REFERENCE.glob("*.py") if p.stat().st_size > 200}
    for path in release.rglob("*.py"):
        assert path.read_text() not in ref_modules, path


def test_hidden_checks_absent(release: Path) -> None:
    assert HIDDEN, "no hidden check in grader/points.py: this test guards nothing"
    for path in release.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            for check in HIDDEN:
                assert check.name not in text, path


def test_hidden_probing_cut_from_the_probe(release: Path) -> None:
    for check in HIDDEN:
        source = (release / "grader" / "tasks" / f"{check.task}.py").read_text()
        key, prefix = HIDDEN_RECORD_DATA[check.id]
        assert f"probe_{check.name}" not in source
        assert f'"{key}"' not in source and f'f"{prefix}' not in source


def test_hidden_folder_left_out_whole(release: Path) -> None:
    """The hidden checks live in grader/hidden/, which the release leaves out; nothing else of
    the grader is edited for them (its task modules are copied as they are)."""
    assert (PROJECT_ROOT / "grader" / "hidden" / "__init__.py").is_file()
    assert not (release / "grader" / "hidden").exists()
    for check in HIDDEN:
        path = Path("grader") / "tasks" / f"{check.task}.py"
        assert (release / path).read_text() == (PROJECT_ROOT / path).read_text(), path


def test_release_totals_the_hidden_points_without_them(release: Path,
                                                       student_env: dict[str, str]) -> None:
    probe = ("from grader.points import CHECKS, HIDDEN_INCLUDED, release_hidden_points, "
             "total_points; print(HIDDEN_INCLUDED, sum(c.hidden for c in CHECKS), "
             "f'{sum(c.points for c in CHECKS):g}', f'{release_hidden_points():g}', "
             "f'{total_points():g}')")
    result = run_in(release, student_env, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", f"{VISIBLE_POINTS:g}",
                                     f"{TOTAL_POINTS - VISIBLE_POINTS:g}", f"{TOTAL_POINTS:g}"]


def test_audit_catches_a_hidden_folder(tmp_path: Path) -> None:
    (tmp_path / "grader" / "hidden").mkdir(parents=True)
    assert audit_release(tmp_path) == ["grader/hidden/ is present"]


def test_hidden_inputs_stripped_from_records(release: Path) -> None:
    folder = release / "grader" / "refdata" / "reference_records" / "standin-v2"
    for check in HIDDEN:
        key, prefix = HIDDEN_RECORD_DATA[check.id]
        record = Record.load(folder, check.task)
        assert key not in record.data
        assert not [k for k in record.tensors if k.startswith(prefix)]
        assert not [k for k in record.data.get("calls", {}) if k.startswith(prefix)]
    kinds = {e["kind"] for e in json.loads(
        (release / "fixtures" / "images" / "manifest.json").read_text())["images"]}
    assert kinds == {"photo"}


def test_reference_answers_stripped(release: Path) -> None:
    record = Record.load(release / "grader" / "refdata" / "reference_records" / "standin-v2", "answers")
    assert record.data["answers"] and set(record.data["answers"].values()) == {""}


def test_reference_not_importable_inside(release: Path, student_env: dict[str, str]) -> None:
    probe = ("import importlib.util, grader, sys; "
             "print(importlib.util.find_spec('reference'), grader.__file__)")
    result = run_in(release, student_env, "-c", probe)
    assert result.returncode == 0, result.stderr
    spec, grader_file = result.stdout.split()
    assert spec == "None"
    assert Path(grader_file).is_relative_to(release)


def test_template_scores_zero_inside(release: Path, student_env: dict[str, str]) -> None:
    result = pytest_in(release, student_env, "--impl", "student_template")
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert total_line(out) == f"0/{VISIBLE_POINTS:g}"
    assert "from shipped" in out
    assert f"further checks worth {TOTAL_POINTS - VISIBLE_POINTS:g} points run" in out
    assert "not implemented yet" in out
    assert not [c for c in HIDDEN if c.name in out]


def test_conftest_loads_the_grader_where_the_release_is_not_installed(
    release: Path, student_env: dict[str, str]
) -> None:
    """No entry point (nothing pip-installed): the release's conftest.py registers the plugin."""
    env = dict(student_env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    result = pytest_in(release, env, "--impl", "student_template", "-k", "model")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert total_line(result.stdout) == f"0/{task_points('model'):g}"
    assert "from shipped" in result.stdout


def test_readme_command_from_another_folder(release: Path, student_env: dict[str, str],
                                            tmp_path: Path) -> None:
    """README: `path/to/lab3/.venv/bin/pytest --impl ../my_lab3` from any folder."""
    readme = (release / "README.md").read_text()
    assert "path/to/lab3/.venv/bin/pytest --impl ../my_lab3" in readme
    shutil.copytree(release / "student_template", tmp_path / "my_lab3")
    (tmp_path / "cwd").mkdir()
    results = tmp_path / "results.json"
    result = pytest_in(release, student_env, "--impl", "../my_lab3", "-k", "model",
                       "--results", str(results), cwd=tmp_path / "cwd")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert total_line(result.stdout) == f"0/{task_points('model'):g}"
    assert "from shipped" in result.stdout
    assert json.loads(results.read_text())["output"].startswith(f"my_lab3: 0 / {task_points('model'):g}")


@pytest.fixture(scope="module")
def solved_release(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the release with the reference's modules copied in by hand."""
    solved = tmp_path_factory.mktemp("solved") / "lab3"
    shutil.copytree(release, solved)
    for path in REFERENCE.iterdir():
        if path.suffix in (".py", ".md"):
            shutil.copy2(path, solved / "student_template" / path.name)
    return solved


@pytest.mark.slow
def test_solution_scores_visible_maximum_inside(solved_release: Path,
                                               student_env: dict[str, str]) -> None:
    result = pytest_in(solved_release, student_env, "--impl", "student_template")
    assert result.returncode == 0, result.stdout[-3000:]
    assert total_line(result.stdout) == f"{VISIBLE_POINTS:g}/{VISIBLE_POINTS:g}"


def test_unshipped_weights_fall_back_to_standin(solved_release: Path, tmp_path: Path,
                                                student_env: dict[str, str]) -> None:
    import torch
    from torchvision.models import resnet34

    torch.manual_seed(0)
    checkpoint = tmp_path / "course_weights.pth"
    torch.save(resnet34().state_dict(), checkpoint)
    result = pytest_in(solved_release, student_env, "--impl", "student_template",
                       "--weights", str(checkpoint), "-k", "preprocessing")
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    notes = [line for line in out.splitlines() if "grading with the stand-in" in line]
    assert len(notes) == 1, out[-3000:]
    assert "reference records: standin-v2" in out


def test_release_builds_a_wheel_without_reference(release: Path, tmp_path: Path) -> None:
    """`pip install .` in the release: its packages are the grader and the template only."""
    pytest.importorskip("setuptools")
    import zipfile

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(release), "-w", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"grader", "student_template",
                                                "lab3-0.1.0.dist-info"}
    assert "grader/refdata/reference_records/standin-v2/meta.json" in names


def test_cli_refuses_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from grader.cli import main

    (tmp_path / "keep.txt").write_text("mine")
    assert main(["release", str(tmp_path)]) == 1
    assert "not empty (--force replaces it)" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
