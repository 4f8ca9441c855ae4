"""Task 4: the model graph and its convolution layer names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import graphviz
import torch
from torchviz import make_dot

INSTALL_HINT = (
    "Graphviz's `dot` was not found, so the graph is saved as DOT source in {path}; for a PNG "
    "install Graphviz (sudo apt-get install graphviz, brew install graphviz or "
    "conda install graphviz) and run again"
)


def render_model_graph(
    model: torch.nn.Module,
    out_path: str | os.PathLike[str] = "resnet34_torchvision_graph",
    *,
    image_size: int = 224,
) -> Path:
    """Draw the autograd graph of ``model`` with torchviz.

    Runs one forward pass on a zero dummy input ``(1, 3, image_size, image_size)``
    with gradients enabled (also under ``torch.no_grad()`` or ``inference_mode()``), every
    module in eval mode, and draws ``make_dot(output,
    params=dict(model.named_parameters()))``. No backward pass is run. Afterwards
    the model is as it was: same parameters and buffers (BatchNorm statistics
    included), same ``.training`` flag on every module, ``.grad`` untouched.

    Args:
        out_path: file name without extension; ``.png`` is added. Missing parent
            folders are created.
        image_size: side of the dummy input ``(1, 3, image_size, image_size)``.

    Returns:
        Path of the written PNG (``<out_path>.png``), or of the ``.dot`` source
        (``<out_path>.dot``) when Graphviz's ``dot`` is not installed (a one-line
        hint on how to install it is printed).

    Raises:
        graphviz.CalledProcessError: ``dot`` is installed but fails to render.
    """
    out_path = os.fspath(out_path)
    dot = make_dot(_forward_for_graph(model, image_size), params=dict(model.named_parameters()))
    if shutil.which("dot") is not None:
        try:
            return Path(dot.render(out_path, format="png", cleanup=True))
        except graphviz.ExecutableNotFound:
            # `dot` vanished or is not runnable: graphviz wrote the source to
            # `out_path` before failing; the .dot file below replaces it.
            Path(out_path).unlink(missing_ok=True)
    dot_path = Path(dot.save(f"{out_path}.dot"))
    print(INSTALL_HINT.format(path=dot_path))
    return dot_path


def _forward_for_graph(model: torch.nn.Module, image_size: int) -> torch.Tensor:
    """``model(zeros)`` with autograd on and in eval mode; restores every ``.training`` flag.

    Eval mode keeps a model that was left in training mode from updating its
    BatchNorm running statistics; the graph's structure is the same in both modes.
    """
    # Zeros, not torch.randn as in the handout: the graph does not depend on the
    # values, and the global random state stays untouched.
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        # Created inside: under a caller's inference_mode it would be an inference
        # tensor, which autograd refuses to record.
        with torch.inference_mode(False), torch.enable_grad():
            dummy_input = torch.zeros(1, 3, image_size, image_size, device=device)
            return model(dummy_input)
    finally:
        for module, training in modes.items():
            module.training = training


def conv_layer_names(model: torch.nn.Module) -> list[str]:
    """Names of every ``nn.Conv2d`` in ``model``, in definition order.

    Names are those of ``model.named_modules()`` (dotted paths, usable with
    ``model.get_submodule``); subclasses of ``nn.Conv2d`` count, other
    convolutions (``Conv1d``, ``ConvTranspose2d``) do not.

    Returns:
        e.g. ``["conv1", "layer1.0.conv1", ..., "layer2.0.downsample.0", ...]``
        (36 names for ResNet-34).
    """
    return [
        name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)
    ]
