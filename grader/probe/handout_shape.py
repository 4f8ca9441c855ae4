"""Submissions written from the handout instead of the template: its functions called its way.

The handout names five functions and shows how each is used; a student who wrote the lab
from the handout alone (a script, or a notebook of its cells) has those and not the
template's additions. The probes call the template's signatures, so before a task's
probe uses a module, :func:`adapt` fills the gap the handout's way, in the probing
process (beside the student's code; the records and checks are unchanged):

- ``preprocessing.preprocess_image(img)`` without the template's ``load_image`` helper
  (the handout's version calls ``transform(img)`` directly): it is handed the image
  decoded by the grader's own ``load_image`` (an upright RGB ``PIL.Image``, as the
  handout's ``Image.open`` gives); if that raises and the probe had a path, the path
  (a student who wrote ``Image.open(path)`` into it).
- ``inference.predict`` missing but ``postprocess`` defined: ``predict(model, img,
  labels)`` is the handout's inference cell, composed of the student's own functions:
  ``postprocess(model(preprocess_image(img)), labels)``.
- ``filters.visualize_filter(model, layer, filter_index, iterations=50, lr=0.1)`` without
  the template's ``image_size``/``seed`` keywords: :func:`handout_visualize_filter`
  tells the probe, which then passes the layer as a module, seeds the global generator
  itself and judges the handout's fixed 224 px (see :mod:`grader.tasks.filters`).

With ``--run-top-level`` (an instructor's choice: it runs the submission's top-level
code, see :mod:`grader.probe.top_level`), Task 1's ``load_model``/``load_labels`` come from the
``model`` and ``labels`` the run built, and each task the handout asks as top-level code
(graph, grid, IG, visualisations, NoiseTunnel, comparison) without the template's function
gets a "graded by hand" note listing what the run produced for it.

Each adaptation adds a note to the implementation's notes, so the feedback says how the
function was called.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

# The handout's visualize_filter starts from torch.randn(1, 3, 224, 224): its one size.
HANDOUT_FILTER_SIZE = 224


def adapt(name: str, module: ModuleType, load_module: Callable[[str], ModuleType],
          notes: list[str], *, run: Callable[[], Any] | None = None) -> None:
    """Adapt task module ``name`` of a handout-shaped submission in place (see the module
    docstring); a template-shaped module is left as it is. ``load_module`` gives another
    task module of the same implementation (adapted too); ``notes`` gets one line per
    adaptation. ``run`` gives the submission's top-level run
    (:class:`grader.probe.top_level.TopLevelRun`, or None when the instructor did not ask for it):
    Task 1's functions come from its ``model`` and ``labels``, and the tasks the handout
    asks as top-level code get a "graded by hand" note with what the run produced."""
    namespace = module.__dict__
    if name == "preprocessing":
        _adapt_preprocessing(namespace, notes)
    elif name == "inference":
        _adapt_inference(namespace, load_module, notes)
    if all(f in namespace for f in HAND_GRADED.get(name, ("",))):
        return
    result = run() if run is not None else None
    if result is None:  # run mode off, or no top-level code (a package)
        if name == "model" and "load_model" not in namespace:
            notes.append("load_model is not defined: if your model and labels are top-level "
                         "code (as in the handout), they are graded by hand, or by the "
                         "instructor's `lab3 grade --run-top-level`")
        return
    if name == "model":
        _adapt_model(namespace, result, notes)
    elif name in HAND_GRADED:
        notes.append(_hand_graded(name, result))


# What the handout asks as top-level code, per task module: the template's functions for it.
HAND_GRADED: dict[str, tuple[str, ...]] = {
    "model": ("load_model", "load_labels"),
    "graph": ("render_model_graph",),
    "filters": ("plot_filter_grid",),
    "integrated_gradients": ("integrated_gradients",),
    "attribution_viz": ("visualize_attribution_grid",),
    "noise_tunnel": ("noise_tunnel",),
    "comparison": ("compare_attributions", "plot_comparison"),
}


def _run_stopped(run: Any) -> str:
    return f"; the run stopped early: {run.error}" if run.error else ""


def _adapt_model(namespace: dict[str, Any], run: Any, notes: list[str]) -> None:
    """``load_model``/``load_labels`` from the run's ``model`` and ``labels`` globals."""
    import copy

    model = run.namespace.get("model")
    if "load_model" not in namespace and isinstance(model, torch.nn.Module):
        built = model

        def load_model(device: str | torch.device = "cpu") -> torch.nn.Module:
            # A copy per call: the probe moves and inspects it; the handout has no device.
            return copy.deepcopy(built).to(device)

        namespace["load_model"] = load_model
        notes.append("load_model is not defined: Task 1 was graded on the `model` your "
                     "top-level code built (run by the grader offline); the handout has no "
                     "device argument, so the grader moved a copy to each device it asked for")
    elif "load_model" not in namespace:
        notes.append("graded by hand: Task 1: the top-level run left no torch model named "
                     "`model`" + _run_stopped(run))
    labels = run.namespace.get("labels")
    if "load_labels" not in namespace and isinstance(labels, dict):
        given = dict(labels)

        def load_labels(path: Any = None) -> dict[int, str]:
            if path is not None:
                raise NotImplementedError(
                    "the handout's labels come from its download: load_labels(path) (a label "
                    "file) is the template's, see student_template/model.py")
            return dict(given)

        namespace["load_labels"] = load_labels
        notes.append("load_labels is not defined: the `labels` your top-level code made from "
                     "the handout's download (answered offline by the grader) were graded")


