"""Notebook submissions: generate the lab's notebooks, and build an implementation from one.

Students are taught the lab as a Jupyter notebook. Two directions, one source of truth:

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
    stand-in weights say so in the figure (:func:`mark_standin`). The reference
    notebook is the same built from ``reference/`` (answers from
    ``reference/answers.md``), executed with nbclient, so it shows its figures.

``build_package`` (used by ``load_implementation("x.ipynb")``)
    Builds a package folder from a notebook WITHOUT running it: every code cell is
    parsed with :mod:`ast` (IPython magics and shell lines removed first; a cell that
    still does not parse is skipped and noted). Kept: the definitions the grader
    needs, i.e. the names each task module of the template defines (``load_model``,
    ``transform``, ...) and, transitively, every top-level name those definitions use
    (functions, classes, constants, imports). Everything else is dropped: top-level
    calls, plots, downloads, loops, ``with`` blocks, and assignments nothing graded
    uses (``img = Image.open(requests.get(url).raw)``, ``model = load_model()``).
    The last definition of a name wins, as when the notebook runs top to bottom.
    The notes speak only of what the student wrote: the generated set-up and demo
    statements, unchanged, and ``%matplotlib`` lines are not mentioned.
    Kept statements are emitted imports first, then in dependency order (cell order
    otherwise), so reordered cells still work. Each task module file holds only what
    its own names need, so a broken constant costs the tasks that use it, as in a
    package. ``answers.md`` is assembled from the markdown cells: an answer is the
    text under a question's ``## `` heading, in its cell and in the markdown cells
    after it, up to the next markdown heading (level 1 or 2); code cells in between
    do not end it.

Parsing is all the grader does with the notebook in its own process: nothing in it
is executed here; the generated modules are imported like any package submission
(inside the sandbox in ``lab3 grade``). :class:`NotebookLocations` (saved beside the
modules) lets messages written for the package name the notebook's cells instead.
"""

from __future__ import annotations

import ast
import heapq
import importlib.util
import json
import re
import symtable
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from grader.errors import ParseInterrupted
from grader.paths import PROJECT_ROOT
from grader.points import TASKS
from grader.probe.probing import ImplementationError

# Re-exported: the generated notebook and the tests import them from here.
from grader.refdata.weights import STANDIN_CAPTION, mark_standin  # noqa: F401
from grader.tasks.answers import ANSWER_PROMPT

ROOT = PROJECT_ROOT
TEMPLATE_DIR = ROOT / "student_template"
REFERENCE_DIR = ROOT / "reference"
TASK_MODULES = tuple(t.module for t in TASKS if t.module != "answers")
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
# Bounds on what the parent parses (it never runs a notebook, but parsing is work too): an
# honest lab notebook has under 200 cells, 2,000 top-level statements and 200 kB of code.
MAX_CODE_CELLS = 2_000
MAX_CODE_CHARS = 2_000_000
MAX_STATEMENTS = 20_000
PARSE_SECONDS = 60.0
# Cell magics whose body is still Python (the magic line is dropped, the body parsed).
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
_HEADING = re.compile(r"^(#{1,2})(?!#)\s*(.*?)\s*#*\s*$")
_MATPLOTLIB_MAGIC = re.compile(r"%matplotlib(\s|$)")
_SUBMISSION_MARK = "lab3-notebook"
# Written beside a notebook's generated modules: where its graded names are defined.
LOCATIONS_FILE = "notebook_locations.json"

# --------------------------------------------------------------------------- course text

INTRO = """\
# Laboratory 3: model interpretability, filters and features visualization

In this laboratory you look inside the "black box" of a deep network: a ResNet-34
pretrained on ImageNet. You load it, prepare images the way it was trained on, classify
them, draw its graph, visualise what its convolution filters respond to, and explain its
predictions with [Captum](https://captum.ai)'s attribution algorithms.

**How this notebook is graded.** Write your code in the code cell of each task, in the
functions marked `TODO` (keep their names and signatures). The grader reads the
*definitions* from your code cells (functions, classes, imports, constants such as
`transform`); it does **not** run the notebook top to bottom, so your own experiments,
downloads, plots and training loops are never run by it. If you define a function twice,
the last definition counts, as when you run the notebook top to bottom. Write your answers
to the conceptual questions in the cells under their `## Task ...` headings (keep the
headings). Check yourself with `pytest --impl lab3.ipynb` (your notebook's file name).

**Running it.** Run the set-up cell first: it loads the weights from disk (nothing is
downloaded) and picks the demo photo. Each task's demo cell tries your functions: until
you write them it prints "not implemented yet", and a demo that needs an earlier task's
result says which task to finish first.
"""

