"""Task 7 reference: ``visualize_attribution_grid`` (methods x signs).

No model needed: seeded attributions and images, drawn with the Agg canvas, and
each cell judged by the pixels inside its axes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from reference.attribution_viz import METHODS, SIGNS, UNSUPPORTED, visualize_attribution_grid

SIZE = 32
GRID = [(m, s) for m in METHODS for s in SIGNS]


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def grid(image):
    return visualize_attribution_grid(seeded(1, 3, SIZE, SIZE), image)


def cell_variance(fig) -> list[float]:
    """Pixel variance inside each axes of ``fig`` (0 for a blank cell)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(float)
    height = pixels.shape[0]
    variances = []
    for ax in fig.axes:
        x0, y0, x1, y1 = ax.get_window_extent().extents
        # Display y grows upwards, array rows downwards; 2 px in to skip the frame.
        cell = pixels[int(height - y1) + 2 : int(height - y0) - 2, int(x0) + 2 : int(x1) - 2]
        variances.append(float(cell.var()))
    return variances


def test_one_axes_per_method_and_sign(grid):
    assert len(grid.axes) == len(METHODS) * len(SIGNS) == 20


def test_titles_name_method_and_sign(grid):
    expected = [
        f"{m} / {s}: not supported" if (m, s) in UNSUPPORTED else f"{m} / {s}" for m, s in GRID
    ]
    assert [ax.get_title() for ax in grid.axes] == expected


def test_unsupported_are_the_signed_masks():
    assert {("masked_image", "all"), ("alpha_scaling", "all")} == UNSUPPORTED


def test_supported_cells_drawn_unsupported_blank(grid):
    drawn = [v > 0 for v in cell_variance(grid)]
    assert drawn == [combo not in UNSUPPORTED for combo in GRID]
    assert sum(drawn) == 18


@pytest.mark.parametrize(
    "kind", ["zeros", "all-positive", "all-negative", "one-channel-cancels"]
)
def test_sign_without_values_still_draws(image, kind):
    base = seeded(1, 3, SIZE, SIZE).abs() + 0.1
    attributions = {
        "zeros": torch.zeros(1, 3, SIZE, SIZE),
        "all-positive": base,
        "all-negative": -base,
        # Captum sums the channels: +a, -a, 0 sums to zero everywhere.
        "one-channel-cancels": torch.cat([base[:, :1], -base[:, :1], 0 * base[:, :1]], dim=1),
    }[kind]
    fig = visualize_attribution_grid(attributions, image)
    drawn = [v > 0 for v in cell_variance(fig)]
    assert drawn == [combo not in UNSUPPORTED for combo in GRID]


def test_no_warning_for_tiny_attributions(image):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        visualize_attribution_grid(1e-9 * seeded(1, 3, SIZE, SIZE), image)


def test_subset_of_methods_and_signs(image):
    fig = visualize_attribution_grid(
        seeded(1, 3, SIZE, SIZE), image, methods=["heat_map"], signs=["positive", "negative"]
    )
    assert [ax.get_title() for ax in fig.axes] == ["heat_map / positive", "heat_map / negative"]


def test_accepts_unbatched_tensors(image):
    fig = visualize_attribution_grid(seeded(3, SIZE, SIZE), image[0], methods=["heat_map"])
    assert len(fig.axes) == len(SIGNS)


@pytest.mark.parametrize(
    ("attributions", "image", "kwargs", "match"),
    [
        (seeded(1, 3, SIZE, SIZE), 3 * seeded(1, 3, SIZE, SIZE), {}, r"expected \[0, 1\]"),
        (seeded(1, 3, SIZE, SIZE), torch.rand(1, 3, 16, 16), {}, "differ"),
        (seeded(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE), {}, "one image"),
        (torch.full((1, 3, SIZE, SIZE), float("nan")), torch.rand(1, 3, SIZE, SIZE), {}, "NaN"),
        (seeded(1, 3, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE), {"methods": ["heatmap"]},
         "unknown method 'heatmap'"),
        (seeded(1, 3, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE), {"signs": ["neg"]},
         "unknown sign 'neg'"),
    ],
    ids=["normalized-image", "size-mismatch", "batch", "nan", "method", "sign"],
)
def test_bad_inputs_raise(attributions, image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        visualize_attribution_grid(attributions, image, **kwargs)
