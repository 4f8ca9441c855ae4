"""The ``lab3`` command line: options, exit codes, ``points`` and ``gradescope``.

Everything here runs in-process through :func:`grader.cli.main` and stops before
any child starts (usage errors), or builds the Gradescope zip from a stand-in set
of reference records, so the file costs about a second.
"""

from __future__ import annotations

import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from grader import cli
from grader.batch import grade_batch
from grader.points import CHECKS, TOTAL_POINTS
from grader.records import Record
from grader.reference_records import ReferenceRecords
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
    import grader.reference_records as reference_records

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
    assert "grader/cli.py" in names and "grader/batch.py" in names
    assert "fixtures/images/manifest.json" in names
    assert "student_template/answers.md" in names
    assert "constraints.txt" in names and "pyproject.toml" in names
    assert not [n for n in names if n.startswith("reference/")]
    assert not [n for n in names if n.endswith(".pyc")]
    shipped = [n for n in names if n.startswith("grader/reference_records/standin-v2/")]
    assert "grader/reference_records/standin-v2/meta.json" in shipped
    assert len([n for n in shipped if n.endswith(".json")]) == len(TASK_NAMES) + 1
    assert "lab3 grade /autograder/submission" in run and "--weights standin" in run
    assert "/autograder/results/results.json" in run
    assert "-c /autograder/source/constraints.txt -e /autograder/source" in setup
    for script in (run, setup):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)
