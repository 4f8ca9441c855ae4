"""Task 7: the ways Captum can draw an attribution map."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from captum.attr import visualization as viz
from matplotlib.axes import Axes
from matplotlib.figure import Figure

METHODS: tuple[str, ...] = (
    "heat_map",
    "blended_heat_map",
    "original_image",
    "masked_image",
    "alpha_scaling",
)
SIGNS: tuple[str, ...] = ("all", "positive", "negative", "absolute_value")
_TITLE_SIZE = 9  # "blended_heat_map / absolute_value" fits a 3-inch cell

# Captum (0.8, 0.9) rejects these with an ``assert`` (gone under ``python -O``, where
# they would draw nonsense), so they are skipped by name, not only by the exception:
# a mask or an alpha channel cannot be signed.
UNSUPPORTED: frozenset[tuple[str, str]] = frozenset(
    {("masked_image", "all"), ("alpha_scaling", "all")}
)


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

    Each cell is ``visualize_image_attr(attr_hwc, image_hwc, method, sign,
    plt_fig_axis=(fig, ax), use_pyplot=False, show_colorbar=False)``; Captum sums the
    channels, keeps the values of ``sign`` and scales them by their 98th percentile
    (cumulative), so each cell shows relative, not absolute, importance.

    Args:
        attributions: ``(1, 3, H, W)`` attributions (e.g. from Task 6), finite.
        image: ``(1, 3, H, W)`` image in [0, 1] to draw under the attributions: the
            *unnormalized* image (``ToTensor`` output), not the ImageNet-normalized
            model input (undo it with ``x * std + mean``).
        methods: rows, each one of ``METHODS``.
        signs: columns, each one of ``SIGNS``.

    Returns:
        matplotlib ``Figure`` with ``len(methods) * len(signs)`` axes; each cell that
        Captum accepts is drawn and titled ``"<method> / <sign>"``; a combination Captum
        rejects (``masked_image`` and ``alpha_scaling`` with sign ``all``) is left
        blank with the title ``"<method> / <sign>: not supported"``. A sign with no
        attribution at all (e.g. ``negative`` when every value is >= 0) is drawn as
        the image with the note "no <sign> attributions" instead of Captum's
        division by zero.

    Raises:
        ValueError: an unknown method or sign, shapes that do not match, non-finite
            attributions or an image outside [0, 1].
    """
    for name, values, allowed in (("method", methods, METHODS), ("sign", signs, SIGNS)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"unknown {name} {unknown[0]!r}; choose from {allowed}")
    attr_hwc, image_hwc = display_arrays(attributions, image)
    fig = Figure(figsize=(3.0 * len(signs), 3.0 * len(methods)), layout="constrained")
    axes = fig.subplots(len(methods), len(signs), squeeze=False)
    for row, method in enumerate(methods):
        for col, sign in enumerate(signs):
            draw_attribution(fig, axes[row][col], attr_hwc, image_hwc, method=method, sign=sign)
    return fig


def draw_attribution(
    fig: Figure,
    ax: Axes,
    attr_hwc: np.ndarray,
    image_hwc: np.ndarray,
    *,
    method: str,
    sign: str,
    title: str | None = None,
) -> bool:
    """Draw one ``visualize_image_attr`` cell on ``ax``; never raises for Captum's limits.

    Args:
        attr_hwc, image_hwc: ``(H, W, 3)`` arrays from :func:`display_arrays`.
        title: defaults to ``"<method> / <sign>"``.

    Returns:
        True when the cell was drawn; False when Captum does not support the
        combination (the axes are then blank, titled ``"<title>: not supported"``).
    """
    title = f"{method} / {sign}" if title is None else title
    if (method, sign) in UNSUPPORTED:
        return _not_supported(ax, title)
    summed = attr_hwc.sum(axis=2)  # Captum sums the channels before selecting the sign
    selected = {
        "all": summed,
        "absolute_value": summed,
        "positive": summed > 0,
        "negative": summed < 0,
    }[sign]
    attr, draw_sign = attr_hwc, sign
    if not np.any(selected):
        if method != "original_image":
            # Captum would assert "Cannot normalize by scale factor = 0".
            ax.imshow(image_hwc)
            ax.text(
                0.5,
                0.5,
                f"no {sign} attributions",
                transform=ax.transAxes,
                ha="center",
                va="center",
                bbox={"facecolor": "white", "alpha": 0.8},
            )
            _clean_axes(ax, title)
            return True
        # "original_image" never looks at the attributions, but Captum still
        # normalizes them: give it values it can scale.
        attr, draw_sign = np.ones_like(attr_hwc), "absolute_value"
    try:
        with warnings.catch_warnings():
            # Tiny but non-zero maps (e.g. Saliency of a random network) only warn
            # that the scale is close to 0; the relative picture is still right.
            warnings.filterwarnings("ignore", message="Attempting to normalize by value")
            viz.visualize_image_attr(
                attr,
                image_hwc,
                method=method,
                sign=draw_sign,
                plt_fig_axis=(fig, ax),
                use_pyplot=False,
                show_colorbar=False,
                title=title,
            )
    except AssertionError:
        # Captum validates with asserts; a combination it rejects that is not in
        # UNSUPPORTED (a newer Captum) still leaves a labelled blank cell.
        ax.clear()
        return _not_supported(ax, title)
    _clean_axes(ax, title)
    return True


def display_arrays(
    attributions: torch.Tensor, image: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``(attr_hwc, image_hwc)`` float arrays ``(H, W, 3)`` for ``visualize_image_attr``.

    Raises:
        ValueError: not one ``(1, 3, H, W)`` / ``(3, H, W)`` image each, different
            shapes, non-finite attributions or an image outside [0, 1].
    """
    for name, tensor in (("attributions", attributions), ("image", image)):
        if not (tensor.dim() == 3 or (tensor.dim() == 4 and tensor.shape[0] == 1)):
            raise ValueError(
                f"{name} must be one image (1, 3, H, W) or (3, H, W), got "
                f"{tuple(tensor.shape)}; pass attributions[i:i + 1] for image i of a batch"
            )
    attr_hwc = to_display_image(attributions).astype(np.float64)
    image_hwc = to_display_image(image).astype(np.float64)
    if attr_hwc.shape != image_hwc.shape:
        raise ValueError(
            f"attributions {attr_hwc.shape[:2]} and image {image_hwc.shape[:2]} (H, W) differ; "
            "draw the attributions over the image they were computed for"
        )
    if not np.isfinite(attr_hwc).all():
        raise ValueError("attributions contain NaN or inf; check the attribution call")
    low, high = float(image_hwc.min()), float(image_hwc.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(
            f"image values span [{low:.3g}, {high:.3g}], expected [0, 1]: pass the "
            "unnormalized image (undo Normalize with x * std + mean), not the model input"
        )
    return attr_hwc, np.clip(image_hwc, 0.0, 1.0)


def _not_supported(ax: Axes, title: str) -> bool:
    ax.axis("off")
    ax.set_title(f"{title}: not supported", fontsize=_TITLE_SIZE)
    return False


def _clean_axes(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.set_xticks([])
    ax.set_yticks([])