TASK_TEXT: dict[str, str] = {
    "model": """\
# Task 1: pretrained ResNet-34 and labels

A pretrained model has already learned visual features from ImageNet: 1000 classes and
over a million training images. The model outputs a class *index* (e.g. 159); the labels map
it to a name (e.g. "Rhodesian ridgeback").

**Task 1.** Following torchvision's *Models and pre-trained weights* documentation, load
ResNet-34 with the `IMAGENET1K_V1` weights and set it to evaluation mode (`load_model`).
Return the 1000 ImageNet labels as `dict[int, str]` (`load_labels`).
""",
    "preprocessing": """\
# Task 2: ImageNet preprocessing

A model expects its input in the format it was trained with. Using `transforms.Compose`,
write the ImageNet preprocessing pipeline `transform`, in this order:

1. `Resize` to 256,
2. `CenterCrop` to 224,
3. `ToTensor`,
4. `Normalize` with mean `[0.485, 0.456, 0.406]` and std `[0.229, 0.224, 0.225]`.
""",
    "inference": """\
# Task 3: inference

Write the inference pipeline: preprocess the image, run the model without gradients,
and turn the logits into `(label, index, score)` with `postprocess`. Test it on different
images. `predict_batch` classifies several images in one forward pass.
""",
    "graph": """\
# Task 4: the model graph

Draw the model's autograd graph with torchviz (`make_dot(model(dummy_input),
params=dict(model.named_parameters()))`, rendered to PNG) and inspect it: the names of
the convolution layers (`conv1`, `layer2.0.conv1`, ...) are used in the next task.
""",
    "filters": """\
# Task 5: visualising convolution filters

Each convolution filter detects a pattern. Activation maximisation finds an image that
makes one filter respond as strongly as possible: start from noise and follow the
gradient of the filter's mean activation (a forward hook captures the layer's output).

**Task 5.** Visualise three filters each of an early, a middle and a late layer (for
example `conv1`, `layer2.0.conv1`, `layer4.2.conv2`) in one 3x3 grid, with the filter
number in each subplot's title, and answer below:

1. Describe the evolution of the patterns from the early, to the middle, and to the late
   layers. How does the complexity change?
2. Do the three filters of one layer detect the same pattern? Why is it crucial for a
   network to have filters that specialise in different patterns within one layer?
3. Explain how this hierarchy of features, from simple lines to object parts, lets one
   model like ResNet-34 classify 1000 different categories.
""",
    "integrated_gradients": """\
# Task 6: Integrated Gradients

Attribution assigns each input pixel an importance for the model's decision. Integrated
Gradients integrates the gradient along the straight path from a baseline (black image)
to the input; its attributions add up to F(input) - F(baseline).

**Task 6.** Following Captum's tutorial, compute Integrated Gradients for the pretrained
ResNet-34 on a preprocessed image.
""",
    "attribution_viz": """\
# Task 7: visualising attributions

**Task 7.** Using `captum.attr.visualization.visualize_image_attr`, draw the attributions
with every visualisation method and every sign, and compare them. Consider what positive
and negative values mean, and how to read absolute values.
""",
    "noise_tunnel": """\
# Task 8: NoiseTunnel

**Task 8.** Wrap Integrated Gradients in Captum's `NoiseTunnel` (SmoothGrad and its
variants: attributions averaged over noisy copies of the input) and examine how it changes
the attributions and their visualisation.
""",
    "comparison": """\
# Task 9: comparing attribution algorithms

**Task 9.** Compute the attributions of at least five Captum algorithms (for example
Saliency, Integrated Gradients, GradientShap, Occlusion, GuidedGradCam) for the same image
and target, and show them side by side.
""",
}

# The first code cell. It makes the notebook work offline from any folder with the grader's
# own code: the weights resolved and activated as the harness does (grader.refdata.weights), the demo
# photo from the grader's fixtures. `ready` and `show` keep one unfinished task from breaking
# the demos after it.
SETUP_CELL = """\
# Set-up (given): run this cell first. Nothing is downloaded.
# WEIGHTS: the real IMAGENET1K_V1 checkpoint when it is in your torch hub cache, else the lab's
# stand-in (ResNet-34 with deterministic random weights: everything runs, but the predictions
# are not ImageNet classes). Once activated, `models.resnet34(weights=...IMAGENET1K_V1)` loads
# WEIGHTS from disk. The demo cells use small settings so that they run in seconds on a laptop
# CPU; the handout's full settings: 224-pixel images, 50 filter iterations, n_steps=50,
# nt_samples=10.
%matplotlib inline
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display

try:
    from grader.probe.inputs import probe_photo
    from grader.submission.notebook import mark_standin
    from grader.refdata.weights import activate, resolve_weights
except ImportError:  # the lab3 package is not installed where this kernel runs
    print("lab3 is not installed in this kernel: torchvision will download the weights "
          "(internet needed) and IMAGE_PATH must name a photo of yours. To work offline, "
          "start Jupyter from the lab's environment (pip install -e <the lab3 folder>).")
    WEIGHTS, IMAGE_PATH = None, Path("grace_hopper.jpg")
else:
    WEIGHTS = resolve_weights()
    activate(WEIGHTS)
    print(WEIGHTS.describe())
    IMAGE_PATH = probe_photo()  # the lab's demo photo; or the path of a photo of yours
DEMO_SIZE = 64
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
MADE_BY = {"model": 1, "labels": 1, "x": 2, "target": 3, "x_small": 6, "image01": 6,
           "attributions": 6}


def ready(*names):
    \"\"\"Whether earlier demo cells defined ``names``; if not, says which demo makes them.\"\"\"
    missing = [name for name in names if name not in globals()]
    for name in missing:
        print(f"skipped: this demo needs `{name}` from the demo of Task {MADE_BY[name]}; "
              f"implement Task {MADE_BY[name]} and run its demo cell first")
    return not missing


def show(fig):
    \"\"\"Display the Figure a task returned (labelled in the figure when WEIGHTS is the stand-in).\"\"\"
    if WEIGHTS is not None:
        mark_standin(fig, WEIGHTS)
    display(fig)
    if fig is not None:
        plt.close(fig)  # shown once: not again by the inline backend
"""

