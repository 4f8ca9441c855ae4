"""Task 7: the grid of Captum's visualisation methods x signs.

Probe
    ``visualize_attribution_grid(attributions, image)`` is called once with
    attributions the grader makes itself (:func:`trusted_attributions`: a smooth,
    deterministic ``(1, 3, S, S)`` pattern with clearly positive AND negative
    regions, so every sign has something to show) and the probe photo in [0, 1].
    Task 7 therefore does not depend on the student's Integrated Gradients. The
    figure is reduced to :func:`grader.probing.figure_facts` (per axes: title,
    whether it holds an image, pixel standard deviation) and closed.

Checks
    ``coverage``: for each of the 18 (method, sign) pairs Captum 0.9 accepts (5
    methods x 4 signs, minus ``masked_image``/``all`` and ``alpha_scaling``/``all``,
    which it rejects with an AssertionError), an axes whose title names both
    (case-insensitive, ``_``, ``-`` or spaces alike; ``heat_map`` does not match
    inside ``blended_heat_map``; ``all`` only as a word). Fraction = pairs found /
    18; the message lists the missing pairs. ``cells_drawn``: of the axes found,
    the fraction that hold an image (``imshow``) and whose rendered area is not
    flat (pixel std above :data:`BLANK_STD`; measured on the reference's grid:
    every Captum cell is above 40, an axes turned off is 0, an empty framed axes
    about 20 but holds no image). If no title matches, every image axes counts as
    a cell. The figure size and the photo do not matter to either check, so the
    probe's 64x64 inputs are enough. What this catches
    (tests/harness/test_attribution_viz_checks.py):

    - only the default ``heat_map`` drawn, or only the default sign: ``coverage``;
    - titles missing: ``coverage`` (``cells_drawn`` still judges the image axes);
    - cells titled but never drawn into (``visualize_image_attr`` without
      ``plt_fig_axis`` draws into a figure of its own): ``cells_drawn``;
    - cells showing a constant image: ``cells_drawn``, in proportion.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_figure,
)
from grader.inputs import probe_inputs
from grader.probing import ProbeContext, call, closing_figures, figure_facts, new_record
from grader.records import Record

POINTER = "Task 7: visualize_attribution_grid in attribution_viz.py"
METHODS: tuple[str, ...] = (
    "heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling",
)
SIGNS: tuple[str, ...] = ("all", "positive", "negative", "absolute_value")
# Captum 0.9 asserts that these two methods cannot show signed ("all") attributions.
UNSUPPORTED: frozenset[tuple[str, str]] = frozenset(
    {("masked_image", "all"), ("alpha_scaling", "all")}
)
REQUIRED: tuple[tuple[str, str], ...] = tuple(
    (m, s) for m in METHODS for s in SIGNS if (m, s) not in UNSUPPORTED
)
# Pixel std (0-255 scale, figure rendered at 50 dpi) above which an image cell is drawn:
# an imshow of a constant array with the axis off is 0; Captum's cells are above 40.
BLANK_STD = 10.0


def trusted_attributions(size: int) -> torch.Tensor:
    """A smooth ``(1, 3, size, size)`` float32 map: positive on the right, negative on the left.

    Summed over channels (as Captum does) it is a signed wave under a Gaussian
    envelope, so the positive, negative and absolute-value views all differ.
    """
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    envelope = torch.exp(-(xx**2 + yy**2))
    channels = [
        torch.sin(math.pi * (xx + 0.15 * c)) * torch.cos(0.5 * math.pi * yy) * envelope
        for c in range(3)
    ]
    return torch.stack(channels).unsqueeze(0).contiguous()


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("attribution_viz")
    record = new_record("attribution_viz")
    size = ctx.settings.image_size
    attributions = trusted_attributions(size)
    _, display = probe_inputs(size, ctx.settings)
    with closing_figures():
        fig = call(record, "grid", mod.visualize_attribution_grid, attributions.clone(),
                   display.clone())
        if record.data["calls"]["grid"]["ok"]:
            figure_facts(record, "grid", fig)
        del fig
    return record


# --------------------------------------------------------------------------- checks


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.casefold())


def title_matches(title: str, method: str, sign: str) -> bool:
    """Whether an axes title names ``method`` and ``sign`` (``heat_map`` not inside
    ``blended_heat_map``; ``all`` as a whole word)."""
    words = re.sub(r"[^a-z0-9]+", " ", title.casefold()).split()
    compact = "".join(words)
    name = _compact(method)
    # "heat_map" must not be found inside "blended_heat_map".
    searched = compact.replace("blendedheatmap", "") if method == "heat_map" else compact
    if name not in searched:
        return False
    if sign == "all":
        return "all" in words
    return _compact(sign) in compact


def _grid_axes(record: Record) -> list[dict[str, Any]]:
    facts = require_figure(record, "grid", "grid", POINTER, "return the Figure holding the grid")
    axes = facts.get("axes")
    if not isinstance(axes, list) or not axes:
        raise CheckFailed(f"{POINTER}: the figure has no axes; draw one cell per method x sign")
    return [ax for ax in axes if isinstance(ax, dict)]


def _matches(axes: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        pair: [ax for ax in axes if title_matches(str(ax.get("title", "")), *pair)]
        for pair in REQUIRED
    }


def check_coverage(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    found = _matches(_grid_axes(student))
    missing = [f"{m}/{s}" for (m, s), axes in found.items() if not axes]
    covered = len(REQUIRED) - len(missing)
    if not missing:
        return passed(f"all {len(REQUIRED)} supported method x sign pairs are drawn")
    return partial(covered / len(REQUIRED), (
        f"{covered} of {len(REQUIRED)} supported method x sign pairs found; missing: "
        f"{', '.join(missing)}. Draw each with visualize_image_attr(..., method=m, sign=s, "
        "plt_fig_axis=(fig, ax), use_pyplot=False) and title its cell f'{m} / {s}'"
    ))


def check_cells_drawn(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    axes = _grid_axes(student)
    found = _matches(axes)
    cells = {id(ax): ax for group in found.values() for ax in group}
    if not cells:
        # Untitled cells: judge every image axes (coverage already lost the titles).
        cells = {id(ax): ax for ax in axes if ax.get("has_image")}
    if not cells:
        raise CheckFailed(f"{POINTER}: no axes of the figure holds an image; draw into the "
                          "grid's axes with plt_fig_axis=(fig, ax), use_pyplot=False")
    blank = [ax for ax in cells.values()
             if not ax.get("has_image") or float(ax.get("pixel_std", 0.0)) <= BLANK_STD]
    if not blank:
        return passed(f"all {len(cells)} cells are drawn")
    titles = ", ".join(repr(str(ax.get("title", ""))) for ax in blank[:6])
    return partial(1 - len(blank) / len(cells), (
        f"{len(blank)} of {len(cells)} cells are blank ({titles}); draw each into its own "
        "axes with plt_fig_axis=(fig, ax), use_pyplot=False"
    ))


CHECKS = {
    "coverage": check_coverage,
    "cells_drawn": check_cells_drawn,
}
