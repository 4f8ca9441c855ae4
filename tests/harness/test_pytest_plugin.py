"""The student's pytest experience: options, the score table and results.json.

The README's commands run in a subprocess, as a student types them: from the project's
root, and from a folder outside it with ``--impl`` naming a folder, a .zip or a notebook
by a relative or an absolute path. ``-k model`` keeps each run to Task 1 (seconds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader import pytest_plugin
from grader.cli import main as lab3
from grader.points import CHECKS
from tests.harness.table import task_points

ROOT = Path(__file__).resolve().parents[2]
LAB_TESTS = ROOT / "tests" / "lab"
# The venv's own `pytest` script, as the README's commands call it (else `python -m pytest`).
_SCRIPT = Path(sys.executable).with_name("pytest")
PYTEST = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "pytest"]
# load_labels written in; load_model still the stub: Task 1 scores 2/10 (labels), which
# neither the template (0) nor the reference (10) does.
LOAD_LABELS = '''

def load_labels(path=None):
    if path is None:
        return dict(enumerate(models.ResNet34_Weights.IMAGENET1K_V1.meta["categories"]))
    return _labels_from_json(path)
'''


def pytest_env(**extra: str) -> dict[str, str]:
    """This environment without the PYTEST_* variables a developer may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return {**env, **extra}