_NOT_YET = """\
except NotImplementedError as exc:
    print(f"not implemented yet: {exc}")
"""


def _demo(body: str, needs: tuple[str, ...] = (), before: str = "") -> str:
    """A demo cell: ``body`` in a ``try`` that reports a stub, run only when the earlier
    demos defined ``needs``; ``before`` runs ahead of the ``try`` (under the same guard)."""
    block = before + "try:\n" + _indent(body) + _NOT_YET
    if needs:
        block = f"if ready({', '.join(map(repr, needs))}):\n" + _indent(block)
    return block


def _indent(text: str) -> str:
    return "".join(f"    {line}" if line.strip() else line for line in text.splitlines(True))


DEMO_CELLS: dict[str, str] = {
    "model": _demo(
        "model = load_model()\nlabels = load_labels()\n"
        "print(f\"{type(model).__name__} with {len(labels)} labels, e.g. {labels[0]!r}\")\n"
    ),
    "preprocessing": _demo(
        "x = preprocess_image(IMAGE_PATH)\n"
        "print(f\"input {tuple(x.shape)}, mean {float(x.mean()):.3f}\")\n"
    ),
    "inference": _demo(
        "label, target, score = predict(model, IMAGE_PATH, labels)\n"
        "print(f\"Predicted class: '{label}' ({target}) with confidence {score:.2f}\")\n",
        needs=("model", "labels"),
    ),
    "graph": _demo(
        "names = conv_layer_names(model)\nprint(len(names), names[:4])\n"
        "print(render_model_graph(model, 'resnet34_torchvision_graph', image_size=DEMO_SIZE))\n",
        needs=("model",),
    ),
    "filters": _demo(
        "show(plot_filter_grid(model, iterations=3, image_size=DEMO_SIZE))\n",
        needs=("model",),
    ),
    "integrated_gradients": _demo(
        "attributions, delta = integrated_gradients(model, x_small, target, n_steps=8)\n"
        "print(tuple(attributions.shape), float(delta[0]))\n",
        needs=("model", "x", "target"),
        before=(
            "x_small = F.interpolate(x, size=(DEMO_SIZE, DEMO_SIZE), mode='bilinear', "
            "antialias=True)\n"
            "mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)\n"
            "std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)\n"
            "image01 = (x_small * std + mean).clamp(0, 1)  # the image in [0, 1], for drawing\n"
        ),
    ),
    "attribution_viz": _demo(
        "show(visualize_attribution_grid(attributions, image01))\n",
        needs=("attributions", "image01"),
    ),
    "noise_tunnel": _demo(
        "smoothed = noise_tunnel(model, x_small, target, nt_samples=2, n_steps=4)\n"
        "print(tuple(smoothed.shape), float(smoothed.abs().sum()))\n",
        needs=("model", "x_small", "target"),
    ),
    "comparison": _demo(
        "results = compare_attributions(model, x_small, target, n_steps=4)\n"
        "show(plot_comparison(results, image01))\n",
        needs=("model", "x_small", "target", "image01"),
    ),
}

# --------------------------------------------------------------------------- generating


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
        match = _HEADING.match(line)
        if match and len(match.group(1)) == 2:
            current = match.group(2)
            sections[current] = []
        elif match:
            current = None
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


@cache
def generated_statements() -> frozenset[str]:
    """``ast.dump`` of each top-level statement of the set-up and demo cells: work the
    notebook itself does, which the notes about a submission leave out."""
    sources = [_strip_magics(src)[0] or "" for src in [SETUP_CELL, *DEMO_CELLS.values()]]
    return frozenset(ast.dump(node) for src in sources for node in ast.parse(src).body)


def question_headings() -> list[str]:
    """The conceptual questions' ``## `` headings, from the template's answers.md."""
    from grader.tasks.answers import template_headings

    return template_headings()


def task_cells(module: str) -> tuple[str, str]:
    """``module``'s markdown introduction (:data:`TASK_TEXT`) and demo cell (:data:`DEMO_CELLS`).

    Raises:
        LookupError: the task has no entry in one of them (the message names the file).
    """
    missing = [name for name, table in (("TASK_TEXT", TASK_TEXT), ("DEMO_CELLS", DEMO_CELLS))
               if module not in table]
    if missing:
        raise LookupError(f"task {module!r} has no notebook text: add its entry to "
                          f"{' and '.join(missing)} in grader/submission/notebook.py (README: Adding a task)")
    return TASK_TEXT[module], DEMO_CELLS[module]


