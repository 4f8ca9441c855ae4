"""The figures of the feedback page: what each recorded figure or image-shaped tensor is,
in words (:data:`FIGURE_CAPTIONS`), and its PNG beside the reference's (pictures, signed
heat maps, difference maps), shown at its own size or scaled down to fit, never up.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from grader.outputs.terminal import printable
from grader.points import task_spec
from grader.probe.records import Record

STANDIN_NOTE = "stand-in weights: predictions are not ImageNet classes"
MAX_PNG_BYTES = 3 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FigureCaption:
    """What one recorded figure shows, in words.

    ``pattern`` matches the tensor's name in the task's record (the whole name).
    ``caption`` is completed with ``{whose}`` ("your" or "the reference's") and, for
    Task 5's single filters, the layer and filter the probe recorded for the case
    (``{layer}``, ``{filter}``, from the reference record's ``data["cases"]``).
    ``diff`` marks attribution maps, shown as |yours| · |reference| · |difference|.
    """

    task: str
    pattern: str
    caption: str
    diff: bool = False


# Every figure of the feedback page, in page order within a task: the one place where
# a record's tensor names become words. The page shows the tensors matched here and
# nothing else (tests/harness/outputs/test_feedback_page.py checks that every PNG and every
# attribution map the reference's records hold is matched: rename both together).
FIGURE_CAPTIONS: tuple[FigureCaption, ...] = (
    FigureCaption("graph", "graph_thumbnail",
                  "{whose} graph of the model (render_model_graph), reduced"),
    FigureCaption("filters", "grid_png", "{whose} grid of filter visualisations "
                  "(plot_filter_grid)"),
    FigureCaption("filters", "(?P<case>.+)_image",
                  "{whose} visualisation of filter {filter} of {layer} (visualize_filter)"),
    FigureCaption("integrated_gradients", "main_attr",
                  "Integrated Gradients from a constant baseline", diff=True),
    FigureCaption("integrated_gradients", "alt_attr",
                  "Integrated Gradients from a blurred copy of the input, with method and "
                  "internal_batch_size given", diff=True),
    FigureCaption("integrated_gradients", "default_attr",
                  "Integrated Gradients with the default baseline (baselines=None)", diff=True),
    FigureCaption("integrated_gradients", "steps_attr",
                  "Integrated Gradients from a constant baseline at another n_steps (the "
                  "first map's arguments but n_steps)", diff=True),
    FigureCaption("attribution_viz", "grid_png", "{whose} grid of attribution methods x signs "
                  "(visualize_attribution_grid)"),
    FigureCaption("noise_tunnel", "smoothgrad", "NoiseTunnel with nt_type='smoothgrad'",
                  diff=True),
    FigureCaption("noise_tunnel", "smoothgrad_sq", "NoiseTunnel with nt_type='smoothgrad_sq'",
                  diff=True),
    FigureCaption("noise_tunnel", "vargrad", "NoiseTunnel with nt_type='vargrad'", diff=True),
    FigureCaption("noise_tunnel", "zero_noise", "NoiseTunnel with stdevs=0 (the same as plain "
                  "Integrated Gradients)", diff=True),
    FigureCaption("comparison", "comparison_png", "{whose} comparison of attribution algorithms "
                  "(plot_comparison)"),
)
# At most this many figures per task (a forged record cannot flood the page).
MAX_FIGURES_PER_TASK = 8
WHOSE = {"yours": "your", "reference": "the reference's"}


def escape(value: Any) -> str:
    # Control characters shown as escapes (grader.outputs.terminal): the page and a terminal that
    # prints it show what a submission's text holds, not a cleared screen or a faked line.
    return printable(html.escape(str(value), quote=True))


def figure_caption(task: str, name: str, whose: str,
                   reference: Record | None = None) -> str | None:
    """The caption of figure ``name`` of ``task`` (plain text, not escaped), e.g.
    "Task 5: your grid of filter visualisations (plot_filter_grid)"; None when
    :data:`FIGURE_CAPTIONS` has no row for it. ``whose``: "yours" or "reference"."""
    found = _caption_row(task, name)
    if found is None:
        return None
    row, match = found
    fields: dict[str, Any] = {"whose": WHOSE.get(whose, whose), "layer": "a layer",
                              "filter": "?"}
    case = match.groupdict().get("case")
    cases = reference.data.get("cases") if reference is not None else None
    if case is not None and isinstance(cases, dict) and isinstance(cases.get(case), dict):
        fields.update({k: cases[case][k] for k in ("layer", "filter") if k in cases[case]})
    number = task_spec(task).number
    return (f"Task {number}: " if number is not None else "") + row.caption.format(**fields)


def _caption_row(task: str, name: str) -> tuple[FigureCaption, re.Match[str]] | None:
    for row in FIGURE_CAPTIONS:
        if row.task == task and (match := re.fullmatch(row.pattern, name)):
            return row, match
    return None


def _png_data_uri(data: bytes) -> str | None:
    if not data.startswith(_PNG_SIGNATURE) or len(data) > MAX_PNG_BYTES:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _encode_png(rgb: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _image_of(tensor: torch.Tensor) -> np.ndarray | None:
    """An (H, W, 3) uint8 picture of ``tensor`` when it is one: channel-last, uint8 or float
    in [0, 1] (the filter images, the graph thumbnail); model inputs and attributions
    (channel-first) are not pictures."""
    if tensor.ndim != 3 or tensor.shape[-1] != 3 or not 4 <= min(tensor.shape[:2]) <= 1024:
        return None
    if tensor.dtype == torch.uint8:
        return tensor.contiguous().numpy()
    if not tensor.is_floating_point():
        return None
    values = torch.nan_to_num(tensor.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)
    return (values * 255).round().to(torch.uint8).contiguous().numpy()


def _heat(values: np.ndarray, vmax: float) -> np.ndarray:
    from matplotlib import colormaps

    scaled = np.clip(values / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(values)
    return (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)


def _diff_map(student: torch.Tensor, reference: torch.Tensor) -> bytes | None:
    """|student|, |reference| and |student - reference| summed over channels, one PNG."""
    if student.shape != reference.shape or student.ndim != 4 or student.shape[0] != 1:
        return None
    s = torch.nan_to_num(student.double(), nan=0.0, posinf=0.0, neginf=0.0)[0].abs().sum(0)
    r = reference.double()[0].abs().sum(0)
    d = (torch.nan_to_num(student.double(), nan=0.0, posinf=0.0, neginf=0.0)
         - reference.double())[0].abs().sum(0)
    vmax = float(torch.quantile(r.flatten(), 0.99)) or float(r.max())
    panels = [_heat(x.numpy(), vmax) for x in (s, r, d)]
    gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return _encode_png(row, scale=max(1, 192 // max(1, panels[0].shape[0])))


def _picture_png(tensor: torch.Tensor | None) -> bytes | None:
    """The PNG to show for a recorded figure: its own bytes, or a picture tensor encoded."""
    if tensor is None:
        return None
    if tensor.dtype == torch.uint8 and tensor.ndim == 1:
        return tensor.numpy().tobytes()
    if (img := _image_of(tensor)) is not None:
        return _encode_png(img, scale=max(1, 128 // img.shape[0]))
    return None


def _figure(fig_id: str, png: bytes | None, alt: str, caption: str, standin: bool,
            back: str) -> str:
    """One figure: the image scaled to fit its column (never up), a link that shows it at
    its own size (CSS ``:target``: no script, no navigation to a ``data:`` URL, which
    browsers refuse), and its caption."""
    uri = _png_data_uri(png) if png else None
    size = _png_size(png) if uri and png else None
    if uri:
        dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
        inner = (f'<a class="zoom" href="#{fig_id}" title="show at full size">'
                 f'<img alt="{escape(alt)}" src="{uri}"{dims}></a>')
        links = (f' <a class="full" href="#{fig_id}">full size</a>'
                 f'<a class="fit" href="#{back}">fit to page</a>')
    else:
        inner, links = '<div class="missing">nothing usable recorded</div>', ""
    note = f'<span class="standin">{escape(STANDIN_NOTE)}</span>' if standin else ""
    return (f'<figure class="fig" id="{fig_id}">{inner}'
            f"<figcaption>{escape(caption)}{links}{note}</figcaption></figure>")


def _figure_names(task: str, student: Record | None, reference: Record | None) -> list[str]:
    """The recorded figures of ``task`` that :data:`FIGURE_CAPTIONS` describes, in its
    order (other tensors, such as a figure's raw cell data, are not figures)."""
    names = {n for record in (reference, student) if record is not None
             for n in record.tensors if _caption_row(task, n) is not None}

    def order(name: str) -> tuple[int, str]:
        found = _caption_row(task, name)
        return (FIGURE_CAPTIONS.index(found[0]) if found else len(FIGURE_CAPTIONS), name)

    return sorted(names, key=order)[:MAX_FIGURES_PER_TASK]


def figures_html(task: str, student: Record | None, reference: Record | None,
             standin: bool) -> list[str]:
    """HTML blocks: the student's figures beside the reference's, and difference maps."""
    blocks: list[str] = []
    ref_tensors = reference.tensors if reference is not None else {}
    stu_tensors = student.tensors if student is not None else {}
    back = f"{task}-figures"
    for i, name in enumerate(_figure_names(task, student, reference)):
        found = _caption_row(task, name)
        if found is not None and found[0].diff:
            s, r = stu_tensors.get(name), ref_tensors.get(name)
            if s is None or r is None or not s.is_floating_point():
                continue
            caption = (f"{figure_caption(task, name, 'yours', reference)}: left to right |yours|,"
                       " |reference| and |yours − reference|, summed over channels, on the same "
                       "colour scale")
            blocks.append('<div class="pair">' + _figure(
                f"fig-{task}-{i}", _diff_map(s, r), caption, caption, standin, back)
                + "</div>")
            continue
        cells = []
        for who, tensors in (("yours", stu_tensors), ("reference", ref_tensors)):
            caption = figure_caption(task, name, who, reference) or name
            # The alt text is the caption: words, for a screen reader too, not a tensor name.
            cells.append(_figure(f"fig-{task}-{i}-{who}", _picture_png(tensors.get(name)),
                                 caption, caption, standin, back))
        blocks.append(f'<div class="pair">{"".join(cells)}</div>')
    if blocks:
        blocks.insert(0, f'<h3 id="{back}">Your figures beside the reference\'s</h3>'
                         '<p class="hint">Click a figure to see it at full size.</p>')
    return blocks