def run_pytest(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    return subprocess.run([*PYTEST, "-p", "no:cacheprovider", *args], cwd=cwd,
                          env=env or pytest_env(), capture_output=True, text=True, timeout=600)


def collected(run: subprocess.CompletedProcess) -> list[str]:
    """The node ids of a ``--collect-only -q`` run."""
    return [line for line in run.stdout.splitlines() if "::" in line]


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
    assert f"Task 1: pretrained ResNet-34 and labels     0/{task_points('model'):g}" in table
    assert "Task 4: model graph" in table and f"0/{task_points('graph'):g}" in table
    assert "total" in table and f"0/{task_points('model', 'graph'):g}" in table


def test_harness_tests_are_deselected_with_impl() -> None:
    run = run_pytest("--impl", "student_template", "--collect-only", "-q",
                     "tests/harness/probe/test_records.py", "tests/lab/test_model.py")
    assert collected(run) and all(line.startswith("tests/lab/") for line in collected(run))


def test_results_json_is_gradescope_shaped(template_run) -> None:
    _, path = template_run
    data = json.loads(path.read_text())
    assert data["score"] == 0 and data["max_score"] == task_points("model", "graph")
    assert {"name", "score", "max_score", "output", "visibility"} <= set(data["tests"][0])
    assert data["extra_data"]["weights"]["id"].startswith(("standin", "pretrained", "checkpoint"))


# --------------------------------------------------------------------------- -k TASK


def checks_of(task: str) -> set[str]:
    return {f"test_{task}.py::test_{task}[{c.name}]" for c in CHECKS if c.task == task}


def collected_checks(*args: str) -> set[str]:
    run = run_pytest("--impl", "student_template", "--collect-only", "-q", *args)
    assert run.returncode == pytest.ExitCode.OK, run.stdout[-2000:] + run.stderr[-2000:]
    return {Path(line).name for line in collected(run)}


def test_k_task_selects_only_that_tasks_checks() -> None:
    # As a substring, "model" is also in Task 5's check filters::model_untouched.
    assert any("model" in c.name and c.task != "model" for c in CHECKS)
    assert collected_checks("-k", "model") == checks_of("model")


def test_k_tasks_joined_by_or_select_those_tasks() -> None:
    assert collected_checks("-k", "model or graph") == checks_of("model") | checks_of("graph")


def test_k_other_expressions_keep_pytests_substring_matching() -> None:
    assert collected_checks("-k", "model_untouched") == {"test_filters.py::test_filters[model_untouched]"}


@pytest.mark.parametrize(("expression", "tasks"), [
    ("model", {"model"}),
    ("  filters ", {"filters"}),
    ("model or integrated_gradients", {"model", "integrated_gradients"}),
    ("model_untouched", None),
    ("not model", None),
    ("model and graph", None),
    ("", None),
])
def test_keyword_tasks_are_only_whole_task_names(expression: str, tasks: set[str] | None) -> None:
    assert pytest_plugin.keyword_tasks(expression) == tasks


# --------------------------------------------------------------------------- from anywhere


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the project holding a student's work three ways, and ``cwd/`` to run in:

    ``alice/`` (the template with load_labels written), ``alice.zip`` (a zip of that folder)
    and ``lab3.ipynb`` (``lab3 notebook --student``: the template's stubs).
    """
    base = tmp_path_factory.mktemp("outside")
    assert not base.resolve().is_relative_to(ROOT)
    alice = base / "alice"
    shutil.copytree(ROOT / "student_template", alice,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with (alice / "model.py").open("a") as f:
        f.write(LOAD_LABELS)
    shutil.make_archive(str(base / "alice"), "zip", base, "alice")
    assert lab3(["notebook", "--student", str(base / "lab3.ipynb")]) == 0
    (base / "cwd").mkdir()
    return base


@pytest.mark.parametrize(("impl", "name", "points"), [
    (["--impl", "../alice"], "alice", 2),
    (["--impl", "{base}/alice"], "alice", 2),
    (["--impl=../alice.zip"], "alice", 2),
    (["--impl", "{base}/alice.zip"], "alice", 2),
    (["--impl", "../lab3.ipynb"], "lab3", 0),
    (["--impl={base}/lab3.ipynb"], "lab3", 0),
], ids=["folder-relative", "folder-absolute", "zip-relative-equals", "zip-absolute",
        "notebook-relative", "notebook-absolute-equals"])
def test_impl_from_outside_grades_that_implementation_with_the_lab_tests(
    impl: list[str], name: str, points: int, outside: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results.json"
    args = [a.format(base=outside) for a in impl]
    run = run_pytest(*args, "-k", "model", "--results", str(results), cwd=outside / "cwd")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout[-3000:] + run.stderr[-2000:]
    # This implementation, graded on Task 1 only.
    full = f"{task_points('model'):g}"
    assert json.loads(results.read_text())["output"].splitlines()[0] == f"{name}: {points} / {full}"
    assert re.search(r"^total\s+(\S+)$", run.stdout, re.M).group(1) == f"{points}/{full}"


def test_readme_command_from_the_project_root_runs_only_the_lab_tests() -> None:
    run = run_pytest("--impl", "student_template", "-k", "model", "--collect-only", "-q")
    assert run.returncode == pytest.ExitCode.OK, run.stderr[-2000:]
    assert {line.split("::")[0] for line in collected(run)} == {"tests/lab/test_model.py"}


# What a run looks like from inside: its settings and the lab tests it collected.
SETTINGS_PROBE = """
import json, sys
from pathlib import Path
import pytest

class Probe:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        self.items = sorted(f"{Path(str(i.path)).name}::{i.name}" for i in items)

    def pytest_collection_finish(self, session):
        config = session.config
        markers = sorted(line.split(":")[0] for line in config.getini("markers"))
        print("PROBE " + json.dumps({
            "importmode": config.getoption("importmode"),
            "markexpr": config.getoption("markexpr"),
            "strict_markers": config.getoption("strict_markers"),
            "reportchars": config.getoption("reportchars"),
            "markers": markers,
            "filterwarnings": config.getini("filterwarnings"),
            "items": self.items,
        }))

pytest.main(sys.argv[1:], plugins=[Probe()])
"""


def probe_settings(cwd: Path, *args: str) -> dict:
    run = subprocess.run([sys.executable, "-c", SETTINGS_PROBE, "-p", "no:cacheprovider",
                          "--collect-only", "-q", *args], cwd=cwd, env=pytest_env(),
                         capture_output=True, text=True, timeout=600)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(lines[0].removeprefix("PROBE "))


def test_impl_from_outside_runs_with_the_projects_pytest_settings(outside: Path) -> None:
    inside = probe_settings(ROOT, "--impl", str(outside / "alice"))
    away = probe_settings(outside / "cwd", "--impl", "../alice")
    assert inside["importmode"] == "importlib" and inside["markexpr"] == "not slow and not scale"
    assert "harness" in inside["markers"] and len(inside["items"]) == len(CHECKS)
    assert away == inside


def test_users_own_options_win_over_the_projects(outside: Path) -> None:
    away = probe_settings(outside / "cwd", "--impl", "../alice", "-m", "gpu or not gpu",
                          "--import-mode=prepend")
    assert (away["markexpr"], away["importmode"]) == ("gpu or not gpu", "prepend")


def test_conftest_loads_the_plugin_where_the_package_is_not_installed() -> None:
    """Without the entry point (as in an uninstalled copy) the root conftest.py registers it."""
    run = run_pytest("--impl", "student_template", "-k", "model", "--collect-only", "-q",
                     env=pytest_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert run.returncode == pytest.ExitCode.OK, run.stdout[-2000:] + run.stderr[-2000:]
    assert {Path(line).name for line in collected(run)} == checks_of("model")


def test_the_plugin_is_registered_once_under_its_module_name(pytestconfig: pytest.Config) -> None:
    """The entry point and conftest.py's pytest_plugins name it alike: pytest loads it once."""
    plugins = [p for p in pytestconfig.pluginmanager.get_plugins()
               if getattr(p, "__name__", None) == "grader.pytest_plugin"]
    assert plugins == [pytest_plugin]
    assert pytestconfig.pluginmanager.get_plugin("grader.pytest_plugin") is pytest_plugin


def test_missing_lab_tests_is_a_usage_error_saying_where_they_are_expected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pytest_plugin, "_LAB_TESTS", tmp_path / "tests" / "lab")
    with pytest.raises(pytest.UsageError, match="pip install -e"):
        pytest_plugin.lab_tests()