def _task_number(module: str) -> int:
    return next(t.number for t in TASKS if t.module == module)


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
        number = _task_number(module)
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


# --------------------------------------------------------------------------- reading


@dataclass
class _Unit:
    """One top-level statement of a code cell that may be kept."""

    cell: int
    order: int
    node: ast.stmt
    kind: str  # "import" | "def" | "assign"
    binds: set[str]
    loads_now: set[str]  # names evaluated when the statement runs
    loads_later: set[str]  # names a function or method body looks up when called


@dataclass(frozen=True)
class NotebookLocations:
    """Where a notebook submission defines the graded names, so that messages written for
    the package (``load_model in model.py``) can speak of the notebook instead.

    Attributes:
        notebook: the notebook's file name, e.g. ``"lab3.ipynb"``.
        cells: graded name -> the cell (numbered from 1 over all cells) of its last
            definition, the one that counts.
    """

    notebook: str
    cells: dict[str, int] = field(default_factory=dict)
    unit: str = "cell"  # "line" for a script: ``cells`` then holds line numbers

    def localize(self, message: str) -> str:
        """``message`` in the notebook's terms.

        ``load_model in model.py`` (or ```transform` in preprocessing.py``) becomes
        ``load_model in lab3.ipynb (cell 5)`` (no cell when the notebook does not define
        it); ``student_template/model.py`` becomes ``the Task 1 code cell of the lab's
        notebook``; any other ``model.py`` becomes ``lab3.ipynb``.
        """
        def replace(match: re.Match[str]) -> str:
            tick, name, template, module = match.groups()
            if name is not None:
                cell = self.cells.get(name)
                return f"{tick}{name}{tick} in {self.notebook}" + (
                    f" ({self.unit} {cell})" if cell else "")
            if template and self.unit == "line":  # a script: the template is where to look
                return f"student_template/{module}.py"
            if template:
                return f"the Task {_task_number(module)} code cell of the lab's notebook"
            return self.notebook

        return _MODULE_MENTION.sub(replace, message)

    def to_dict(self) -> dict[str, object]:
        return {"notebook": self.notebook, "cells": dict(self.cells), "unit": self.unit}

    @classmethod
    def from_dict(cls, data: object) -> NotebookLocations | None:
        """Locations from :meth:`to_dict`'s form; None unless the types and sizes are what it
        writes (the data may come from a graded child: it only ever phrases messages)."""
        if not isinstance(data, dict):
            return None
        notebook, cells = data.get("notebook"), data.get("cells")
        unit = data.get("unit", "cell")
        if unit not in ("cell", "line"):
            return None
        if not (isinstance(notebook, str) and 0 < len(notebook) <= 255 and isinstance(cells, dict)
                and len(cells) <= 1000 and all(
                    isinstance(k, str) and k.isidentifier() and len(k) <= 100
                    and type(v) is int and v > 0 for k, v in cells.items())):
            return None
        return cls(notebook=notebook, cells=dict(cells), unit=unit)

    @classmethod
    def read(cls, path: Path) -> NotebookLocations | None:
        """The locations :func:`write_package` saved at ``path``; None when the file is not
        what it writes."""
        try:
            if path.stat().st_size > 256 * 1024:
                return None
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError):
            return None


_MODULE_NAMES = "|".join(TASK_MODULES)
# `name` in module.py | (student_template/)module.py
_MODULE_MENTION = re.compile(
    rf"(`?)([A-Za-z_]\w*)\1 in (?:{_MODULE_NAMES})\.py\b|(student_template/)?\b({_MODULE_NAMES})\.py\b"
)


@dataclass
class NotebookBuild:
    """What :func:`build_package` made of a notebook."""

    modules: dict[str, str]
    answers: str
    notes: list[str] = field(default_factory=list)
    locations: NotebookLocations | None = None
    word: str = "cell"  # what a number in the notes counts: notebook cells or script lines
    top_level: str = ""  # every code cell that parses, in order (grader.probe.top_level runs it)


def read_notebook(path: Path) -> list[dict]:
    """The cells of an nbformat-4 notebook (``cell_type``, ``source`` as one string).

    Raises:
        ImplementationError: not JSON, not a notebook, or not nbformat 4.
    """
    name = path.name
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ImplementationError(f"{name}: over {MAX_NOTEBOOK_BYTES // 2**20} MB; clear the "
                                  "outputs (Cell > All Output > Clear) and submit it again")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImplementationError(f"{name} is not a notebook: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ImplementationError(
            f"{name} is not a valid notebook: not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); was it saved completely? Download it again from Jupyter "
            "(File > Download) and submit that file") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ImplementationError(f"{name} is not a Jupyter notebook (no list of cells)")
    if data.get("nbformat") != 4:
        raise ImplementationError(
            f"{name} is nbformat {data.get('nbformat')!r}; the grader reads nbformat 4 "
            "(save it with Jupyter 4 or newer, or convert it with `jupyter nbconvert --to "
            "notebook`)")
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            source = ""
        cells.append({"cell_type": str(cell.get("cell_type", "")), "source": source})
    return cells


