"""Task 5: visualising convolution filters by activation maximisation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

# Early, middle and late convolution layers and three filters of each (Task 5's grid).
DEFAULT_LAYERS: tuple[str, ...] = ("conv1", "layer2.0.conv1", "layer4.2.conv2")
DEFAULT_FILTERS: tuple[int, ...] = (0, 1, 2)


def postprocess_filter(img_tensor: torch.Tensor) -> np.ndarray:
    """Helper function for post-processing and display (handout's helper).

    Returns:
        float32 array ``(H, W, 3)`` scaled to [0, 1].
    """
    img = img_tensor.squeeze(0).cpu().detach().numpy()
    img = np.transpose(img, (1, 2, 0))
    # Normalize to [0, 1] for display; a constant image maps to zeros.
    span = img.max() - img.min()
    img = (img - img.min()) / span if span > 0 else np.zeros_like(img)
    return img.astype(np.float32)


def visualize_filter(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    filter_index: int,
    iterations: int = 50,
    lr: float = 0.1,
    *,
    image_size: int = 224,
    seed: int | None = None,
) -> np.ndarray:
    """Generate an image that maximally activates one filter of one layer.

    Starts from ``torch.randn(1, 3, image_size, image_size)`` (after
    ``torch.manual_seed(seed)`` when ``seed`` is given) and runs ``iterations``
    Adam steps (``lr``, weight decay 1e-6) on ``-mean(activation[0, filter_index])``.

    Args:
        layer: a module of ``model`` or its dotted name (``"layer2.0.conv1"``).

    Returns:
        float32 array ``(image_size, image_size, 3)`` in [0, 1] (``postprocess_filter``).

    Raises:
        ValueError: ``layer`` is not a module of ``model`` or ``filter_index`` is out
            of range for it.
    """
    # TODO Task 5: the handout's activation maximisation (forward hook, Adam, remove the hook).
    raise NotImplementedError("Task 5: implement visualize_filter (activation maximisation)")


def plot_filter_grid(
    model: torch.nn.Module,
    layers: Sequence[str] = DEFAULT_LAYERS,
    filters: Sequence[int] = DEFAULT_FILTERS,
    *,
    iterations: int = 50,
    lr: float = 0.1,
    image_size: int = 224,
    seed: int | None = 0,
) -> Figure:
    """3x3 grid: one row per layer (early, middle, late), one column per filter.

    Returns:
        matplotlib ``Figure`` with ``len(layers) * len(filters)`` image axes, each
        titled with its layer name and filter number (e.g. ``"conv1 #0"``).
    """
    # TODO Task 5: call visualize_filter for each (layer, filter) and show them in a grid.
    raise NotImplementedError("Task 5: plot the 3x3 grid of filter visualisations")
