"""The ``lab3`` command line: options, exit codes, ``points`` and ``gradescope``.

Everything here runs in-process through :func:`grader.cli.main` and stops before
any child starts (usage errors), or builds the Gradescope zip from a stand-in set
of reference records, so the file costs about a second.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import cli
from grader.points import CHECKS, TOTAL_POINTS
from grader.probe.records import Record
from grader.refdata.reference_records import ReferenceRecords
from grader.run.batch import grade_batch
from grader.tasks import TASK_NAMES


@pytest.mark.parametrize("argv", [
    [],
    ["grade"],
    ["grade", "reference"],  # --out is required
    ["grade", "reference", "--out", "x", "-j", "0"],
    ["grade", "reference", "--out", "x", "--timeout", "-5"],
    ["grade", "reference", "--out", "x", "--memory", "100"],
    ["grade", "reference", "--out", "x", "--sandbox", "docker"],
    ["grade", "reference", "--out", "x", "--tasks", "model,nonsense"],
    ["grade", "reference", "--out", "x", "--weights", "/no/such/weights.pth"],
    ["frobnicate"],
], ids=["nothing", "no-submission", "no-out", "jobs-0", "negative-timeout", "tiny-memory",
        "unknown-sandbox", "unknown-task", "missing-weights", "unknown-command"])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_no_existing_submission_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["grade", str(tmp_path / "nobody"), str(tmp_path / "nobody.zip"),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no submission found" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["grade", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--out", "--jobs", "--timeout", "--task-timeout", "--memory", "--sandbox",
                   "--weights", "--force"):
        assert option in text


# Every command's --help, in a fresh interpreter that reports whether torch got imported.
HELP_IMPORTS = """
import json, sys
from grader.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""
COMMANDS = ["grade", "gradescope", "release", "notebook", "points"]


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in COMMANDS)],
                         ids=["lab3", *COMMANDS])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    """--help answers at once: importing torch alone takes seconds."""
    run = subprocess.run([sys.executable, "-c", HELP_IMPORTS, *argv], capture_output=True,
                         text=True, check=True, timeout=120)
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "torch": False}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_describes_itself_in_its_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, "--help"]) == 0
    after_usage = capsys.readouterr().out.split("\n\n")[1]
    assert not after_usage.startswith(("options:", "positional arguments:")), after_usage


def test_grade_defaults_are_grade_batchs_without_importing_it() -> None:
    assert cli.grade_defaults() == grade_batch.__kwdefaults__


def test_option_defaults_come_from_grade_batch() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["grade", "reference", "--out", "x"])
    for name, default in grade_batch.__kwdefaults__.items():
        if hasattr(args, name):
            assert getattr(args, name) == default, name


