"""Outputs of ``lab3 grade``: results.json, feedback.html, summary.csv, answers.csv.

Everything is written atomically (temporary file + ``os.replace``), and a
submission's ``results.json`` is written last: its presence means the
submission is completely graded (``lab3 grade`` resumes from that).

feedback.html is one self-contained page a student can read on a phone: every
figure captioned in words (:data:`FIGURE_CAPTIONS`) beside the reference's, shown
at its own size or scaled down to fit (never up), with a link that shows it at full
size; answers rendered from a safe subset of markdown; a submission that could not
be loaded said once at the top. Everything that comes from a submission (messages
quoting its errors, its answers, its output, its name) is HTML-escaped, and the
page carries a Content-Security-Policy that allows no script and no remote
content: its images are inline ``data:`` PNGs.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader import files
from grader.check.results import GradeReport, format_points
from grader.outputs.terminal import printable
from grader.points import TASKS, task_spec
from grader.probe.records import Record

REPORT_FILE = "report.json"
RESULTS_FILE = "results.json"
FEEDBACK_FILE = "feedback.html"
LOG_FILE = "log.txt"
SUMMARY_FILE = "summary.csv"
ANSWERS_FILE = "answers.csv"
MAX_PNG_BYTES = 3 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The statuses of a submission that could not be loaded at all (a bad zip, no task
# modules): ``lab3 grade`` then passes the reason as its only problem.
UNLOADED_STATUSES = ("ungradable", "not_found")


# --------------------------------------------------------------------------- files


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (:func:`grader.files.atomic_write`), readable by
    all (the outputs are the instructor's to share)."""
    files.atomic_write(path, data, mode=0o644)


