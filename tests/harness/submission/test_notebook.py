"""Notebook submissions: the generated notebooks, and notebooks as students hand them in.

Grading is limited to cheap tasks (``tasks=``); the one full run of the reference
notebook and the nbclient execution are marked slow.
"""

from __future__ import annotations

import ast
import json
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.distribute.notebook_text import DEMO_CELLS, SETUP_CELL, question_headings
from grader.distribute.notebook_writer import (
    REFERENCE_DIR,
    module_cell_source,
    notebook_main,
    write_notebook,
)
from grader.paths import TEMPLATE_DIR
from grader.probe.implementation import TASK_MODULES, load_implementation
from grader.probe.probing import ImplementationError
from grader.refdata.weights import STANDIN_CAPTION, ResolvedWeights, WeightsError, mark_standin
from grader.submission.locations import LOCATIONS_FILE, NotebookLocations
from grader.submission.notebook import build_package, interface_names, write_package
from grader.tasks import TASK_NAMES
from grader.tasks.answers import ANSWER_PROMPT, split_answers
from tests.harness.table import task_points

# Probing Task 3 costs ~10 s (many photos through the full model): only the realistic
# notebook, whose split cells cross modules (predict -> preprocess_image -> transform), uses it.
CHEAP = ["model", "preprocessing"]
REALISTIC = ["model", "preprocessing", "inference"]
WORDS = " ".join(["The early filters respond to oriented edges and colour blobs."] * 4)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("generated")
    return {
        "student": write_notebook(folder / "student.ipynb"),
        "reference": write_notebook(folder / "reference.ipynb", reference=True),
    }


def make_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A notebook from ``(kind, source)`` pairs, ``kind`` being "code" or "md"."""
    nb = new_notebook(cells=[new_code_cell(src) if kind == "code" else new_markdown_cell(src)
                             for kind, src in cells])
    nbformat.write(nb, str(path))
    return path


def statements(module: str, package: Path = REFERENCE_DIR) -> list[str]:
    """A module's top-level statements as separate cell sources (relative imports removed)."""
    source = module_cell_source(package / f"{module}.py")
    lines = source.splitlines()
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        out.append("\n".join(lines[first - 1:node.end_lineno]))
    return out


def exploratory_cells(marker: Path) -> list[tuple[str, str]]:
    """What students add around their solutions: downloads, training loops, plots, files."""
    return [
        ("code", "%matplotlib inline\n!pip install --no-deps captum\nimport requests\n"
                 "from PIL import Image\n"
                 "img_url = 'https://images.pexels.com/photos/20816519/pexels-photo-20816519.jpeg'\n"
                 "img = Image.open(requests.get(img_url, stream=True).raw)\n"
                 f"Path({str(marker)!r}).write_text('download cell ran')\n"),
        ("code", "model = load_model()\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
                 "for epoch in range(3):\n"
                 f"    Path({str(marker)!r}).write_text('training loop ran')\n"
                 "    loss = model(torch.randn(2, 3, 64, 64)).sum()\n    loss.backward()\n"),
        ("code", f"with open({str(marker)!r}, 'w') as f:\n    f.write('with block ran')\n"),
        ("code", "import matplotlib.pyplot as plt\nplt.imshow(img)\nplt.show()\n"),
        ("code", "def broken(:\n    return 1\n"),  # unrelated syntax error
    ]


@pytest.fixture
def realistic(tmp_path: Path) -> tuple[Path, Path]:
    """Tasks 1-3 solved over one cell per statement, in REVERSED order (uses before
    definitions, imports last), with exploratory cells, a syntax error, magics, a wrong
    first attempt of ``predict`` redefined later, and answers without headings in their cell."""
    marker = tmp_path / "ran.txt"
    headings = question_headings()
    cells: list[tuple[str, str]] = [("md", "# My lab 3"), ("code", "from pathlib import Path")]
    cells += [("code", "def predict(model, img, labels):\n    return ('tench', 0, 1.0)\n")]
    cells += exploratory_cells(marker)
    for module in reversed(REALISTIC):
        cells += [("code", s) for s in reversed(statements(module))]
    cells += [("md", f"## {headings[0]}"), ("md", WORDS)]
    return make_notebook(tmp_path / "jan_kowalski.ipynb", cells), marker


