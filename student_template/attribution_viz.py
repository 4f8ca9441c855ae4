"""Task 7: the ways Captum can draw an attribution map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

METHODS: tuple[str, ...] = (
    "heat_map",
    "blended_heat_map",
    "original_image",
    "masked_image",
    "alpha_scaling",
)
SIGNS: tuple[str, ...] = ("all", "positive", "negative", "absolute_value")


def to_display_image(tensor: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` or ``(3, H, W)`` tensor to an ``(H, W, 3)`` float array (given helper)."""
    array = tensor.detach().cpu().squeeze(0).numpy()
    return np.transpose(array, (1, 2, 0))


def visualize_attribution_grid(
    attributions: torch.Tensor,
    image: torch.Tensor,
    *,
    methods: Sequence[str] = METHODS,
    signs: Sequence[str] = SIGNS,
) -> Figure:
    """Grid of ``captum.attr.visualization.visualize_image_attr``: rows = methods, columns = signs.

    Args:
        attributions: ``(1, 3, H, W)`` attributions (e.g. from Task 6).
        image: ``(1, 3, H, W)`` image in [0, 1] to draw under the attributions.

    Returns:
        matplotlib ``Figure`` with ``len(methods) * len(signs)`` axes; each cell that
        Captum accepts is drawn and titled ``"<method> / <sign>"``; a combination Captum
        rejects (``masked_image`` and ``alpha_scaling`` with sign ``all``) is left
        blank with the title ``"<method> / <sign>: not supported"``.
    """
    # TODO Task 7: call visualize_image_attr(..., plt_fig_axis=(fig, ax), use_pyplot=False) per cell.
    raise NotImplementedError("Task 7: draw the grid of visualisation methods x signs")
