"""Notebook submissions: the generated notebooks, and notebooks as students hand them in.

Grading is limited to cheap tasks (``tasks=``); the one full run of the reference
notebook and the nbclient execution are marked slow.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.implementation import TASK_MODULES, load_implementation
from grader.notebook import (
    REFERENCE_DIR,
    TEMPLATE_DIR,
    build_package,
    module_cell_source,
    notebook_main,
    question_headings,
    write_notebook,
)
from grader.probing import ImplementationError
from grader.tasks import TASK_NAMES
from grader.tasks.answers import split_answers

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


def test_generated_notebook_demo_cells_are_not_graded(generated: dict[str, Path]) -> None:
    build = build_package(generated["reference"])
    assert "load_model()" not in build.modules["model"].split("def load_model", 1)[0]
    assert any("top-level statements that do work" in n for n in build.notes)


@pytest.mark.slow
def test_reference_notebook_executes_with_figures(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = write_notebook(tmp_path / "reference.ipynb", reference=True, execute=True)
    nb = nbformat.read(str(path), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # tasks 5, 7, 9


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
    monkeypatch.setattr("grader.notebook.REFERENCE_DIR", tmp_path / "no-reference")
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
    assert results["score"] == results["max_score"] == 10
    assert "notebook: " in results["output"]