# --------------------------------------------------------------------------- generated


def test_generated_student_notebook_has_the_template_and_the_questions(
    generated: dict[str, Path]
) -> None:
    nb = nbformat.read(str(generated["student"]), as_version=4)
    nbformat.validate(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert "from ." not in code  # one namespace: relative imports removed
    for module in TASK_MODULES:
        assert module_cell_source(TEMPLATE_DIR / f"{module}.py") in [c.source for c in nb.cells]
    assert [m for m in markdown if m.startswith("## ")] == [f"## {h}" for h in question_headings()]
    assert code.count("TODO Task") >= 9


def test_generated_student_notebook_grades_zero_with_per_task_feedback(
    generated: dict[str, Path], grade_impl
) -> None:
    stubs = [*CHEAP, "inference", "filters", "noise_tunnel"]
    graded = grade_impl(generated["student"], tasks=[*stubs, "answers"])
    for task in stubs:
        assert graded.score(task) == 0, task
        assert all("not implemented yet" in c.message for c in graded.results[task].checks), task
    assert "unanswered" in graded.check("answers", "answered").message


def test_generated_reference_notebook_full_points_on_cheap_tasks(
    generated: dict[str, Path], grade_impl
) -> None:
    graded = grade_impl(generated["reference"], tasks=[*CHEAP, "answers"])
    for task in CHEAP:
        assert graded.score(task) == graded.max_score(task), graded.failed(task)
    assert graded.check("answers", "answered").passed


@pytest.mark.slow
def test_generated_reference_notebook_scores_100(generated: dict[str, Path], grade_impl) -> None:
    graded = grade_impl(generated["reference"])
    assert {t: graded.score(t) for t in TASK_NAMES} == {t: graded.max_score(t) for t in TASK_NAMES}


@pytest.mark.parametrize("which", ["student", "reference"])
def test_generated_notebook_demo_cells_are_neither_graded_nor_noted(
    generated: dict[str, Path], which: str
) -> None:
    build = build_package(generated[which])
    assert "load_model()" not in build.modules["model"].split("def load_model", 1)[0]
    assert build.notes == []  # the set-up and demo cells are the notebook's, not the student's


def test_what_a_student_adds_to_a_demo_cell_is_noted(generated: dict[str, Path],
                                                     tmp_path: Path) -> None:
    nb = nbformat.read(str(generated["student"]), as_version=4)
    number, cell = next((i, c) for i, c in enumerate(nb.cells, 1) if c.source == DEMO_CELLS["model"])
    cell.source += "scores = model(torch.randn(1, 3, 64, 64))\n"
    path = tmp_path / "edited.ipynb"
    nbformat.write(nb, str(path))
    notes = build_package(path).notes
    assert len(notes) == 1 and notes[0].startswith("1 top-level statement that do work"), notes
    assert f"in cell {number} were not run" in notes[0]


def test_generated_setup_cell_comes_first_and_defines_no_graded_name(
    generated: dict[str, Path]
) -> None:
    nb = nbformat.read(str(generated["student"]), as_version=4)
    assert next(c for c in nb.cells if c.cell_type == "code").source == SETUP_CELL
    graded = set().union(*interface_names().values())
    setup = ast.parse(SETUP_CELL.replace("%matplotlib inline", ""))
    bound = {n.id for n in ast.walk(setup) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.name for n in setup.body if isinstance(n, ast.FunctionDef)}
    assert "WEIGHTS" in bound and not bound & graded


def test_write_notebook_executes_in_a_scratch_folder_with_the_chosen_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[dict] = []
    monkeypatch.setattr("grader.distribute.notebook_writer.execute_notebook",
                        lambda nb, *, cwd, env=None: runs.append({"cwd": cwd, "env": env}))
    out = tmp_path / "course"
    write_notebook(out / "reference.ipynb", reference=True, execute=True, weights="standin")
    assert runs[0]["env"] == {"LAB3_WEIGHTS": "standin"}  # the kernel's set-up cell resolves them
    assert not runs[0]["cwd"].is_relative_to(out)  # the demo's graph file is not left beside it


def test_write_notebook_refuses_bad_weights_before_starting_a_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[Path] = []
    monkeypatch.setattr("grader.distribute.notebook_writer.execute_notebook",
                        lambda nb, *, cwd, env=None: runs.append(cwd))
    with pytest.raises(WeightsError, match="does not exist"):
        write_notebook(tmp_path / "r.ipynb", reference=True, execute=True,
                       weights=str(tmp_path / "missing.pth"))
    assert runs == [] and not (tmp_path / "r.ipynb").exists()


# --------------------------------------------------------------------------- stand-in figures


def _weights(kind: str) -> ResolvedWeights:
    return ResolvedWeights(kind=kind, path=Path("resnet34-b627a593.pth"), sha256="0" * 64)


def test_standin_figure_says_so_in_the_figure() -> None:
    fig = mark_standin(Figure(), _weights("standin"))
    assert fig._suptitle.get_text() == STANDIN_CAPTION


@pytest.mark.parametrize("kind", ["pretrained", "checkpoint"])
def test_figure_of_other_weights_is_left_alone(kind: str) -> None:
    assert mark_standin(Figure(), _weights(kind))._suptitle is None


def test_standin_caption_goes_under_the_figure_own_title_once() -> None:
    fig = Figure()
    fig.suptitle("Filters of ResNet-34", fontsize=20)
    mark_standin(mark_standin(fig, _weights("standin")), _weights("standin"))
    assert fig._suptitle.get_text() == f"Filters of ResNet-34\n{STANDIN_CAPTION}"
    assert fig._suptitle.get_fontsize() == 20


def test_mark_standin_passes_what_is_not_a_figure_through() -> None:
    assert mark_standin(None, _weights("standin")) is None


def test_notebook_main_writes_both_without_execution(tmp_path: Path) -> None:
    code = notebook_main(student=tmp_path / "s.ipynb", reference=tmp_path / "r.ipynb",
                         execute=False)
    assert code == 0
    for name in ("s.ipynb", "r.ipynb"):
        nbformat.validate(nbformat.read(str(tmp_path / name), as_version=4))


# --------------------------------------------------------------------------- student notebooks


def test_realistic_notebook_gets_full_points(realistic: tuple[Path, Path], grade_impl) -> None:
    path, marker = realistic
    graded = grade_impl(path, tasks=[*REALISTIC, "answers"])
    for task in REALISTIC:
        assert graded.score(task) == graded.max_score(task), graded.failed(task)
    assert not marker.exists(), marker.read_text()  # downloads, loops, with-blocks never ran
    answers = graded.records["answers"].data["answers"]
    assert answers[question_headings()[0]].startswith("The early filters")


def test_realistic_notebook_is_named_after_the_file(realistic: tuple[Path, Path]) -> None:
    assert load_implementation(realistic[0]).name == "jan_kowalski"


def test_exploratory_cells_are_dropped_not_run(realistic: tuple[Path, Path]) -> None:
    path, marker = realistic
    impl = load_implementation(path)
    for module in TASK_MODULES:
        impl.module(module)  # importing every generated module runs no exploratory code
    assert not marker.exists()
    source = (impl.root / "model.py").read_text()
    assert "requests.get" not in source and "range(3)" not in source


@pytest.mark.parametrize(
    ("needle", "why"),
    [
        ("syntax error at line 1", "unrelated syntax error cell, numbered"),
        ("`predict` is defined in cells 3, ", "first attempt redefined later: last wins"),
        ("IPython magics and shell lines", "%matplotlib and !pip are ignored"),
        ("top-level statements that do work", "downloads, loops, plots dropped"),
    ],
    ids=["syntax-error", "defined-twice", "magics", "work-dropped"],
)
def test_realistic_notebook_notes(realistic: tuple[Path, Path], needle: str, why: str) -> None:
    notes = load_implementation(realistic[0]).notes
    assert any(needle in n for n in notes), (why, notes)


def test_syntax_error_note_names_the_cell(realistic: tuple[Path, Path]) -> None:
    notes = build_package(realistic[0]).notes
    cells = json.loads(realistic[0].read_text())["cells"]
    broken = next(i for i, c in enumerate(cells, 1) if "def broken(:" in "".join(c["source"]))
    assert any(n.startswith(f"cell {broken} (`def broken(:`) has a syntax error") for n in notes)


def test_stub_defined_after_the_solution_wins_and_is_explained(tmp_path: Path, grade_impl) -> None:
    cells = [("code", "\n\n".join(statements(m))) for m in CHEAP]
    cells.append(("code", "def load_model(device='cpu'):\n"
                          "    raise NotImplementedError('Task 1: load the model')\n"))
    path = make_notebook(tmp_path / "stub_last.ipynb", cells)
    graded = grade_impl(path, tasks=["model"])
    assert graded.failed("model") == ["architecture", "eval_mode", "weights"]  # labels kept
    assert "not implemented yet" in graded.check("model", "architecture").message
    notes = load_implementation(path).notes
    assert any("still the template's stub" in n and "`load_model`" in n for n in notes), notes


def test_missing_function_fails_its_task_only(tmp_path: Path, grade_impl) -> None:
    model = [s for s in statements("model") if not s.startswith("def load_labels")]
    cells = [("code", "\n\n".join(model + statements("preprocessing")))]
    graded = grade_impl(make_notebook(tmp_path / "no_labels.ipynb", cells), tasks=CHEAP)
    assert graded.failed("model") == ["labels"]
    assert "load_labels" in graded.check("model", "labels").message
    assert graded.score("preprocessing") == graded.max_score("preprocessing")


def test_syntax_error_in_a_graded_cell_costs_that_task(tmp_path: Path, grade_impl) -> None:
    broken = "\n\n".join(statements("model")).replace("def load_model(", "def load_model(:", 1)
    cells = [("code", "\n\n".join(statements("preprocessing"))), ("code", broken)]
    path = make_notebook(tmp_path / "broken.ipynb", cells)
    graded = grade_impl(path, tasks=CHEAP)
    assert graded.score("model") == 0
    assert graded.score("preprocessing") == graded.max_score("preprocessing")
    assert any(n.startswith("cell 2 (") and "syntax error" in n
               for n in load_implementation(path).notes)


def test_non_python_cell_magic_is_skipped_and_noted(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "magic.ipynb", [
        ("code", "%%bash\nwget https://example.com/dog.jpg\n"),
        ("code", "%%time\nIMAGENET_MEAN = [0.485, 0.456, 0.406]\n"),
    ])
    build = build_package(path)
    assert any("cell 1 is a %%bash cell" in n for n in build.notes)
    assert "IMAGENET_MEAN = [0.485, 0.456, 0.406]" in build.modules["preprocessing"]


def test_constant_defined_after_its_use_in_a_later_cell_still_works(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "order.ipynb", [
        ("code", "transform = transforms.Compose([transforms.Normalize(MEAN, STD)])"),
        ("code", "MEAN = [0.5, 0.5, 0.5]\nSTD = [0.2, 0.2, 0.2]"),
        ("code", "from torchvision import transforms"),
    ])
    impl = load_implementation(path)
    assert type(impl.module("preprocessing").transform).__name__ == "Compose"
    assert not hasattr(impl.module("model"), "transform")  # each module: what its names need


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([("md", "## {h}\n" + WORDS)], WORDS),
        ([("md", "## {h}"), ("md", WORDS)], WORDS),
        ([("md", "## {h}"), ("code", "x = 1"), ("md", WORDS)], WORDS),
        ([("md", "## {h}"), ("md", "# Task 6: Integrated Gradients"), ("md", WORDS)], ""),
        ([("md", "## {h}"), ("md", "## Task 5.2: filters of one layer"), ("md", WORDS)], ""),
    ],
    ids=["in-heading-cell", "next-cell", "after-code-cell", "new-task-ends-it",
         "next-question-ends-it"],
)
def test_answers_come_from_the_markdown_under_the_heading(
    tmp_path: Path, cells: list[tuple[str, str]], expected: str
) -> None:
    heading = question_headings()[0]
    cells = [(k, s.replace("{h}", heading)) for k, s in cells]
    path = make_notebook(tmp_path / "answers.ipynb", [("code", "x = 1"), *cells])
    answers, _ = split_answers(build_package(path).answers, question_headings())
    assert answers[heading] == expected