def summary_entry(
    report: GradeReport, *, status: str, problems: list[str], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The plain summary of one graded submission (``report.json``), enough for the CSVs."""
    return {
        "submission": report.submission,
        "status": status,
        "score": round(report.score, 4),
        "max_score": report.max_score,
        "execution_time": round(report.execution_time, 2),
        "tasks": {
            t.task: {"score": round(t.score, 4), "max_score": t.max_score,
                     "problem": t.first_failure or ""}
            for t in report.tasks
        },
        "problems": list(problems),
        "answers": dict(report.answers),
        "graded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        **(extra or {}),
        "report": report.to_dict(),
    }


def results_json(report: GradeReport, entry: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's results.json: the report's, plus per-task points and problems in extra_data."""
    results = report.to_gradescope()
    results["extra_data"].update(
        submission=report.submission,
        status=entry["status"],
        tasks={k: {"score": v["score"], "max_score": v["max_score"]}
               for k, v in entry["tasks"].items()},
        problems=entry["problems"],
        **{k: entry[k] for k in ("sandbox",) if k in entry},
    )
    return results


def write_submission(
    folder: Path,
    report: GradeReport,
    *,
    status: str,
    problems: list[str],
    student: dict[str, Record | None],
    reference: dict[str, Record],
    log: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one submission's outputs; ``results.json`` last. Returns its summary entry.

    ``extra`` (e.g. the sandbox's limits) goes into report.json and results.json's extra_data.
    A status in :data:`UNLOADED_STATUSES` means the submission could not be loaded: the
    feedback page says ``problems`` (the reason) once instead of in every check's row.
    """
    entry = summary_entry(report, status=status, problems=problems, extra=extra)
    load_error = "; ".join(problems) if status in UNLOADED_STATUSES and problems else None
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / LOG_FILE, log)
    atomic_write(folder / FEEDBACK_FILE, feedback_html(
        report, student=student, reference=reference, log=log, load_error=load_error))
    atomic_write(folder / REPORT_FILE, json.dumps(entry, indent=1))
    atomic_write(folder / RESULTS_FILE, json.dumps(results_json(report, entry), indent=2))
    return entry


def load_entry(folder: Path) -> dict[str, Any] | None:
    """The summary entry of a graded submission, or None if it is not completely graded."""
    if not (folder / RESULTS_FILE).is_file():
        return None
    try:
        entry = json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "tasks" in entry else None


def all_entries(out: Path) -> list[dict[str, Any]]:
    """Entries of every completely graded submission under ``out``, sorted by name."""
    entries = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []:
        entry = load_entry(folder)
        if entry is not None:
            entries.append(entry)
    return entries


# --------------------------------------------------------------------------- CSV


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ would be a formula in a spreadsheet (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def task_columns(entries: Iterable[dict[str, Any]]) -> list[str]:
    present = {t for e in entries for t in e.get("tasks", {})}
    return [t.module for t in TASKS if t.module in present]


def write_summary(out: Path, entries: list[dict[str, Any]]) -> None:
    """``summary.csv``: one row per submission, one column per task, total; and ``answers.csv``."""
    tasks = task_columns(entries)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["submission", *tasks, "total", "max_score", "status", "problems",
                     "source", "sha256"])
    for e in entries:
        source = e.get("source") if isinstance(e.get("source"), dict) else {}
        writer.writerow([
            _cell(e["submission"]),
            *(format_points(e['tasks'][t]['score']) if t in e["tasks"] else "" for t in tasks),
            format_points(e['score']), format_points(e['max_score']), e["status"],
            _cell("; ".join(e.get("problems", []))),
            _cell(str(source.get("path", ""))), _cell(str(source.get("sha256", ""))),
        ])
    atomic_write(out / SUMMARY_FILE, buf.getvalue())

    from grader.tasks.answers import template_headings

    questions = template_headings()  # the grader's own headings, never a submission's keys
    buf = io.StringIO()
    # Every cell quoted, so no separator a spreadsheet guesses (";", tab) splits an answer.
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["submission", *(_cell(q) for q in questions)])
    for e in entries:
        answers = e.get("answers", {}) if isinstance(e.get("answers"), dict) else {}
        writer.writerow([_cell(e["submission"]),
                         *(_cell(str(answers.get(q, ""))) for q in questions)])
    atomic_write(out / ANSWERS_FILE, buf.getvalue())


# --------------------------------------------------------------------------- table


def score_table(entries: list[dict[str, Any]], extra_rows: Iterable[tuple[str, str]] = ()) -> str:
    """The final table: submission, points per task (T1..T9), total, problems."""
    tasks = [t for t in task_columns(entries) if task_spec(t).number is not None]
    heads = [f"T{task_spec(t).number}" for t in tasks]
    name_w = max([len("submission"), *(len(e["submission"]) for e in entries),
                  *(len(n) for n, _ in extra_rows)])
    lines = ["  ".join(["submission".ljust(name_w), *(h.rjust(4) for h in heads),
                        "total".rjust(7), "problems"])]
    lines.append("-" * len(lines[0]))
    for e in entries:
        cells = [format_points(e['tasks'][t]['score']) if t in e["tasks"] else "-" for t in tasks]
        problems = "; ".join(e.get("problems", [])) or ("" if e["status"] == "graded"
                                                         else e["status"])
        if len(problems) > 70:
            problems = problems[:67] + "..."
        lines.append("  ".join([e["submission"].ljust(name_w), *(c.rjust(4) for c in cells),
                                f"{format_points(e['score'])}/{format_points(e['max_score'])}"
                                .rjust(7), problems]))
    for name, reason in extra_rows:
        lines.append("  ".join([name.ljust(name_w), *("-".rjust(4) for _ in tasks),
                                "0".rjust(7), reason]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

STANDIN_NOTE = "stand-in weights: predictions are not ImageNet classes"
LOAD_ERROR_LEAD = "We could not load your submission"


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


def _e(value: Any) -> str:
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
                 f'<img alt="{_e(alt)}" src="{uri}"{dims}></a>')
        links = (f' <a class="full" href="#{fig_id}">full size</a>'
                 f'<a class="fit" href="#{back}">fit to page</a>')
    else:
        inner, links = '<div class="missing">nothing usable recorded</div>', ""
    note = f'<span class="standin">{_e(STANDIN_NOTE)}</span>' if standin else ""
    return (f'<figure class="fig" id="{fig_id}">{inner}'
            f"<figcaption>{_e(caption)}{links}{note}</figcaption></figure>")


def _figure_names(task: str, student: Record | None, reference: Record | None) -> list[str]:
    """The recorded figures of ``task`` that :data:`FIGURE_CAPTIONS` describes, in its
    order (other tensors, such as a figure's raw cell data, are not figures)."""
    names = {n for record in (reference, student) if record is not None
             for n in record.tensors if _caption_row(task, n) is not None}

    def order(name: str) -> tuple[int, str]:
        found = _caption_row(task, name)
        return (FIGURE_CAPTIONS.index(found[0]) if found else len(FIGURE_CAPTIONS), name)

    return sorted(names, key=order)[:MAX_FIGURES_PER_TASK]


def _figures(task: str, student: Record | None, reference: Record | None,
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


# --------------------------------------------------------------------------- answers

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:([-*+])|\d{1,9}[.)])\s+(.*)$")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_STRONG = re.compile(r"\*\*(?=\S)([^*<]+?)(?<=\S)\*\*")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*<]+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])([^_<]+?)(?<=[^\s_])_(?![\w_])")


def _inline(text: str) -> str:
    """Escaped ``text`` with `code`, **strong** and *emphasis* (or _emphasis_) rendered."""
    out = []
    for i, part in enumerate(_CODE_SPAN.split(text)):
        if i % 2:
            out.append(f"<code>{_e(part[1:-1])}</code>")
            continue
        escaped = _STRONG.sub(r"<strong>\1</strong>", _e(part))
        escaped = _EM_STAR.sub(r"<em>\1</em>", escaped)
        out.append(_EM_UNDERSCORE.sub(r"<em>\1</em>", escaped))
    return "".join(out)


def markdown_html(text: str) -> str:
    """A student's markdown answer as HTML that can hold nothing of the student's but text.

    Everything is escaped first; then a small subset is rendered: paragraphs (blank
    lines), line breaks, lists (``-``, ``*``, ``+``, ``1.``), fenced code, ```code```,
    ``**strong**``, ``*emphasis*``. Raw HTML, links and images stay text.
    """
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = "ul"
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{list_tag}>" + "".join(f"<li>{x}</li>" for x in items)
                          + f"</{list_tag}>")
            items.clear()

    for line in text.splitlines():
        if code is not None:
            if _FENCE.match(line):
                blocks.append("<pre><code>" + _e("\n".join(code)) + "</code></pre>")
                code = None
            else:
                code.append(line)
        elif _FENCE.match(line):
            flush()
            code = []
        elif not line.strip():
            flush()
        elif item := _LIST_ITEM.match(line):
            tag = "ul" if item.group(1) else "ol"
            if paragraph or tag != list_tag:
                flush()
            list_tag = tag
            items.append(_inline(item.group(2).strip()))
        elif items and line[:1].isspace():
            items[-1] += "<br>" + _inline(line.strip())  # a list item's next line
        else:
            if items:
                flush()
            paragraph.append(_inline(line.strip()))
    if code is not None:  # an unclosed fence: the rest is code
        blocks.append("<pre><code>" + _e("\n".join(code)) + "</code></pre>")
    flush()
    return "\n".join(blocks)


# --------------------------------------------------------------------------- page

_CSS = """
*,::before,::after{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1100px;color:#222;
overflow-wrap:break-word}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1em}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th,.pts{white-space:nowrap}.msg{overflow-wrap:anywhere}
.ok{color:#1a7f37}.bad{color:#b42318}.part{color:#9a6700}
.pair{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
.fig{flex:0 1 auto;min-width:0;max-width:100%;margin:.5em 0}
.fig img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
.fig:target{flex-basis:100%;overflow-x:auto;outline:2px solid #0969da;outline-offset:4px}
.fig:target img{max-width:none}
.fig .fit,.fig:target .full{display:none}.fig:target .fit{display:inline}
figcaption{font-size:.9em;max-width:40em}figcaption a{margin-left:.5em;white-space:nowrap}
.standin{display:block;color:#9a6700}
.missing{padding:2em;border:1px dashed #bbb}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.8em;
max-height:30em;overflow:auto}
code{background:#f6f8fa;padding:0 .2em}pre code{padding:0}
.answer{border-left:3px solid #ddd;padding-left:.8em}
.note{background:#fff8c5;padding:.5em .8em}
.load-error{background:#ffebe9;border:1px solid #b42318;padding:.6em .9em}
.hidden,.hint{font-size:.85em;color:#666}
"""


def feedback_html(
    report: GradeReport,
    *,
    student: dict[str, Record | None],
    reference: dict[str, Record],
    problems: Iterable[str] = (),
    log: str = "",
    load_error: str | None = None,
) -> str:
    """One self-contained page for the student (see the module docstring).

    ``load_error``: why the submission could not be loaded at all; said once at the
    top, and left out of the notes and check rows that would only repeat it.
    """
    standin = report.weights.get("kind") == "standin"

    def repeats(message: str) -> bool:
        return load_error is not None and load_error in message

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>lab3 feedback: {_e(report.submission)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Laboratory 3 — feedback for {_e(report.submission)}</h1>",
    ]
    if load_error is not None:
        out.append(f'<p class="load-error" role="alert"><strong>{_e(LOAD_ERROR_LEAD)}:</strong> '
                   f"{_e(load_error)}</p>")
    out += [
        f"<p><strong>{_points(report.score, report.max_score, ' / ')} points</strong></p>",
        f"<p class=\"hidden\">{_e(report.weights.get('id', ''))} weights · "
        f"{_e(report.reference_records)} · graded in {report.execution_time:.1f} s</p>",
    ]
    if standin:
        out.append('<p class="note">Graded with stand-in weights (random, the same on every '
                   "machine), not the ImageNet-trained ones: predictions are not ImageNet "
                   "classes. Your figures and the reference's use the same weights: compare "
                   "them with each other.</p>")
    for note in [*report.notes, *problems]:
        if not repeats(note):
            out.append(f'<p class="note">{_e(note)}</p>')
    out.append('<div class="scroll"><table><tr><th>task</th><th>points</th>'
               "<th>first problem</th></tr>")
    for task in report.tasks:
        spec = task_spec(task.task)
        first = next((f"{c.name}: {c.message}" for c in task.checks
                      if not c.passed and not repeats(c.message)), "")
        out.append(
            f'<tr><td><a href="#{_e(task.task)}">{_e(spec.title)}</a></td>'
            f'<td class="pts {_cls(task.score, task.max_score)}">'
            f'{_points(task.score, task.max_score)}</td><td class="msg">{_e(first)}</td></tr>')
    out.append(f"<tr><th>total</th><th>{_points(report.score, report.max_score)}</th><th></th>"
               "</tr></table></div>")
    for task in report.tasks:
        spec = task_spec(task.task)
        out.append(f'<h2 id="{_e(task.task)}">{_e(spec.title)} — '
                   f'{_points(task.score, task.max_score)}</h2><div class="scroll"><table>')
        for check in task.checks:
            hidden = (' <span class="hidden">(hidden check, shown after grades are '
                      "published)</span>") if check.hidden else ""
            message = "" if repeats(check.message) else check.message
            out.append(
                f"<tr><td>{_e(check.name)}{hidden}</td>"
                f'<td class="pts {_cls(check.score, check.max_score, check.passed)}">'
                f'{_points(check.score, check.max_score)}</td><td class="msg">{_e(message)}</td>'
                "</tr>")
        out.append("</table></div>")
        out.extend(_figures(task.task, student.get(task.task), reference.get(task.task),
                            standin))
    if report.answers:
        out.append('<h2 id="answers-text">Your answers (graded by hand)</h2>')
        for question, answer in report.answers.items():
            body = markdown_html(answer) if answer.strip() else "<p><em>(no answer)</em></p>"
            out.append(f'<h3>{_e(question)}</h3><div class="answer">{body}</div>')
    if log.strip():
        out.append("<h2>Output of your code while it was graded</h2>"
                   f"<details><summary>show</summary><pre>{_e(log)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def _points(score: float, max_score: float, between: str = "/") -> str:
    return f"{format_points(score)}{between}{format_points(max_score)}"


def _cls(score: float, max_score: float, passed: bool | None = None) -> str:
    if passed is True or (passed is None and score >= max_score):
        return "ok"
    return "part" if score > 0 else "bad"
