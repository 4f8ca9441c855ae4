"""Every task of the points table has all its pieces (README: "Adding a task").

One test per piece, parametrized by task (``grader.points.TASKS``); a failure says which
file to add or edit. The list of pieces is :data:`PIECES`, and the README's "Adding a
task" section names each of them (checked below), so the README's list and this test
cannot drift apart. ``tests/harness/tasks/test_adding_a_task.py`` follows the list in a copy of
the repository with a tenth task.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from grader.points import CHECKS, TASKS, task_spec
from grader.refdata.weights import STANDIN_VERSION

ROOT = Path(__file__).resolve().parents[3]
ALL = [t.module for t in TASKS]
# Pieces a task does without, and why (one place, as torchvision's per-model exceptions).
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "answers": {
        # Its "module" is answers.md (free text graded by hand): test_template.py checks
        # that the template and the reference ask the same questions.
        "template_names": "answers.md has questions, not names",
        # The notebook's answer cells come from the ``## `` headings of answers.md.
        "notebook_text": "answer cells come from the headings of answers.md",
        # The reference's answers are model answers read by people, not behaviour to test.
        "reference_tests": "the reference's answers are free text",
    },
}
# Piece -> the README's wording of its file (with <task> for the module name).
PIECES: dict[str, str] = {
    "points_rows": "grader/points.py",
    "reference_file": "reference/<task>.py",
    "template_file": "student_template/<task>.py",
    "template_names": "student_template/<task>.py",
    "task_module": "grader/tasks/<task>.py",
    "lab_test": "tests/lab/test_<task>.py",
    "notebook_text": "grader/distribute/notebook_text.py",
    "reference_snapshot": "test_reference_record_matches_snapshot[<task>].json",
    "reference_tests": "tests/reference/test_<task>.py",
    "check_tests": "tests/harness/tasks/test_<task>_checks.py",
}
SNAPSHOTS = (ROOT / "tests" / "harness" / "refdata" / "__snapshots__" / f"standin-v{STANDIN_VERSION}"
             / "test_reference_snapshots")


def tasks_with(piece: str) -> list[str]:
    return [t for t in ALL if piece not in NOT_APPLICABLE.get(t, {})]


def code_file(task: str) -> str:
    """The file a task's students write: ``<task>.py``, ``answers.md`` for the answers."""
    return "answers.md" if task == "answers" else f"{task}.py"


