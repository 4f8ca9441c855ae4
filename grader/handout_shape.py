"""Submissions written from the handout instead of the template: its functions called its way.

The handout names five functions and shows how each is used; a student who wrote the lab
from the handout alone (a script, or a notebook of its cells) has those and not the
template's additions. The probes call the template's signatures, so before a task's
probe uses a module, :func:`adapt` fills the gap the handout's way, in the probing
process (beside the student's code; the records and checks are unchanged):

- ``preprocessing.preprocess_image(img)`` without the template's ``load_image`` helper
  (the handout's version calls ``transform(img)`` directly): it is handed the image
  decoded by the grader's own ``load_image`` (an upright RGB ``PIL.Image``, as the
  handout's ``Image.open`` gives), never a path.
- ``inference.predict`` missing but ``postprocess`` defined: ``predict(model, img,
  labels)`` is the handout's inference cell, composed of the student's own functions:
  ``postprocess(model(preprocess_image(img)), labels)``.
- ``filters.visualize_filter(model, layer, filter_index, iterations=50, lr=0.1)`` without
  the template's ``image_size``/``seed`` keywords: :func:`handout_visualize_filter`
  tells the probe, which then passes the layer as a module, seeds the global generator
  itself and judges the handout's fixed 224 px (see :mod:`grader.tasks.filters`).

Each adaptation adds a note to the implementation's notes, so the feedback says how the
function was called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

# The handout's visualize_filter starts from torch.randn(1, 3, 224, 224): its one size.
HANDOUT_FILTER_SIZE = 224


def adapt(name: str, module: ModuleType, load_module: Callable[[str], ModuleType],
          notes: list[str]) -> None:
    """Adapt task module ``name`` of a handout-shaped submission in place (see the module
    docstring); a template-shaped module is left as it is. ``load_module`` gives another
    task module of the same implementation (adapted too); ``notes`` gets one line per
    adaptation."""
    namespace = module.__dict__
    if name == "preprocessing":
        _adapt_preprocessing(namespace, notes)
    elif name == "inference":
        _adapt_inference(namespace, load_module, notes)


def _adapt_preprocessing(namespace: dict[str, Any], notes: list[str]) -> None:
    student = namespace.get("preprocess_image")
    if not callable(student) or "load_image" in namespace:
        return
    # The template's given helper (the reference is hidden from a sandboxed child).
    from student_template.preprocessing import load_image

    def preprocess_image(img: Any) -> Any:
        return student(load_image(img))

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