def test_student_notebook_answer_cells_hold_the_prompt(generated: dict[str, Path]) -> None:
    cells = nbformat.read(str(generated["student"]), as_version=4).cells
    after = [cells[i + 1].source for i, c in enumerate(cells[:-1]) if c.source.startswith("## ")]
    assert after == [ANSWER_PROMPT] * len(question_headings())


@pytest.mark.parametrize(
    ("answer_cell", "expected"),
    [(ANSWER_PROMPT, ""), (f"{ANSWER_PROMPT}\n\n{WORDS}", WORDS), (f"  {ANSWER_PROMPT}  ", "")],
    ids=["untouched", "written-under-the-prompt", "prompt-with-spaces"],
)
def test_answer_prompt_is_not_part_of_the_answer(tmp_path: Path, answer_cell: str,
                                                 expected: str) -> None:
    heading = question_headings()[0]
    path = make_notebook(tmp_path / "prompt.ipynb",
                         [("code", "x = 1"), ("md", f"## {heading}"), ("md", answer_cell)])
    answers, _ = split_answers(build_package(path).answers, question_headings())
    assert answers[heading] == expected


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Task 1: load_model in model.py: not implemented yet (Task 1: load it)",
         "Task 1: load_model in lab3.ipynb (cell 5): not implemented yet (Task 1: load it)"),
        ("not implemented yet (Task 2: define `transform` in preprocessing.py)",
         "not implemented yet (Task 2: define `transform` in lab3.ipynb (cell 8))"),
        ("Task 1: load_labels in model.py: raised AttributeError: model.py defines no function "
         "load_labels(); copy its signature from student_template/model.py and implement it",
         "Task 1: load_labels in lab3.ipynb: raised AttributeError: lab3.ipynb defines no "
         "function load_labels(); copy its signature from the Task 1 code cell of the lab's "
         "notebook and implement it"),
        ("see my_model.py and model.pyc", "see my_model.py and model.pyc"),
    ],
    ids=["function-with-cell", "backticked-name", "missing-function", "other-file-names"],
)
def test_notebook_locations_put_messages_in_the_notebook_terms(message: str, expected: str) -> None:
    locations = NotebookLocations("lab3.ipynb", {"load_model": 5, "transform": 8})
    assert locations.localize(message) == expected


