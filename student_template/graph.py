"""Task 4: the model graph and its convolution layer names."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def render_model_graph(
    model: torch.nn.Module,
    out_path: str | os.PathLike[str] = "resnet34_torchvision_graph",
    *,
    image_size: int = 224,
) -> Path:
    """Draw the autograd graph of ``model`` with torchviz.

    Args:
        out_path: file name without extension; ``.png`` is added.
        image_size: side of the dummy input ``(1, 3, image_size, image_size)``.

    Returns:
        Path of the written PNG, or of the ``.dot`` source when Graphviz's ``dot``
        is not installed (a one-line hint on how to install it is printed).
    """
    # TODO Task 4: make_dot(model(dummy_input), params=dict(model.named_parameters())).render(...)
    raise NotImplementedError("Task 4: render the model graph to PNG with torchviz")


def conv_layer_names(model: torch.nn.Module) -> list[str]:
    """Names of every ``nn.Conv2d`` in ``model``, in definition order.

    Returns:
        e.g. ``["conv1", "layer1.0.conv1", ..., "layer2.0.downsample.0", ...]``
        (36 names for ResNet-34).
    """
    # TODO Task 4: walk model.named_modules() and keep the Conv2d layers.
    raise NotImplementedError("Task 4: list the names of all Conv2d layers")
