"""One exception hierarchy (grader/errors.py), mapped to exit codes once (grader.cli.main)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from grader import cli, errors

GRADER = Path(errors.__file__).resolve().parent
REPO = GRADER.parent
LAB3_ERRORS = [c for c in vars(errors).values()
               if inspect.isclass(c) and issubclass(c, errors.Lab3Error)]


def _exception_classes_outside_errors() -> list[str]:
    found = []
    for path in sorted(GRADER.rglob("*.py")):
        if path == GRADER / "errors.py":
            continue
        # Module level: a function's private control-flow exception is its own business.
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and any(
                    getattr(base, "id", getattr(base, "attr", "")).endswith(
                        ("Error", "Exception", "Interrupted")) for base in node.bases):
                found.append(f"{path.relative_to(REPO)}: class {node.name}")
    return found


def test_every_exception_of_the_grader_is_defined_in_errors_py() -> None:
    assert _exception_classes_outside_errors() == []


@pytest.mark.parametrize("error", LAB3_ERRORS, ids=lambda c: c.__name__)
def test_each_error_has_an_exit_code_and_a_label(error: type[errors.Lab3Error]) -> None:
    assert error.exit_code in (1, 2, 130)
    assert error.label in ("grader problem", "error", "interrupted")


@pytest.mark.parametrize(("error", "code", "label"), [
    (errors.UsageError, 2, "error"),
    (errors.CourseError, 2, "error"),
    (errors.SecretError, 2, "error"),
    (errors.WeightsError, 2, "error"),
    (errors.SandboxError, 2, "error"),
    (errors.GraderError, 1, "grader problem"),
    (errors.ReferenceUnavailable, 1, "grader problem"),
    (errors.ReleaseError, 1, "error"),
    (errors.Interrupted, 130, "interrupted"),
], ids=lambda v: v.__name__ if inspect.isclass(v) else str(v))
def test_main_maps_an_error_to_its_exit_code_and_message(
        error: type[errors.Lab3Error], code: int, label: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def handler(_args) -> int:
        raise error("what to change")

    monkeypatch.setattr(cli, "_points", handler)
    assert cli.main(["points"]) == code
    assert capsys.readouterr().err == f"lab3 points: {label}: what to change\n"


@pytest.mark.parametrize(("error", "builtin"), [
    (errors.CourseError, ValueError), (errors.SecretError, ValueError),
    (errors.RecordError, ValueError), (errors.WeightsError, RuntimeError),
    (errors.SandboxError, RuntimeError), (errors.ReleaseError, RuntimeError),
    (errors.WorkerError, RuntimeError), (errors.ReferenceUnavailable, RuntimeError),
])
def test_errors_keep_the_builtin_base_callers_caught(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)


def test_the_stand_ins_errors_stay_outside_so_student_code_handles_them_as_usual() -> None:
    assert issubclass(errors.OfflineError, ConnectionError)
    assert not issubclass(errors.RunTimeout, Exception)


def test_a_bad_course_file_named_by_the_environment_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "course.toml"
    bad.write_text("[checks\n")
    monkeypatch.setenv("LAB3_COURSE_FILE", str(bad))
    assert cli.main(["points"]) == 2
    assert capsys.readouterr().err.startswith("lab3 points: error:")


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "grader", "points"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `lab3 points | head -1`
    stderr = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in stderr
