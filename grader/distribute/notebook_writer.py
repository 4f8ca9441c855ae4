"""Writing the course notebooks (``lab3 notebook``): the student notebook from
``student_template/``, the reference one from ``reference/``.

``write_notebook`` (``lab3 notebook``)
    The student notebook is generated from ``student_template/``: a set-up cell, then
    per task a short markdown introduction (the handout's text), a code cell holding
    that task's module source (relative imports removed: a notebook is one namespace)
    and a small demo cell; one heading cell plus one answer cell holding
    :data:`~grader.tasks.answers.ANSWER_PROMPT` per conceptual question (the ``## ``
    headings of ``student_template/answers.md``). The set-up cell resolves and
    activates the weights with :mod:`grader.refdata.weights` and takes the demo photo from the
    grader's fixtures, so the notebook runs offline from any folder. A demo cell
    reports a stub ("not implemented yet: ...") instead of raising, and skips itself,
    saying which task's demo to finish, when an earlier demo's result is missing; so
    the student notebook runs top to bottom from the first day. Figures drawn with the
    stand-in weights say so in the figure (:func:`~grader.refdata.weights.mark_standin`). The reference
    notebook is the same built from ``reference/`` (answers from
    ``reference/answers.md``), executed with nbclient, so it shows its figures.

The text comes from :mod:`grader.distribute.notebook_text`; a student's notebook is read
back by :mod:`grader.submission.notebook`.
"""

from __future__ import annotations

import ast
import re
import sys
import tempfile
from pathlib import Path

from grader.distribute.notebook_text import INTRO, SETUP_CELL, question_headings, task_cells
from grader.paths import PROJECT_ROOT, TEMPLATE_DIR
from grader.submission.cells import HEADING
from grader.submission.locations import TASK_MODULES, task_number
from grader.tasks.answers import ANSWER_PROMPT

REFERENCE_DIR = PROJECT_ROOT / "reference"
# The metadata key of a generated notebook.
_SUBMISSION_MARK = "lab3-notebook"


def module_cell_source(path: Path) -> str:
    """A task module's source as one notebook cell: its relative imports and
    ``from __future__`` removed (the notebook is one namespace)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    drop: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
            drop.update(range(node.lineno - 1, node.end_lineno))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return re.sub(r"\n{3,}", "\n\n\n", "\n".join(kept)).strip() + "\n"


def _answer_sections(text: str) -> dict[str, str]:
    """``{## heading: body}`` of an answers.md."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match and len(match.group(1)) == 2:
            current = match.group(2)
            sections[current] = []
        elif match:
            current = None
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def build_notebook(package: Path, *, answers: dict[str, str] | None = None):
    """The lab notebook built from ``package`` (``student_template/`` or ``reference/``)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell(INTRO), new_code_cell(SETUP_CELL)]
    common = package / "_common.py"
    if common.is_file():  # the reference's private helpers, used by several tasks
        cells.append(new_markdown_cell("Helpers shared by several tasks."))
        cells.append(new_code_cell(module_cell_source(common)))
    questions = question_headings()
    for module in TASK_MODULES:
        text, demo = task_cells(module)
        cells.append(new_markdown_cell(text))
        cells.append(new_code_cell(module_cell_source(package / f"{module}.py")))
        cells.append(new_code_cell(demo))
        number = task_number(module)
        for heading in questions:
            # "Task 5.1: ..." and "Task 7: ..." go after their task.
            if re.match(rf"Task {number}(\D|$)", heading):
                cells.append(new_markdown_cell(f"## {heading}"))
                cells.append(new_markdown_cell((answers or {}).get(heading) or ANSWER_PROMPT))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata[_SUBMISSION_MARK] = {"generated_from": package.name}
    nbformat.validate(nb)
    return nb


def execute_notebook(nb, *, cwd: Path, timeout: int = 600,
                     env: dict[str, str] | None = None) -> None:
    """Run ``nb`` in a fresh ipykernel (nbclient) started in ``cwd``, outputs stored in
    ``nb``. The kernel gets this process's environment updated with ``env``; the
    notebook's set-up cell resolves and activates the weights itself, as a student's
    kernel does (``$LAB3_WEIGHTS`` chooses them, default auto)."""
    import os

    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute(
        env={**os.environ, **(env or {})})


def write_notebook(out: Path, *, reference: bool = False, execute: bool = False,
                   weights: str | None = None) -> Path:
    """Write the student (or reference) notebook to ``out``; execute it when asked, in a
    temporary folder, with ``weights`` (``auto``, ``standin``, ``pretrained`` or a path;
    default ``$LAB3_WEIGHTS`` or auto).

    Raises:
        WeightsError: ``weights`` cannot be resolved (checked before a kernel starts).
        CellExecutionError: a cell of the executed notebook raised.
    """
    import nbformat

    package = REFERENCE_DIR if reference else TEMPLATE_DIR
    answers = None
    if reference and (package / "answers.md").is_file():
        answers = _answer_sections((package / "answers.md").read_text(encoding="utf-8"))
    nb = build_notebook(package, answers=answers)
    if execute:
        from grader.refdata.weights import resolve_weights

        resolve_weights(weights)  # a bad spec fails here, not in the kernel
        env = {} if weights is None else {"LAB3_WEIGHTS": str(weights)}
        with tempfile.TemporaryDirectory(prefix="lab3-notebook-") as tmp:
            execute_notebook(nb, cwd=Path(tmp), env=env)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


def notebook_main(*, student: Path, reference: Path | None, execute: bool = True,
                  weights: str | None = None) -> int:
    """``lab3 notebook``: write the student notebook, and the reference one when asked
    (executed under ``weights``, default auto, unless ``execute`` is False).

    Returns the exit code: 0 written, 2 usage problem (no reference/ here, nbclient or
    ipykernel missing), 1 the reference notebook failed while executing.
    """
    if reference is not None and not (REFERENCE_DIR / "model.py").is_file():
        print("lab3 notebook: error: --reference needs reference/ (the instructor's repository)",
              file=sys.stderr)
        return 2
    path = write_notebook(Path(student))
    print(f"wrote {path} (student notebook, from student_template/)")
    if reference is None:
        return 0
    from grader.refdata.weights import WeightsError

    try:
        path = write_notebook(Path(reference), reference=True, execute=execute, weights=weights)
    except WeightsError as exc:
        print(f"lab3 notebook: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"lab3 notebook: error: executing needs nbclient and ipykernel ({exc}); "
              "pip install 'lab3[notebook]', or pass --no-execute", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a failing cell or a kernel that cannot start
        print(f"lab3 notebook: the reference notebook failed to execute: "
              f"{type(exc).__name__}: {str(exc)[-2000:]}\n(--no-execute writes it without outputs)",
              file=sys.stderr)
        return 1
    print(f"wrote {path} (reference notebook, from reference/{', executed' if execute else ''})")
    return 0