def _hand_graded(name: str, run: Any) -> str:
    """One "graded by hand" line: what the run produced that bears on task ``name``."""
    from grader.probe.top_level import evidence

    facts = evidence(run)
    tensors = [f"`{n}` {tuple(i['shape'])}" for n, i in facts["globals"].items()
               if "shape" in i and len(i["shape"]) == 4 and i["shape"][1] == 3][:6]
    figures = [f"{f['image_axes']} image panels" for f in facts["figures"]][:8]
    images = [f for f in facts["files"] if f.lower().endswith((".png", ".pdf", ".svg"))][:5]
    found = {
        "graph": f"files written: {', '.join(images) or 'none'}",
        "filters": f"figures: {', '.join(figures) or 'none'}",
        "integrated_gradients": f"image-shaped tensors: {', '.join(tensors) or 'none'}",
        "attribution_viz": f"figures: {', '.join(figures) or 'none'}",
        "noise_tunnel": f"image-shaped tensors: {', '.join(tensors) or 'none'}",
        "comparison": f"figures: {', '.join(figures) or 'none'}; image-shaped tensors: "
                      f"{', '.join(tensors) or 'none'}",
    }[name]
    missing = " and ".join(f"{f}()" for f in HAND_GRADED[name])
    if name == "graph":  # grader.check.top_level_checks judges the run's graphviz graph
        return (f"no {missing} to probe: graph_png was judged on the graphviz graph your "
                f"top-level code left (the handout's `dot`), run by the grader offline "
                f"({facts['seconds']:g} s): {found}; conv_names tests the template's "
                "conv_layer_names()" + _run_stopped(run))
    if name == "integrated_gradients":  # grader.check.top_level_checks judges the run's tensors
        return (f"no {missing} to probe: completeness and agreement were judged on the tensors "
                f"your top-level code left, run by the grader offline ({facts['seconds']:g} s): "
                f"{found}; the other checks test the template's function" + _run_stopped(run))
    return (f"graded by hand: no {missing} to probe; the handout asks this as top-level code, "
            f"which the grader ran offline ({facts['seconds']:g} s): {found}"
            + _run_stopped(run))


def _adapt_preprocessing(namespace: dict[str, Any], notes: list[str]) -> None:
    student = namespace.get("preprocess_image")
    if not callable(student) or "load_image" in namespace:
        return
    # The template's given helper (the reference is hidden from a sandboxed child).
    from student_template.preprocessing import load_image

    def preprocess_image(img: Any) -> Any:
        try:
            return student(load_image(img))
        except Exception as first:  # a function that takes a path is tried next
            if not isinstance(img, (str, os.PathLike)):
                raise
            try:
                return student(img)
            except Exception:  # noqa: BLE001 - the decoded image's error is the one to report
                raise first from None

    preprocess_image.__wrapped__ = student  # type: ignore[attr-defined]
    namespace["preprocess_image"] = preprocess_image
    notes.append("preprocess_image was given each image decoded as an RGB PIL.Image (as the "
                 "handout's Image.open gives it): your code has no load_image helper")


def _adapt_inference(namespace: dict[str, Any], load_module: Callable[[str], ModuleType],
                     notes: list[str]) -> None:
    postprocess = namespace.get("postprocess")
    if "predict" in namespace or not callable(postprocess):
        return

    def predict(model: torch.nn.Module, img: Any, labels: dict[int, str]) -> Any:
        preprocess_image = load_module("preprocessing").preprocess_image
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        output = model(preprocess_image(img).to(device))
        return postprocess(output, labels)

    namespace["predict"] = predict
    notes.append("predict is not defined: Task 3 was graded on the handout's inference cell "
                 "made of your functions, postprocess(model(preprocess_image(img)), labels)")


def handout_visualize_filter(function: Any) -> bool:
    """Whether ``function`` has the handout's signature ``(model, layer, filter_index,
    iterations=50, lr=0.1)``: no ``image_size`` or ``seed`` parameter and no ``**kwargs``
    to take them."""
    if not callable(function):
        return False
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return False
    return "image_size" not in parameters and "seed" not in parameters