def read_script(path: Path) -> list[dict]:
    """A Python script as pseudo-cells, one per top-level statement (statements sharing a
    line stay together), each numbered by its first line (decorators included): the
    notes and messages then speak of the script's lines. A script that does not parse is
    one cell numbered 1, so the note says where its syntax error is.

    Raises:
        ImplementationError: over the size cap, or not UTF-8 text.
    """
    name = path.name
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ImplementationError(f"{name}: over {MAX_NOTEBOOK_BYTES // 2**20} MB; hand in "
                                  "your lab script (no data pasted into it)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImplementationError(f"{name} is not UTF-8 text ({exc.reason}); save it as "
                                  "UTF-8 and submit it again") from None
    if len(text) > MAX_CODE_CHARS:
        raise ImplementationError(
            f"{name}: {len(text):,} characters of code (the grader reads at most "
            f"{MAX_CODE_CHARS:,}); remove generated or pasted data from the script")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [{"cell_type": "code", "source": text, "number": 1}]
    lines = text.splitlines(keepends=True)
    starts: list[int] = []
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        if not starts or first > starts[-1]:
            starts.append(first)
    cells = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(lines)
        cells.append({"cell_type": "code", "source": "".join(lines[start - 1:end]),
                      "number": start})
    return cells


def read_cells(path: Path) -> tuple[list[dict], str]:
    """(cells, the word for a cell's number): a notebook's cells ("cell"), or a script's
    statements ("line"). Raises ImplementationError as :func:`read_notebook` does."""
    if path.suffix.lower() == ".py":
        return read_script(path), "line"
    return read_notebook(path), "cell"


def interface_names() -> dict[str, set[str]]:
    """The names each task module of the template binds at its top: what probes may use."""
    names = {}
    for module in TASK_MODULES:
        tree = ast.parse((TEMPLATE_DIR / f"{module}.py").read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        names[module] = found
    return names


def _strip_magics(source: str) -> tuple[str | None, bool, str | None]:
    """(python source or None, whether magics were removed, why the cell is not Python)."""
    lines = source.splitlines()
    stripped = False
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in _PYTHON_CELL_MAGICS:
            return None, True, f"a %%{magic} cell (not Python)"
    out = []
    for line in lines:
        body = line.lstrip()
        if body.startswith(("%", "!")):
            out.append(line[: len(line) - len(body)] + "pass")
            # `%matplotlib inline` only sets up plotting: the grader loses nothing by it.
            stripped = stripped or not _MATPLOTLIB_MAGIC.match(body)
        else:
            out.append(line)
    return "\n".join(out), stripped, None


def _analyse(node: ast.stmt) -> tuple[set[str], set[str], set[str]]:
    """(bound names, names loaded when it runs, names loaded by bodies when called)."""
    if isinstance(node, ast.AnnAssign):  # annotations are not evaluated (future import)
        node = ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)
    table = symtable.symtable(ast.unparse(node), "<cell>", "exec")
    binds = {s.get_name() for s in table.get_symbols()
             if s.is_assigned() or s.is_imported() or s.is_namespace()}
    now = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    later: set[str] = set()
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        later.update(s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced())
        stack.extend(child.get_children())
    return binds, now, later


def _is_stub(node: ast.stmt) -> bool:
    """A function whose body (after its docstring and comments) only raises NotImplementedError."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [s for s in node.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _kind(node: ast.stmt) -> str | None:
    """What a top-level statement is: a definition we may keep, or None (work; dropped)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return "def"
    if isinstance(node, (ast.Assign, ast.AugAssign)) or (
        isinstance(node, ast.AnnAssign) and node.value is not None
    ):
        return "assign"
    if isinstance(node, (ast.If, ast.Try)) and _only_defines(node):
        # `try: import x / except ImportError: ...` style guards: kept when they only define.
        return "assign"
    return None


def _only_defines(node: ast.stmt) -> bool:
    """An ``if``/``try`` whose branches only import, define, assign or pass (the bodies of
    its definitions are not looked into). One pass over the branches: linear in their size."""
    todo = [node]
    while todo:
        current = todo.pop()
        branches = [current.body, current.orelse]
        if isinstance(current, ast.Try):
            branches += [h.body for h in current.handlers] + [current.finalbody]
        for stmt in (s for branch in branches for s in branch):
            if isinstance(stmt, (ast.If, ast.Try)):
                todo.append(stmt)
            elif not (_kind_simple(stmt) or isinstance(stmt, ast.Pass) or (
                    isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))):
                return False
    return True


def _kind_simple(node: ast.stmt) -> bool:
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef, ast.Assign, ast.AugAssign)) or (
        isinstance(node, ast.AnnAssign) and node.value is not None)