def test_points_prints_the_table_as_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["points"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("| Task | Check | Points |")
    for check in CHECKS:
        assert f"`{check.name}`" in text
    assert f"**{TOTAL_POINTS:g}**" in text.splitlines()[-1]


@pytest.fixture
def fake_reference(monkeypatch: pytest.MonkeyPatch) -> ReferenceRecords:
    """Tiny stand-in reference records, so building the zip needs no probing."""
    import grader.refdata.reference_records as reference_records

    records = ReferenceRecords(
        records={t: Record(task=t, data={"calls": {}}) for t in TASK_NAMES},
        source="cache", meta={"weights_id": "standin-v2", "settings": {}})
    monkeypatch.setattr(reference_records, "load_reference_records",
                        lambda *args, **kwargs: records)
    return records


def test_gradescope_zip_has_the_scripts_and_no_reference_code(
    tmp_path: Path, fake_reference: ReferenceRecords, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "autograder.zip"
    assert cli.main(["gradescope", str(target), "--weights", "standin"]) == 0
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        infos = {i.filename: i for i in archive.infolist()}
        run = archive.read("run_autograder").decode()
        setup = archive.read("setup.sh").decode()
    for script in ("setup.sh", "run_autograder"):
        assert stat.S_IMODE(infos[script].external_attr >> 16) & 0o111, script
    assert "grader/cli.py" in names and "grader/run/batch.py" in names
    assert "fixtures/images/manifest.json" in names
    assert "student_template/answers.md" in names
    assert "constraints.txt" in names and "pyproject.toml" in names
    assert not [n for n in names if n.startswith("reference/")]
    assert not [n for n in names if n.endswith(".pyc")]
    shipped = [n for n in names if n.startswith("grader/refdata/reference_records/standin-v2/")]
    assert "grader/refdata/reference_records/standin-v2/meta.json" in shipped
    assert len([n for n in shipped if n.endswith(".json")]) == len(TASK_NAMES) + 1
    assert "lab3 grade /autograder/submission" in run and "--weights standin" in run
    assert "/autograder/results/results.json" in run
    assert "-c /autograder/source/constraints.txt -e /autograder/source" in setup
    for script in (run, setup):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_gradescope_zip_carries_the_course_secret_and_its_graded_records(
    tmp_path: Path, fake_reference: ReferenceRecords, course_secret: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The autograder grades the graded variant, like lab3 grade: the records it ships are
    # asked for with the graded settings of the secret it carries.
    import grader.refdata.reference_records as reference_records
    from grader.run.variant import course_settings

    asked = []
    monkeypatch.setattr(reference_records, "load_reference_records",
                        lambda weights, settings, **kw: asked.append(settings) or fake_reference)
    target = tmp_path / "autograder.zip"
    assert cli.main(["gradescope", str(target), "--weights", "standin"]) == 0
    with zipfile.ZipFile(target) as archive:
        carried = archive.read(".lab3/course-secret")
    assert carried == course_secret.read_bytes()
    assert asked == [course_settings(course_secret)]
    assert asked[0].variant.startswith("graded-")


def fake_command(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho \"{name} $*\" >> \"$CALLS\"\n{script}\n")
    path.chmod(0o755)


@pytest.fixture
def setup_sh(tmp_path: Path, fake_reference: ReferenceRecords) -> Path:
    """The zip's setup.sh, run below with stand-ins for apt-get and Python on PATH only."""
    target = tmp_path / "autograder.zip"
    assert cli.main(["gradescope", str(target), "--weights", "standin"]) == 0
    with zipfile.ZipFile(target) as archive:
        script = tmp_path / "setup.sh"
        script.write_bytes(archive.read("setup.sh"))
    (tmp_path / "bin").mkdir()
    fake_command(tmp_path / "bin", "apt-get", "exit 0")
    return script


def run_setup(script: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    calls = script.parent / "calls.txt"
    calls.touch()
    env = {"PATH": str(script.parent / "bin"), "CALLS": str(calls)}
    run = subprocess.run(["/bin/bash", str(script)], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    return run, calls.read_text()


def test_gradescope_setup_stops_on_python_older_than_311(setup_sh: Path) -> None:
    # Ubuntu 22.04, Gradescope's usual image: python3 is 3.10 and no newer one is there.
    fake_command(setup_sh.parent / "bin", "python3",
                 '[ "$1" = --version ] && echo "Python 3.10.12" && exit 0\nexit 1')
    run, calls = run_setup(setup_sh)
    assert run.returncode == 1
    assert "lab3 needs Python 3.11 or newer; this image has Python 3.10.12." in run.stderr
    assert "Ubuntu 24.04" in run.stderr
    assert "-m venv" not in calls


def test_gradescope_setup_takes_a_newer_python_the_image_has(setup_sh: Path) -> None:
    fake_command(setup_sh.parent / "bin", "python3", "exit 1")  # too old
    fake_command(setup_sh.parent / "bin", "python3.12", "exit 0")
    _, calls = run_setup(setup_sh)
    assert "python3.12 -m venv /autograder/venv" in calls.splitlines()
