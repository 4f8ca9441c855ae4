"""The student's pytest experience: options, the score table and results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_missing_impl_is_a_usage_error_that_says_what_to_pass() -> None:
    result = run_pytest("--impl", "no/such/folder")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "filled-in copy of student_template/" in result.stderr


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory):
    results = tmp_path_factory.mktemp("results") / "results.json"
    run = run_pytest("--impl", "student_template", "tests/lab/test_model.py",
                     "tests/lab/test_graph.py", "--results", str(results))
    return run, results


def test_template_fails_without_a_traceback_wall(template_run) -> None:
    run, _ = template_run
    assert run.returncode == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in run.stdout
    assert "not implemented yet" in run.stdout


def test_score_table_names_each_graded_task_and_total(template_run) -> None:
    run, _ = template_run
    table = run.stdout.split("lab3 score", 1)[1]
    assert "Task 1: pretrained ResNet-34 and labels     0/10" in table
    assert "Task 4: model graph" in table and "0/6" in table
    assert "total" in table and "0/16" in table


def test_harness_tests_are_deselected_with_impl() -> None:
    run = run_pytest("--impl", "student_template", "--collect-only", "-q",
                     "tests/harness/test_records.py", "tests/lab/test_model.py")
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected and all(line.startswith("tests/lab/") for line in collected)


def test_results_json_is_gradescope_shaped(template_run) -> None:
    _, path = template_run
    data = json.loads(path.read_text())
    assert data["score"] == 0 and data["max_score"] == 16
    assert {"name", "score", "max_score", "output", "visibility"} <= set(data["tests"][0])
    assert data["extra_data"]["weights"]["id"].startswith(("standin", "pretrained", "checkpoint"))