def _first_line(source: str) -> str:
    line = next((x.strip() for x in source.splitlines() if x.strip()), "")
    return line if len(line) <= 50 else line[:47] + "..."


def _cells_text(cells: list[int]) -> str:
    cells = sorted(set(cells))
    shown = ", ".join(str(c) for c in cells[:10]) + (", ..." if len(cells) > 10 else "")
    return f"cell{'s' if len(cells) > 1 else ''} {shown}"


class _ParseBudget:
    """The time a notebook's parse may take, and a way to stop it early (Ctrl-C in a batch)."""

    def __init__(self, name: str, seconds: float, should_stop: Callable[[], bool] | None) -> None:
        self.name = name
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.should_stop = should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ParseInterrupted(f"{self.name}: reading the notebook was interrupted")
        if time.monotonic() > self.deadline:
            raise ImplementationError(
                f"{self.name}: reading the notebook took over {self.seconds:g} s and was "
                "stopped; hand in the lab's notebook with your code (no generated code)")


def _check_bounds(name: str, cells: list[dict]) -> None:
    """Raises ImplementationError when the notebook has more code than the grader reads."""
    code = [c["source"] for c in cells if c["cell_type"] == "code"]
    if len(code) > MAX_CODE_CELLS:
        raise ImplementationError(
            f"{name}: {len(code):,} code cells (the grader reads at most {MAX_CODE_CELLS:,}); "
            "hand in the lab's notebook with your code")
    chars = sum(len(c) for c in code)
    if chars > MAX_CODE_CHARS:
        raise ImplementationError(
            f"{name}: {chars:,} characters of code (the grader reads at most "
            f"{MAX_CODE_CHARS:,}); remove generated or pasted data from the code cells")


# CPython 3.11's ast module keeps one recursion-depth counter per interpreter: two threads
# building ASTs at once (two staging threads of a batch, or a traceback's caret anchors in
# another thread) can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905). Builds are serialised, and one that still meets it is retried.
_AST_LOCK = threading.Lock()
_AST_RETRIES = 3


