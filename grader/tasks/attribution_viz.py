"""Task 7: the grid of Captum's visualisation methods x signs.

Probe
    ``visualize_attribution_grid(attributions, image)`` is called once with
    attributions the grader makes itself (:func:`trusted_attributions`: a smooth
    random ``(1, 3, S, S)`` field drawn from the variant's own stream,
    ``settings.rng("attribution_viz")``, shifted so that its channel sum is positive
    on half of the pixels and negative on the other half) and the variant's photo
    crop in [0, 1]. Task 7 therefore does not depend on the student's Integrated
    Gradients, and the maps of the graded variant are not the practice ones. The
    figure is reduced to :func:`grader.probe.probing.figure_facts`: per axes its title,
    pixel standard deviation, and the raw data of its images
    (``AxesImage.get_array()``, stored as tensors), then closed.

Checks (content against the reference's grid on the same attributions and photo)
    A cell *shows* a (method, sign) pair when its images, in drawing order, hold the
    arrays the reference's cell for that pair holds: same number of images (Captum's
    ``blended_heat_map`` draws two: the grey photo, then the map), same shapes, and
    values within :data:`TOLERANCE` (on a 0-1 scale; Captum's uint8 images are
    divided by 255) at all but :data:`MAX_MISMATCH` of the values. Captum computes a
    cell from the pair alone, so an honest grid, however its figure is laid out
    (Figure or pyplot, any size, colour map or titles' wording), shows exactly the
    reference's arrays. ``original_image`` cells never look at the attributions (all
    four are the photo), so such a cell counts only when another method's cell of
    the same sign shows its pair: a photo shown under the right titles earns nothing
    alone.

    ``coverage``: for each of the 18 (method, sign) pairs Captum 0.9 accepts (5
    methods x 4 signs, minus ``masked_image``/``all`` and ``alpha_scaling``/``all``,
    which it rejects with an AssertionError), an axes whose title names both
    (case-insensitive, ``_``, ``-`` or spaces alike; ``heat_map`` does not match
    inside ``blended_heat_map``; ``all`` only as a word) and that shows that pair.
    A titled cell drawn with another method or sign, another map or nothing earns
    nothing: titles only map cells to pairs. ``cells_drawn``: for each pair, some
    image axes of the figure, titled or not, that shows it and whose rendered area
    is not flat (pixel std above :data:`BLANK_STD`; Captum's cells are above 30, an
    image made invisible is 0). What this catches
    (tests/harness/tasks/test_attribution_viz_checks.py):

    - one method in every cell, or only the default sign: both checks, per pair;
    - positive and negative swapped: both checks lose those pairs;
    - random maps (or the photo) under the right titles: both checks give 0;
    - titles missing: ``coverage`` (``cells_drawn`` still finds the cells);
    - cells titled but never drawn into (``visualize_image_attr`` without
      ``plt_fig_axis`` draws into a figure of its own): both checks;
    - cells replaced by a constant image: both checks, in proportion.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from grader.check.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_figure,
)
from grader.probe.inputs import probe_inputs
from grader.probe.probing import ProbeContext, call, closing_figures, figure_facts, new_record
from grader.probe.records import Record
from grader.settings import DEFAULT_SETTINGS, ProbeSettings

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
# The one method whose cells do not depend on the attributions (every sign shows the photo).
PHOTO_METHOD = "original_image"
# Pixel std (0-255 scale, figure rendered at 50 dpi) above which an image cell is drawn:
# an imshow of a constant array with the axis off is 0; Captum's cells are above 30.
BLANK_STD = 10.0
# A cell shows a pair when its arrays are within TOLERANCE of the reference's (0-1 scale:
# 2.5 levels of Captum's uint8 images; float32 vs float64 inputs move a value by at most
# one level) at all but MAX_MISMATCH of the values. Another sign, method or map differs
# by far more than this at a large share of the pixels.
TOLERANCE = 0.01
MAX_MISMATCH = 0.005
# The random field's coarse grid: a few blobs of each sign in a 64x64 map.
FIELD_GRID = 5


def trusted_attributions(size: int, settings: ProbeSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """The variant's ``(1, 3, size, size)`` float32 attributions for the probe.

    A ``FIELD_GRID`` x ``FIELD_GRID`` normal field per channel, drawn from
    ``settings.rng("attribution_viz")`` and upsampled (bicubic) to a smooth map, then
    shifted so that the channel sum (what Captum shows) is positive on half of the
    pixels and negative on the other half: every sign has something to show, and the
    positive, negative and absolute-value views all differ.
    """
    generator = torch.Generator().manual_seed(settings.rng("attribution_viz").randrange(2**63))
    coarse = torch.randn(1, 3, FIELD_GRID, FIELD_GRID, generator=generator)
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    field = field - field.sum(dim=1).median() / 3
    return field.float().contiguous()


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("attribution_viz")
    record = new_record("attribution_viz")
    size = ctx.settings.image_size
    attributions = trusted_attributions(size, ctx.settings)
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


def _cell_arrays(record: Record, ax: dict[str, Any]) -> list[torch.Tensor | None]:
    """The images of one axes as float64 arrays on a 0-1 scale (None: not recorded)."""
    arrays: list[torch.Tensor | None] = []
    images = ax.get("images")
    for entry in images if isinstance(images, list) else []:
        tensor = record.tensors.get(entry.get("tensor")) if isinstance(entry, dict) else None
        if tensor is None:
            arrays.append(None)
            continue
        tensor = tensor.double()
        if str(entry.get("dtype", "")).startswith(("uint", "int")):
            tensor = tensor / 255.0
        arrays.append(tensor)
    return arrays


def _same_arrays(got: list[torch.Tensor | None], want: list[torch.Tensor | None]) -> bool:
    if not want or len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g is None or w is None or g.shape != w.shape:
            return False
        bad = ~((g - w).abs() <= TOLERANCE)  # NaN counts as bad
        if int(bad.sum()) > MAX_MISMATCH * w.numel():
            return False
    return True


def _reference_cells(reference: Record) -> dict[tuple[str, str], list[torch.Tensor | None]]:
    axes = _grid_axes(reference)
    cells = {}
    for pair in REQUIRED:
        ax = next(a for a in axes if title_matches(str(a.get("title", "")), *pair))
        cells[pair] = _cell_arrays(reference, ax)
    return cells


def _shown(student: Record, reference: Record, candidates) -> dict[tuple[str, str], bool]:
    """For each required pair, whether one of ``candidates(pair)`` (student axes) shows it.

    ``original_image`` pairs count only when another method's pair of the same sign is
    shown (the photo alone proves nothing about the attributions)."""
    want = _reference_cells(reference)
    shown = {pair: any(_same_arrays(_cell_arrays(student, ax), want[pair])
                       for ax in candidates(pair))
             for pair in REQUIRED}
    for method, sign in REQUIRED:
        if method == PHOTO_METHOD:
            shown[(method, sign)] &= any(
                ok for (m, s), ok in shown.items() if s == sign and m != PHOTO_METHOD)
    return shown


def _names(pairs) -> str:
    return ", ".join(f"{m}/{s}" for m, s in pairs)


def check_coverage(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    axes = _grid_axes(student)
    titled = {pair: [ax for ax in axes if title_matches(str(ax.get("title", "")), *pair)]
              for pair in REQUIRED}
    shown = _shown(student, reference, lambda pair: titled[pair])
    untitled = [pair for pair in REQUIRED if not titled[pair]]
    wrong = [pair for pair in REQUIRED if titled[pair] and not shown[pair]]
    covered = sum(shown.values())
    if covered == len(REQUIRED):
        return passed(f"all {len(REQUIRED)} supported method x sign pairs are drawn, each in "
                      "the cell titled with it")
    parts = [f"{covered} of {len(REQUIRED)} supported method x sign pairs are drawn in the "
             "cell titled with them"]
    if untitled:
        parts.append(f"no cell is titled with {_names(untitled)}")
    if wrong:
        parts.append(f"the cells titled {_names(wrong)} do not show what Captum draws for that "
                     "method and sign on the attributions and image you were given")
    return partial(covered / len(REQUIRED), "; ".join(parts) + (
        ". Draw each with visualize_image_attr(attr, img, method=m, sign=s, "
        "plt_fig_axis=(fig, ax), use_pyplot=False) and title its cell f'{m} / {s}'"))


def check_cells_drawn(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    axes = _grid_axes(student)
    visible = [ax for ax in axes if ax.get("has_image")
               and float(ax.get("pixel_std", 0.0)) > BLANK_STD]
    if not any(ax.get("images") for ax in axes):
        raise CheckFailed(f"{POINTER}: no axes of the figure holds an image; draw into the "
                          "grid's axes with plt_fig_axis=(fig, ax), use_pyplot=False")
    shown = _shown(student, reference, lambda pair: visible)
    missing = [pair for pair, ok in shown.items() if not ok]
    if not missing:
        return passed(f"all {len(REQUIRED)} method x sign cells are drawn")
    return partial(1 - len(missing) / len(REQUIRED), (
        f"{len(missing)} of {len(REQUIRED)} method x sign pairs are drawn in no cell of the "
        f"figure ({_names(missing[:6])}{', ...' if len(missing) > 6 else ''}): each cell must "
        "show Captum's visualize_image_attr of the attributions and image you were given, "
        "drawn into the grid's axes with plt_fig_axis=(fig, ax), use_pyplot=False"
    ))


CHECKS = {
    "coverage": check_coverage,
    "cells_drawn": check_cells_drawn,
}