def test_notebook_implementation_names_the_cell_of_the_last_definition(
    realistic: tuple[Path, Path]
) -> None:
    impl = load_implementation(realistic[0])
    cells = json.loads(realistic[0].read_text())["cells"]
    last = max(i for i, c in enumerate(cells, 1) if "".join(c["source"]).startswith("def predict("))
    assert impl.localize("Task 3: predict in inference.py: wrong") == \
        f"Task 3: predict in jan_kowalski.ipynb (cell {last}): wrong"


def test_package_implementation_messages_are_unchanged() -> None:
    message = "Task 1: load_model in model.py: not implemented yet"
    assert load_implementation("reference").localize(message) == message


def test_notebook_package_staged_for_lab3_grade_keeps_its_locations(
    realistic: tuple[Path, Path], tmp_path: Path
) -> None:
    write_package(realistic[0], tmp_path / "staged")  # what the parent hands its child
    impl = load_implementation(tmp_path / "staged")
    assert impl.notebook
    assert impl.localize("predict in inference.py").startswith("predict in jan_kowalski.ipynb (cell ")


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"notebook": "x.ipynb", "cells": {"f": "5"}}),
     json.dumps({"notebook": "", "cells": {}}), json.dumps(["x.ipynb"])],
    ids=["not-json", "cell-not-int", "no-name", "not-a-dict"],
)
def test_malformed_locations_file_is_ignored(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "staged"
    shutil.copytree(REFERENCE_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / LOCATIONS_FILE).write_text(content)
    impl = load_implementation(folder)
    assert not impl.notebook and impl.localize("f in model.py") == "f in model.py"


def test_import_error_names_the_notebook_task_and_cell(tmp_path: Path) -> None:
    typo = "transform = transforms.Compose([transforms.Resize(256), transforms.Normalise()])"
    path = make_notebook(tmp_path / "typo.ipynb", [
        ("code", "\n\n".join(statements("preprocessing"))),
        ("code", "from torchvision import transforms\n" + typo)])
    with pytest.raises(ImplementationError) as caught:
        load_implementation(path).module("preprocessing")
    assert str(caught.value).startswith(
        "importing the Task 2 definitions of typo.ipynb failed (notebook cell 2): AttributeError")


# --------------------------------------------------------------------------- folders


@pytest.fixture
def notebook_folder(generated: dict[str, Path], tmp_path: Path) -> Path:
    """A Gradescope-style upload: a folder whose only submission file is the notebook."""
    folder = tmp_path / "anna_nowak"
    folder.mkdir()
    shutil.copy(generated["reference"], folder / "lab3.ipynb")
    (folder / "notes.txt").write_text("my notes")
    return folder


def test_folder_holding_one_notebook_is_graded_as_that_notebook(
    notebook_folder: Path, grade_impl
) -> None:
    impl = load_implementation(notebook_folder)
    assert (impl.name, impl.notebook) == ("anna_nowak", True)
    graded = grade_impl(notebook_folder, tasks=[*CHEAP, "answers"])
    for task in CHEAP:
        assert graded.score(task) == graded.max_score(task), graded.failed(task)
    assert graded.check("answers", "answered").passed


def test_zip_of_a_folder_holding_one_notebook_is_that_notebook(
    notebook_folder: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "anna.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(notebook_folder / "lab3.ipynb", "anna_nowak/lab3.ipynb")
        zf.writestr("__MACOSX/anna_nowak/._lab3.ipynb", "resource fork")
    impl = load_implementation(archive)
    assert (impl.name, impl.notebook) == ("anna", True)
    assert callable(impl.module("model").load_model)


def test_folder_with_two_notebooks_and_no_modules_names_them(notebook_folder: Path) -> None:
    shutil.copy(notebook_folder / "lab3.ipynb", notebook_folder / "lab3-old.ipynb")
    with pytest.raises(ImplementationError,
                       match=r"anna_nowak: 2 notebooks \(lab3-old.ipynb, lab3.ipynb\).*hand in one"):
        load_implementation(notebook_folder)


def test_task_modules_win_over_a_notebook_beside_them(notebook_folder: Path) -> None:
    shutil.copytree(REFERENCE_DIR, notebook_folder / "student_template",
                    ignore=shutil.ignore_patterns("__pycache__"))
    impl = load_implementation(notebook_folder)
    assert not impl.notebook and impl.root.name == "student_template"


def test_lab3_grade_grades_a_folder_holding_one_notebook(notebook_folder: Path,
                                                         tmp_path: Path) -> None:
    from grader.cli import main

    out = tmp_path / "grades"
    assert main(["grade", str(notebook_folder), "--out", str(out), "--tasks", "model", "-q"]) == 0
    results = json.loads((out / "anna_nowak" / "results.json").read_text())
    assert results["score"] == results["max_score"] == task_points("model")


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"cells": [', "not valid JSON"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"[1, 2]", "not a Jupyter notebook"),
        (json.dumps({"nbformat": 3, "worksheets": [], "cells": []}).encode(), "nbformat 3"),
        (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                     "cells": [{"cell_type": "markdown", "source": "hi"}]}).encode(),
         "no code cells"),
    ],
    ids=["truncated-json", "binary", "not-a-notebook", "nbformat-3", "no-code"],
)
def test_bad_notebook_is_an_implementation_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(ImplementationError, match=message):
        load_implementation(path)