def build_package(path: Path, *, seconds: float | None = None,
                  should_stop: Callable[[], bool] | None = None) -> NotebookBuild:
    """Read the notebook (or script) at ``path``: :func:`_build_package` one at a time, with
    the CPython 3.11 ast race retried (see :data:`_AST_LOCK`)."""
    for attempt in range(_AST_RETRIES):
        try:
            with _AST_LOCK:
                return _build_package(path, seconds=seconds, should_stop=should_stop)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == _AST_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _build_package(path: Path, *, seconds: float | None = None,
                   should_stop: Callable[[], bool] | None = None) -> NotebookBuild:
    """Read the notebook at ``path`` into task module sources, answers.md and notes.

    Cells are numbered from 1 over all cells (markdown included), as Jupyter lists them.
    Linear in the notebook's size, and bounded: :data:`MAX_CODE_CELLS`,
    :data:`MAX_CODE_CHARS`, :data:`MAX_STATEMENTS` and ``seconds`` (default
    :data:`PARSE_SECONDS`). ``should_stop`` is polled between statements.

    Raises:
        ImplementationError: not a valid nbformat-4 notebook, no code cell at all, or over
            one of the bounds (the message says which).
        ParseInterrupted: ``should_stop()`` returned True.
    """
    cells, word = read_cells(path)
    _check_bounds(path.name, cells)
    budget = _ParseBudget(path.name, PARSE_SECONDS if seconds is None else seconds, should_stop)
    notes: list[str] = []
    units: list[_Unit] = []
    magic_cells, syntax_notes, work_cells, not_python = [], [], [], []
    work_count = 0
    statements = 0
    runnable: list[str] = []  # the code that parses, in order: what a top-level run executes
    for number, cell in enumerate(cells, start=1):
        number = cell.get("number", number)
        if cell["cell_type"] != "code" or not cell["source"].strip():
            continue
        budget.check()
        source, had_magics, not_py = _strip_magics(cell["source"])
        if had_magics:
            magic_cells.append(number)
        if source is None:
            not_python.append(f"cell {number} is {not_py}; skipped")
            continue
        try:
            tree = ast.parse(source)
            runnable.append(f"# {word} {number}\n{source}" if word == "cell" else source)
        except SyntaxError as exc:
            if word == "line":
                syntax_notes.append(
                    f"{path.name} has a syntax error at line {number + (exc.lineno or 1) - 1}: "
                    f"{exc.msg}; nothing in it was used (Python cannot run it either: fix it)")
            else:
                syntax_notes.append(
                    f"cell {number} (`{_first_line(cell['source'])}`) has a syntax error at "
                    f"line {exc.lineno}: {exc.msg}; nothing in it was used (fix it, or delete "
                    "the cell)")
            continue
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            syntax_notes.append(f"cell {number} cannot be parsed ({type(exc).__name__}); "
                                "nothing in it was used")
            continue
        statements += len(tree.body)
        if statements > MAX_STATEMENTS:
            raise ImplementationError(
                f"{path.name}: over {MAX_STATEMENTS:,} top-level statements (at cell {number}); "
                "the grader reads at most that many: hand in the lab's notebook with your code")
        for node in tree.body:
            budget.check()
            kind = _kind(node)
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
                continue  # the template's `from .preprocessing import ...`: one namespace here
            if kind is None:
                if not (isinstance(node, (ast.Expr, ast.Pass))
                        and (isinstance(node, ast.Pass) or isinstance(node.value, ast.Constant))
                        ) and ast.dump(node) not in generated_statements():
                    work_count += 1
                    work_cells.append(number)
                continue
            try:
                binds, now, later = _analyse(node)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                # symtable rejects a few things ast accepts (e.g. nonlocal at the top)
                syntax_notes.append(f"cell {number}: a statement at line {node.lineno} cannot be used")
                continue
            units.append(_Unit(number, len(units), node, kind, binds, now, later))
    if not any(c["cell_type"] == "code" and c["source"].strip() for c in cells):
        raise ImplementationError(
            f"{path.name}: the script is empty" if word == "line" else
            f"{path.name}: the notebook has no code cells; write your code in the task cells "
            "of the lab's notebook")

    definers: dict[str, list[_Unit]] = {}
    for unit in units:
        for name in unit.binds:
            definers.setdefault(name, []).append(unit)
    interface = interface_names()
    graded = set().union(*interface.values())

    modules = {}
    used_units: set[int] = set()
    for module in TASK_MODULES:
        keep = _reachable(interface[module], definers)
        used_units.update(u.order for u in keep)
        modules[module] = _module_source(path.name, keep, definers, notes, word)

    # Statements that compute something (a call in an assignment nothing graded uses).
    for unit in units:
        if unit.order not in used_units and unit.kind == "assign" and any(
            isinstance(n, ast.Call) for n in ast.walk(unit.node)
        ) and ast.dump(unit.node) not in generated_statements():
            work_count += 1
            work_cells.append(unit.cell)
    for name in sorted(graded):
        defs = [u for u in definers.get(name, []) if u.kind != "import"]
        if len(defs) > 1:
            where = ", ".join(str(u.cell) for u in defs)
            what = "defined" if defs[-1].kind == "def" else "assigned"
            note = (f"`{name}` is {what} in cells {where}: the last one (cell {defs[-1].cell}) "
                    "is used, as when the notebook runs top to bottom")
            if _is_stub(defs[-1].node) and not all(_is_stub(u.node) for u in defs):
                note += ("; it is still the template's stub (raises NotImplementedError): "
                         "delete it, or move your solution below it")
            notes.append(note)
    notes[:0] = syntax_notes + not_python
    if magic_cells:
        notes.append(f"IPython magics and shell lines (% ..., ! ...) in {_cells_text(magic_cells)} "
                     "were ignored")
    if work_count:
        notes.append(f"{work_count} top-level statement{'s' if work_count > 1 else ''} that do "
                     f"work (calls, plots, downloads, loops, ...) in {_cells_text(work_cells)} "
                     "were not run: the grader only takes definitions (functions, classes, "
                     "imports, constants)")
    # Functions the grader did not use, in cells that hold nothing it used (the handout's
    # task1() ... task8(); not a helper beside graded code, nor the notebook's own set-up).
    used_cells = {u.cell for u in units if u.order in used_units}
    unused = sorted({f"{name}()" for u in units
                     if u.order not in used_units and u.kind == "def"
                     and u.cell not in used_cells
                     and ast.dump(u.node) not in generated_statements()
                     for name in u.binds if not name.startswith("_")})
    if unused:
        shown = ", ".join(unused[:15]) + (", ..." if len(unused) > 15 else "")
        notes.append(f"functions and classes the grader did not use: {shown} (it calls only "
                     "the names the lab's template defines; see the README for what a "
                     "handout-shaped submission is graded on)")
    if word == "line":
        notes = [_in_script_terms(n) for n in notes]
    locations = NotebookLocations(path.name, {name: definers[name][-1].cell
                                              for name in sorted(graded) if name in definers},
                                  unit=word)
    answers = _answers_markdown(cells)
    return NotebookBuild(modules=modules, answers=answers, notes=notes, locations=locations,
                         word=word, top_level="\n".join(runnable) + "\n")


def _in_script_terms(note: str) -> str:
    """A note phrased for a notebook (cells) said of a script (lines)."""
    note = re.sub(r"\bcell(s?) (\d)", r"line\1 \2", note)
    return note.replace("as when the notebook runs", "as when the script runs")


def _reachable(roots: set[str], definers: dict[str, list[_Unit]]) -> list[_Unit]:
    """The units that the last definitions of ``roots`` need, transitively."""
    keep: dict[int, _Unit] = {}
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in definers:
            continue
        seen.add(name)
        unit = definers[name][-1]  # the last definition wins
        if unit.order not in keep:
            keep[unit.order] = unit
            todo.extend(unit.loads_now | unit.loads_later)
    return sorted(keep.values(), key=lambda u: u.order)