def public_names(path: Path) -> set[str]:
    """Public names a module binds at its top (functions, classes, assignments)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return {n for n in names if not n.startswith("_")}


def missing_file(path: Path, what: str) -> None:
    if not path.is_file():
        pytest.fail(f"add {path.relative_to(ROOT).as_posix()}: {what} (README: Adding a task)",
                    pytrace=False)


@pytest.mark.parametrize("task", tasks_with("points_rows"), ids=str)
def test_points_table_has_rows_for_the_task(task: str) -> None:
    if not [c for c in CHECKS if c.task == task]:
        pytest.fail(f"grader/points.py: add a CheckSpec row for each check of {task!r} "
                    "(TASKS names it, CHECKS has none)", pytrace=False)


@pytest.mark.parametrize("task", tasks_with("reference_file"), ids=str)
def test_reference_has_the_task_file(task: str) -> None:
    missing_file(ROOT / "reference" / code_file(task), "the task's reference solution")


@pytest.mark.parametrize("task", tasks_with("template_file"), ids=str)
def test_template_has_the_task_file(task: str) -> None:
    missing_file(ROOT / "student_template" / code_file(task), "the task's stubs for students")


@pytest.mark.parametrize("task", tasks_with("template_names"), ids=str)
def test_template_names_are_the_reference_names(task: str) -> None:
    template, reference = (ROOT / "student_template" / f"{task}.py", ROOT / "reference" / f"{task}.py")
    missing_file(template, "the task's stubs for students")
    missing_file(reference, "the task's reference solution")
    names = public_names(template)
    if not names:
        pytest.fail(f"student_template/{task}.py defines no public function: add the stubs "
                    f"students fill in (raising NotImplementedError('Task "
                    f"{task_spec(task).number}: ...'))", pytrace=False)
    lacking = sorted(names - public_names(reference))
    if lacking:
        pytest.fail(f"reference/{task}.py lacks {lacking}, which student_template/{task}.py "
                    "defines: the reference defines every name of the template", pytrace=False)


@pytest.mark.parametrize("task", tasks_with("task_module"), ids=str)
def test_grader_task_module_has_probe_and_a_check_per_row(task: str) -> None:
    path = f"grader/tasks/{task}.py"
    missing_file(ROOT / path, "the task's probe and checks")
    module = importlib.import_module(f"grader.tasks.{task}")
    if not callable(getattr(module, "probe", None)):
        pytest.fail(f"{path}: define probe(ctx: ProbeContext) -> Record", pytrace=False)
    checks = getattr(module, "CHECKS", None)
    if not isinstance(checks, dict):
        pytest.fail(f"{path}: define CHECKS, a dict of check name -> check function", pytrace=False)
    rows = {c.name for c in CHECKS if c.task == task and not c.hidden}  # hidden: below
    if rows - set(checks):
        pytest.fail(f"{path}: CHECKS lacks {sorted(rows - set(checks))}: add a check function "
                    "for each row of grader/points.py", pytrace=False)
    if set(checks) - rows:
        pytest.fail(f"{path}: CHECKS has {sorted(set(checks) - rows)}, which grader/points.py "
                    "has no row for: add the rows (with their points) or remove the functions",
                    pytrace=False)
    not_callable = sorted(name for name, fn in checks.items() if not callable(fn))
    if not_callable:
        pytest.fail(f"{path}: CHECKS[{not_callable}] are not functions", pytrace=False)


@pytest.mark.parametrize("task", sorted({c.task for c in CHECKS if c.hidden}), ids=str)
def test_hidden_rows_have_their_checks_in_grader_hidden(task: str) -> None:
    """A hidden check's function lives in grader/hidden/<task>.py, which the release leaves
    out whole (README: Adding a task)."""
    from grader.hidden import check_specs
    from grader.tasks import task_checks

    path = f"grader/hidden/{task}.py"
    missing_file(ROOT / path, "the task's hidden checks (and their own probing)")
    rows = {c.name for c in CHECKS if c.task == task and c.hidden}
    assert rows == {c.name for c in check_specs() if c.task == task}
    checks = getattr(importlib.import_module(f"grader.hidden.{task}"), "CHECKS", None)
    assert isinstance(checks, dict) and set(checks) == rows, f"{path}: CHECKS {checks}"
    assert all(callable(fn) for fn in checks.values())
    assert set(task_checks(task)) == {c.name for c in CHECKS if c.task == task}


@pytest.mark.parametrize("task", tasks_with("lab_test"), ids=str)
def test_lab_test_runs_the_task_checks(task: str) -> None:
    path = ROOT / "tests" / "lab" / f"test_{task}.py"
    missing_file(path, f'the students\' tests: test_{task} = task_tests("{task}")')
    wired = [
        node for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "task_tests"
        and [ast.literal_eval(a) for a in node.value.args] == [task]
        and [getattr(t, "id", None) for t in node.targets] == [f"test_{task}"]
    ]
    if not wired:
        pytest.fail(f'tests/lab/test_{task}.py: write test_{task} = task_tests("{task}")',
                    pytrace=False)


@pytest.mark.parametrize("task", tasks_with("notebook_text"), ids=str)
def test_notebook_has_the_task_text_and_demo(task: str) -> None:
    from grader.distribute.notebook_text import task_cells

    try:
        text, demo = task_cells(task)
    except LookupError as exc:
        pytest.fail(str(exc), pytrace=False)
    number = task_spec(task).number
    if f"# Task {number}" not in text:
        pytest.fail(f"grader/distribute/notebook_text.py: TASK_TEXT[{task!r}] does not open with its heading "
                    f"'# Task {number}: ...'", pytrace=False)
    try:
        ast.parse(demo)
    except SyntaxError as exc:
        pytest.fail(f"grader/distribute/notebook_text.py: DEMO_CELLS[{task!r}] is not Python: {exc}",
                    pytrace=False)


@pytest.mark.parametrize("task", tasks_with("reference_snapshot"), ids=str)
def test_reference_record_has_a_snapshot(task: str) -> None:
    path = SNAPSHOTS / f"test_reference_record_matches_snapshot[{task}].json"
    if not path.is_file():
        pytest.fail(f"add {path.relative_to(ROOT).as_posix()}: run pytest "
                    f"tests/harness/refdata/test_reference_snapshots.py --snapshot-update -k {task} "
                    "and review it", pytrace=False)


@pytest.mark.parametrize("task", tasks_with("reference_tests"), ids=str)
def test_reference_has_its_own_tests(task: str) -> None:
    missing_file(ROOT / "tests" / "reference" / f"test_{task}.py",
                 "tests of the reference's behaviour (properties and known values)")


@pytest.mark.parametrize("task", tasks_with("check_tests"), ids=str)
def test_checks_have_wrong_implementations_to_catch(task: str) -> None:
    missing_file(ROOT / "tests" / "harness" / "tasks" / f"test_{task}_checks.py",
                 "wrong implementations that each check must catch")


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Adding a task")
    end = re.search(r"\n#{1,3} \S", text[start + 1:])
    return text[start:start + 1 + end.start() if end else None]


@pytest.mark.parametrize("piece", sorted(PIECES), ids=str)
def test_readme_lists_each_piece(piece: str) -> None:
    assert PIECES[piece] in readme_section(), \
        f"README.md, 'Adding a task': name {PIECES[piece]} (checked by {piece})"


def test_a_task_without_notebook_text_gets_a_clear_error() -> None:
    from grader.distribute.notebook_text import task_cells

    with pytest.raises(LookupError, match=r"'no_such_task' has no notebook text: add its entry "
                                          r"to TASK_TEXT and DEMO_CELLS in "
                                          r"grader/distribute/notebook_text\.py"):
        task_cells("no_such_task")