def test_module_cell_source_removes_relative_imports() -> None:
    source = module_cell_source(REFERENCE_DIR / "inference.py")
    assert "from .preprocessing" not in source and "__future__" not in source
    assert "def predict(" in source


@pytest.mark.parametrize(
    "bad_cell",
    ["x = 1\x00", "y = " + "(" * 300 + "1" + ")" * 300, "def f(:\n    pass"],
    ids=["null-byte", "absurd-nesting", "syntax-error"],
)
def test_unparsable_cell_is_noted_and_the_others_used(tmp_path: Path, bad_cell: str) -> None:
    path = make_notebook(tmp_path / "odd.ipynb", [
        ("code", bad_cell), ("code", "IMAGENET_MEAN = [0.485, 0.456, 0.406]")])
    build = build_package(path)
    assert build.notes and build.notes[0].startswith("cell 1 ")
    assert "IMAGENET_MEAN = [0.485, 0.456, 0.406]" in build.modules["preprocessing"]


def test_import_of_a_module_not_installed_is_skipped_and_noted(tmp_path: Path) -> None:
    path = make_notebook(tmp_path / "colab.ipynb", [
        ("code", "import lab3_no_such_module as nm\nfrom google.colab import drive\n"),
        ("code", "def load_labels(path=None):\n    return nm.labels()\n"),
    ])
    build = build_package(path)
    assert "lab3_no_such_module" not in build.modules["model"].split("def load_labels")[0]
    assert any("'lab3_no_such_module' is not installed" in n for n in build.notes)
    assert "google" not in build.modules["model"]  # unused by graded code: not imported at all


