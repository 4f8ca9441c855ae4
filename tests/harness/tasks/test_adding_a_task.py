"""README "Adding a task", followed in a temporary copy of the repository.

A tenth task, ``parameter_count`` (``count_parameters(model) -> int``, 2 points), is added
to a copy step by step, as the README lists. With its points rows only, the copy's registry
test (tests/harness/tasks/test_task_registry.py) fails and names every file still missing; with
the README's files, it passes, the copy changed exactly those files, and ``lab3 grade``
run in the copy gives the reference full marks on the task and the template 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.refdata.weights import STANDIN_VERSION
from tests.harness.tasks.test_task_registry import PIECES

REPO = Path(__file__).resolve().parents[3]
TASK = "parameter_count"
POINTS = 2
# What the copy needs: the packages, the students' tests, the harness files the new task's
# tests use, the photos (the probe context's fixtures), the project files.
COPIED = ("reference", "student_template", "grader", "tests/lab", "tests/harness/conftest.py",
          "tests/harness/hostile.py", "tests/harness/tasks/test_task_registry.py",
          "tests/harness/refdata/test_reference_snapshots.py", "tests/harness/test_readme.py",
          "tests/harness/refdata/__snapshots__", "tests/reference/conftest.py", "fixtures/images",
          "pyproject.toml", "conftest.py", "README.md")

REFERENCE = '''"""Task 10: the number of parameters of a model."""

from __future__ import annotations

import torch


def count_parameters(model: torch.nn.Module) -> int:
    """The number of scalar parameters of ``model`` (every parameter tensor's elements)."""
    return sum(p.numel() for p in model.parameters())
'''
TEMPLATE = '''"""Task 10: the number of parameters of a model."""

from __future__ import annotations

import torch


def count_parameters(model: torch.nn.Module) -> int:
    """The number of scalar parameters of ``model`` (every parameter tensor's elements)."""
    # TODO: add up the number of elements of every parameter tensor.
    raise NotImplementedError("Task 10: count_parameters in parameter_count.py")
'''
GRADER_TASK = '''"""Task 10: the number of parameters of a model.

Probe
    ``count_parameters(model)`` on a fresh copy of the trusted ResNet-34; the count is
    recorded when it is an ``int``, else its type name.
"""

from __future__ import annotations

from grader.check.checking import CheckContext, CheckFailed, Outcome, passed, require_call
from grader.probe.probing import ProbeContext, call, new_record
from grader.probe.records import Record, type_name

POINTER = "Task 10: count_parameters in parameter_count.py"


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("parameter_count")
    record = new_record("parameter_count")
    count = call(record, "count_parameters", mod.count_parameters, ctx.fresh_model())
    record.data["count"] = count if type(count) is int else type_name(count)
    return record


def check_count(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    require_call(student, "count_parameters", POINTER)
    got, expected = student.data.get("count"), reference.data["count"]
    if got != expected:
        raise CheckFailed(f"{POINTER}: returned {got!r}, expected {expected} (an int)")
    return passed(f"{expected:,} parameters")


CHECKS = {"count": check_count}
'''
LAB_TEST = f'''"""Task 10: the number of parameters.

One test per check of grader/tasks/{TASK}.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_{TASK} = task_tests("{TASK}")
'''
REFERENCE_TEST = '''"""Task 10: the reference counts ResNet-34's parameters."""

from torchvision.models import resnet34

from reference.parameter_count import count_parameters


def test_resnet34_has_21_8_million_parameters() -> None:
    assert count_parameters(resnet34()) == 21_797_672
'''
CHECK_TEST = '''"""Task 10: the check catches a wrong count and a count of the wrong type."""

import pytest

WRONG = {
    "weights_only": "return sum(p.numel() for p in model.parameters() if p.dim() > 1)",
    "float": "return float(sum(p.numel() for p in model.parameters()))",
    "tensors": "return len(list(model.parameters()))",
}


@pytest.mark.parametrize("variant", sorted(WRONG))
def test_wrong_count_scores_0(grade_variant, variant: str) -> None:
    source = f"def count_parameters(model):\\n    {WRONG[variant]}\\n"
    graded = grade_variant({"parameter_count.py": source}, tasks=["parameter_count"])
    assert graded.score("parameter_count") == 0, graded.results["parameter_count"].checks
'''
TASK_TEXT_ENTRY = '''    "parameter_count": """\\
# Task 10: counting parameters

**Task 10.** Return the number of scalar parameters of the model (`count_parameters`).
""",
'''
DEMO_ENTRY = '''    "parameter_count": _demo(
        "print(f\\"{count_parameters(model):,} parameters\\")\\n",
        needs=("model",),
    ),
'''
TASK_ROW = '    TaskSpec("parameter_count", 10, "Task 10: number of parameters"),\n'
CHECK_ROW = ('    CheckSpec("parameter_count", "count", 2, '
             '"count_parameters counts every parameter\'s elements"),\n')


def insert_after(path: Path, anchor: str, text: str) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count(anchor) == 1, f"{path}: anchor {anchor!r} not found once"
    path.write_text(source.replace(anchor, anchor + text), encoding="utf-8")


def insert_before(path: Path, anchor: str, text: str) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count(anchor) == 1, f"{path}: anchor {anchor!r} not found once"
    path.write_text(source.replace(anchor, text + anchor), encoding="utf-8")


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and not p.relative_to(root).parts[0].startswith(".")}


def readme_files(task: str) -> set[str]:
    """The files of the numbered steps of the README's "Adding a task", for ``task``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Adding a task"):text.index("Nothing else is needed")]
    return {m.replace("<task>", task) for m in re.findall(r"^\d+\. `([^`]+)`", section, re.M)}


def run(copy: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def pytest_in(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", *args)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("with-a-tenth-task")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "reference_records")
    for name in COPIED:
        source, dest = REPO / name, root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=ignore)
        else:
            shutil.copy2(source, dest)
    return root


@pytest.mark.slow
def test_a_tenth_task_added_by_the_readme_list_is_graded(copy: Path, tmp_path: Path) -> None:
    # The copy imports its own grader, not this checkout's.
    where = run(copy, "-c", "import grader, reference; print(grader.__file__, reference.__file__)")
    assert where.stdout.split() == [str(copy / "grader" / "__init__.py"),
                                    str(copy / "reference" / "__init__.py")], where

    before = tree_digest(copy)
    # Step 1 only: the points table. The registry test names each file still missing.
    points = copy / "grader" / "points.py"
    insert_before(points, '    TaskSpec("answers", None,', TASK_ROW)
    insert_before(points, '    CheckSpec("answers", "answered"', CHECK_ROW)
    source = points.read_text(encoding="utf-8")
    assert source.count("\nTOTAL_POINTS = 100\n") == 1
    points.write_text(source.replace("\nTOTAL_POINTS = 100\n", f"\nTOTAL_POINTS = {100 + POINTS}\n"))
    registry = pytest_in(copy, "tests/harness/tasks/test_task_registry.py", "-k", TASK)
    assert registry.returncode == pytest.ExitCode.TESTS_FAILED, registry.stdout[-3000:]
    for missing in (f"add reference/{TASK}.py", f"add student_template/{TASK}.py",
                    f"add grader/tasks/{TASK}.py", f"add tests/lab/test_{TASK}.py",
                    f"task {TASK!r} has no notebook text: add its entry to TASK_TEXT and DEMO_CELLS",
                    f"test_reference_record_matches_snapshot[{TASK}].json",
                    f"add tests/reference/test_{TASK}.py",
                    f"add tests/harness/tasks/test_{TASK}_checks.py"):
        assert missing in registry.stdout, (missing, registry.stdout[-6000:])

    # Steps 2-10.
    (copy / "reference" / f"{TASK}.py").write_text(REFERENCE)
    (copy / "student_template" / f"{TASK}.py").write_text(TEMPLATE)
    (copy / "grader" / "tasks" / f"{TASK}.py").write_text(GRADER_TASK)
    (copy / "tests" / "lab" / f"test_{TASK}.py").write_text(LAB_TEST)
    notebook = copy / "grader" / "distribute" / "notebook_text.py"
    insert_after(notebook, "TASK_TEXT: dict[str, str] = {\n", TASK_TEXT_ENTRY)
    insert_after(notebook, "DEMO_CELLS: dict[str, str] = {\n", DEMO_ENTRY)
    (copy / "tests" / "reference" / f"test_{TASK}.py").write_text(REFERENCE_TEST)
    (copy / "tests" / "harness" / "tasks" / f"test_{TASK}_checks.py").write_text(CHECK_TEST)
    readme = copy / "README.md"
    insert_after(readme, "| 9 | `comparison` | `compare_attributions` (5+ algorithms), "
                         "`plot_comparison` |\n", f"| 10 | `{TASK}` | `count_parameters` |\n")
    table = run(copy, "-m", "grader", "points")
    assert table.returncode == 0, table.stderr
    text = readme.read_text(encoding="utf-8")
    old = re.search(r"^\| Task \| Check \|.*?^\| \*\*Total\*\* .*?\n", text, re.M | re.S)
    readme.write_text(text[:old.start()] + table.stdout.strip() + "\n" + text[old.end():])
    snapshot = pytest_in(copy, "tests/harness/refdata/test_reference_snapshots.py", "--snapshot-update",
                         "-k", TASK)
    assert snapshot.returncode == 0, snapshot.stdout[-3000:] + snapshot.stderr[-2000:]

    # The copy changed exactly the files the README lists.
    after = tree_digest(copy)
    changed = {p for p in after if before.get(p) != after[p]} | set(before) - set(after)
    assert changed == readme_files(TASK), sorted(changed ^ readme_files(TASK))

    checked = pytest_in(copy, "tests/harness/tasks/test_task_registry.py", "tests/harness/test_readme.py",
                        f"tests/harness/tasks/test_{TASK}_checks.py", f"tests/reference/test_{TASK}.py",
                        "tests/harness/refdata/test_reference_snapshots.py", "-k", f"{TASK} or readme")
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
    # Per piece: its registry test and its README test; test_readme; 3 wrong counts; the
    # reference's test; the snapshot.
    expected = 2 * len(PIECES) + 1 + 3 + 1 + 1
    assert re.search(rf"^{expected} passed,", checked.stdout, re.M), checked.stdout[-1000:]
    notebook_run = run(copy, "-m", "grader", "notebook", "--student", str(tmp_path / "lab3.ipynb"))
    assert notebook_run.returncode == 0, notebook_run.stderr
    assert "# Task 10: counting parameters" in (tmp_path / "lab3.ipynb").read_text()

    # Graded by the copy's `lab3 grade`: the reference gets the task's points, the template 0.
    out = tmp_path / "grades"
    graded = run(copy, "-m", "grader", "grade", "reference", "student_template", "--out", str(out),
                 "--tasks", TASK, "--variant", "practice", "--sandbox", "none", "-q")
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    reference = json.loads((out / "reference" / "results.json").read_text())
    template = json.loads((out / "student_template" / "results.json").read_text())
    assert reference["score"] == reference["max_score"] == POINTS, reference["output"]
    assert template["score"] == 0 and template["max_score"] == POINTS, template["output"]
    assert [t["name"] for t in reference["tests"]] == [f"Task 10 {TASK}::count"], reference["tests"]
    assert "not implemented yet" in template["output"] + json.dumps(template["tests"])
    assert f"standin-v{STANDIN_VERSION}" in json.dumps(reference)