def _module_source(notebook: str, keep: list[_Unit], definers: dict[str, list[_Unit]],
                   notes: list[str], word: str = "cell") -> str:
    """Imports first, then the other units in dependency order (cell order otherwise)."""
    imports = [u for u in keep if u.kind == "import"]
    rest = [u for u in keep if u.kind != "import"]
    kept_orders = {u.order for u in rest}
    deps: dict[int, set[int]] = {u.order: set() for u in rest}
    last_kept: dict[str, int] = {}
    for unit in sorted(rest, key=lambda u: u.order):
        for name in unit.loads_now - unit.binds:
            for other in reversed(definers.get(name, [])):
                if other.order in kept_orders:
                    deps[unit.order].add(other.order)
                    break
        for name in unit.binds:  # two kept units binding one name keep their cell order
            if name in last_kept:
                deps[unit.order].add(last_kept[name])
            last_kept[name] = unit.order
    # Kahn's algorithm, taking the earliest ready unit (cell order) first; a cycle falls back
    # to cell order for what is left. O(n log n) in the kept units.
    dependents: dict[int, list[int]] = {o: [] for o in deps}
    for order, needs in deps.items():
        needs.discard(order)
        for need in needs:
            dependents[need].append(order)
    waiting = {order: len(needs) for order, needs in deps.items()}
    by_order = {u.order: u for u in rest}
    ready = [order for order, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    pending = sorted(by_order)
    ordered: list[_Unit] = []
    done: set[int] = set()
    cursor = 0
    while len(done) < len(by_order):
        if ready:
            order = heapq.heappop(ready)
        else:
            while pending[cursor] in done:
                cursor += 1
            order = pending[cursor]
        if order in done:
            continue
        done.add(order)
        ordered.append(by_order[order])
        for later in dependents[order]:
            waiting[later] -= 1
            if waiting[later] == 0 and later not in done:
                heapq.heappush(ready, later)

    lines = [f'"""Built by the lab3 grader from the notebook {notebook!r}: its definitions only."""',
             "", "from __future__ import annotations", ""]
    for unit in imports:
        module = _imported_module(unit.node)
        if module is not None and not _importable(module):
            note = (f"{word} {unit.cell}: `{ast.unparse(unit.node)[:80]}`: module {module!r} is not "
                    "installed where the grader runs; the import was skipped")
            if note not in notes:
                notes.append(note)
            continue
        lines += [f"# notebook {word} {unit.cell}", ast.unparse(unit.node)]
    for unit in ordered:
        lines += ["", "", f"# notebook {word} {unit.cell}", ast.unparse(unit.node)]
    return "\n".join(lines) + "\n"


def _imported_module(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Import):
        return node.names[0].name.split(".")[0]
    if isinstance(node, ast.ImportFrom) and node.module:
        return node.module.split(".")[0]
    return None


def _importable(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _answers_markdown(cells: list[dict]) -> str:
    """answers.md from the markdown cells: each ``## `` heading's text, in its own cell and
    in the markdown cells after it, up to the next level-1 or level-2 heading."""
    sections: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for line in cell["source"].splitlines():
            match = _HEADING.match(line)
            if match and len(match.group(1)) == 2:
                current = []
                sections.append((match.group(2), current))
            elif match:
                current = None
            elif current is not None:
                current.append(line)
        if current is not None:
            current.append("")
    out = ["# Answers (from the notebook)", ""]
    for heading, body in sections:
        out += [f"## {heading}", "", "\n".join(body).strip(), ""]
    return "\n".join(out)


def write_package(path: Path, dest: Path, *,
                  should_stop: Callable[[], bool] | None = None) -> list[str]:
    """Build the package of notebook ``path`` into folder ``dest``; returns the notes.

    ``dest`` gets one ``<module>.py`` per task, ``answers.md``, ``notebook_notes.json`` and
    :data:`LOCATIONS_FILE` (read back by ``load_implementation``, also where ``lab3 grade``
    stages the package for its child).
    """
    build = build_package(path, should_stop=should_stop)
    dest.mkdir(parents=True, exist_ok=True)
    for module, source in build.modules.items():
        (dest / f"{module}.py").write_text(source, encoding="utf-8")
    answers = build.answers
    beside = path.parent / "answers.md"
    if build.word == "line" and beside.is_file() and not beside.is_symlink():
        # A script has no markdown cells: its answers are the answers.md handed in with it.
        answers = beside.read_bytes()[:200_000].decode("utf-8", errors="replace")
    (dest / "answers.md").write_text(answers, encoding="utf-8")
    (dest / "notebook_notes.json").write_text(json.dumps(build.notes, indent=1), encoding="utf-8")
    from grader.probe.top_level import TOP_LEVEL_FILE

    (dest / TOP_LEVEL_FILE).write_text(build.top_level, encoding="utf-8")
    if build.locations is not None:
        (dest / LOCATIONS_FILE).write_text(json.dumps(build.locations.to_dict(), indent=1),
                                           encoding="utf-8")
    return build.notes