def test_notebook_main_without_reference_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("grader.distribute.notebook_writer.REFERENCE_DIR", tmp_path / "no-reference")
    assert notebook_main(student=tmp_path / "s.ipynb", reference=tmp_path / "r.ipynb") == 2
    assert "needs reference/" in capsys.readouterr().err
    assert not (tmp_path / "s.ipynb").exists()


def test_error_in_a_kept_constant_names_the_cell_and_costs_only_its_tasks(
    tmp_path: Path, grade_impl
) -> None:
    typo = "transform = transforms.Compose([transforms.Resize(256), transforms.Normalise()])"
    cells = [("code", "\n\n".join(statements("model"))),
             ("code", "\n\n".join(statements("preprocessing"))),
             ("code", "from torchvision import transforms\n" + typo)]
    graded = grade_impl(make_notebook(tmp_path / "typo.ipynb", cells), tasks=CHEAP)
    message = graded.check("preprocessing", "pipeline_structure").message
    assert "notebook cell 3" in message and "Normalise" in message, message
    assert graded.score("preprocessing") == 0
    assert graded.score("model") == graded.max_score("model")  # model.py never needed transform


def test_lab3_grade_takes_notebooks_and_names_them_after_the_file(
    realistic: tuple[Path, Path], tmp_path: Path
) -> None:
    from grader.cli import main

    notebook, _ = realistic
    out = tmp_path / "grades"
    assert main(["grade", str(notebook), "--out", str(out), "--tasks", "model", "-q"]) == 0
    results = json.loads((out / notebook.stem / "results.json").read_text())
    assert results["score"] == results["max_score"] == task_points("model")
    assert "notebook: " in results["output"]


