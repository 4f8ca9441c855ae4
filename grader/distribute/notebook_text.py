"""The course notebook's text: the introduction, each task's markdown and demo cell, the set-up cell.

:mod:`grader.distribute.notebook_writer` builds the student and reference notebooks from it
(``lab3 notebook``); :mod:`grader.submission.notebook` recognises its set-up and demo
statements in a student's notebook (:func:`~grader.submission.notebook.generated_statements`),
so that the notes about a submission leave them out. A new task needs its entries in
:data:`TASK_TEXT` and :data:`DEMO_CELLS` (README: Adding a task).
"""

from __future__ import annotations

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


def task_cells(module: str) -> tuple[str, str]:
    """``module``'s markdown introduction (:data:`TASK_TEXT`) and demo cell (:data:`DEMO_CELLS`).

    Raises:
        LookupError: the task has no entry in one of them (the message names the file).
    """
    missing = [name for name, table in (("TASK_TEXT", TASK_TEXT), ("DEMO_CELLS", DEMO_CELLS))
               if module not in table]
    if missing:
        raise LookupError(f"task {module!r} has no notebook text: add its entry to "
                          f"{' and '.join(missing)} in grader/distribute/notebook_text.py "
                          "(README: Adding a task)")
    return TASK_TEXT[module], DEMO_CELLS[module]


def question_headings() -> list[str]:
    """The conceptual questions' ``## `` headings, from the template's answers.md."""
    from grader.tasks.answers import template_headings

    return template_headings()