# --------------------------------------------------------------------------- check messages


def _cell_defining(path: Path, name: str) -> int:
    cells = json.loads(path.read_text())["cells"]
    return max(i for i, c in enumerate(cells, 1) if f"def {name}(" in "".join(c["source"]))


def test_check_messages_name_the_notebook_cell_not_the_module(
    generated: dict[str, Path], grade_impl
) -> None:
    graded = grade_impl(generated["student"], tasks=["model"])
    cell = _cell_defining(generated["student"], "load_model")
    message = graded.check("model", "architecture").message
    assert message.startswith(f"Task 1: load_model in student.ipynb (cell {cell}): not implemented")
    assert ".py" not in message


def test_lab3_grade_messages_name_the_notebook_cell(generated: dict[str, Path],
                                                    tmp_path: Path) -> None:
    from grader.cli import main

    out = tmp_path / "grades"
    assert main(["grade", str(generated["student"]), "--out", str(out), "--tasks", "model",
                 "-q"]) == 0
    tests = json.loads((out / "student" / "results.json").read_text())["tests"]
    cell = _cell_defining(generated["student"], "load_model")
    assert all("student.ipynb (cell " in t["output"] and "model.py" not in t["output"]
               for t in tests), [t["output"] for t in tests]
    assert any(f"load_model in student.ipynb (cell {cell})" in t["output"] for t in tests)


def test_lab3_grade_keeps_the_notes_of_a_notebook_in_a_folder(realistic: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    from grader.cli import main

    folder = tmp_path / "jan"
    folder.mkdir()
    shutil.copy(realistic[0], folder / "lab3.ipynb")
    out = tmp_path / "grades"
    assert main(["grade", str(folder), "--out", str(out), "--tasks", "model", "-q"]) == 0
    output = json.loads((out / "jan" / "results.json").read_text())["output"]
    assert "notebook: " in output and "syntax error" in output, output
