"""Outputs of ``lab3 grade``: results.json, feedback.html, summary.csv, answers.csv.

Everything is written atomically (temporary file + ``os.replace``), and a
submission's ``results.json`` is written last: its presence means the
submission is completely graded (``lab3 grade`` resumes from that).

Everything that comes from a submission (messages quoting its errors, its
answers, its output, its name) is HTML-escaped in feedback.html, and the page
carries a Content-Security-Policy that allows no script and no remote content:
its images are inline ``data:`` PNGs.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader.points import TASKS, task_spec
from grader.records import Record
from grader.results import GradeReport

REPORT_FILE = "report.json"
RESULTS_FILE = "results.json"
FEEDBACK_FILE = "feedback.html"
LOG_FILE = "log.txt"
SUMMARY_FILE = "summary.csv"
ANSWERS_FILE = "answers.csv"
MAX_PNG_BYTES = 3 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Attribution maps shown beside the reference's with their difference (same inputs
# and target on both sides, so the difference means something).
DIFF_MAPS: dict[str, tuple[str, ...]] = {
    "integrated_gradients": ("zeros_attr", "default_attr"),
    "noise_tunnel": ("noisy", "zero_noise"),
}


# --------------------------------------------------------------------------- files


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
        "graded_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
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
    """
    entry = summary_entry(report, status=status, problems=problems, extra=extra)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / LOG_FILE, log)
    atomic_write(folder / FEEDBACK_FILE,
                 feedback_html(report, student=student, reference=reference, log=log))
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
    writer.writerow(["submission", *tasks, "total", "max_score", "status", "problems"])
    for e in entries:
        writer.writerow([
            _cell(e["submission"]),
            *(f"{e['tasks'][t]['score']:g}" if t in e["tasks"] else "" for t in tasks),
            f"{e['score']:g}", f"{e['max_score']:g}", e["status"],
            _cell("; ".join(e.get("problems", []))),
        ])
    atomic_write(out / SUMMARY_FILE, buf.getvalue())

    questions: list[str] = []
    for e in entries:
        for q in e.get("answers", {}):
            if q not in questions:
                questions.append(q)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["submission", *questions])
    for e in entries:
        writer.writerow([_cell(e["submission"]),
                         *(_cell(e.get("answers", {}).get(q, "")) for q in questions)])
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
        cells = [f"{e['tasks'][t]['score']:g}" if t in e["tasks"] else "-" for t in tasks]
        problems = "; ".join(e.get("problems", [])) or ("" if e["status"] == "graded"
                                                         else e["status"])
        if len(problems) > 70:
            problems = problems[:67] + "..."
        lines.append("  ".join([e["submission"].ljust(name_w), *(c.rjust(4) for c in cells),
                                f"{e['score']:g}/{e['max_score']:g}".rjust(7), problems]))
    for name, reason in extra_rows:
        lines.append("  ".join([name.ljust(name_w), *("-".rjust(4) for _ in tasks),
                                "0".rjust(7), reason]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png_data_uri(data: bytes) -> str | None:
    if not data.startswith(_PNG_SIGNATURE) or len(data) > MAX_PNG_BYTES:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


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


def _figures(task: str, student: Record | None, reference: Record | None) -> list[str]:
    """HTML blocks: the student's figures beside the reference's, and difference maps."""
    blocks: list[str] = []
    ref_tensors = reference.tensors if reference is not None else {}
    stu_tensors = student.tensors if student is not None else {}
    names = [n for n in ref_tensors if n.endswith("_png") or _image_of(ref_tensors[n]) is not None]
    names += [n for n in stu_tensors if n not in names and n.endswith("_png")]
    for name in sorted(names)[:8]:
        cells = []
        for who, tensors in (("yours", stu_tensors), ("reference", ref_tensors)):
            uri = None
            tensor = tensors.get(name)
            if tensor is not None and tensor.dtype == torch.uint8 and tensor.ndim == 1:
                uri = _png_data_uri(tensor.numpy().tobytes())
            elif tensor is not None and (img := _image_of(tensor)) is not None:
                uri = _png_data_uri(_encode_png(img, scale=max(1, 128 // img.shape[0])))
            inner = (f'<img alt="{_e(who)} {_e(name)}" src="{uri}">' if uri
                     else '<div class="missing">nothing usable recorded</div>')
            cells.append(f"<figure>{inner}<figcaption>{_e(who)}: {_e(name)}</figcaption></figure>")
        blocks.append(f'<div class="pair">{"".join(cells)}</div>')
    for name in DIFF_MAPS.get(task, ()):
        s, r = stu_tensors.get(name), ref_tensors.get(name)
        if s is None or r is None or not s.is_floating_point():
            continue
        png = _diff_map(s, r)
        uri = _png_data_uri(png) if png else None
        if uri:
            blocks.append(
                f'<figure class="wide"><img alt="difference map {_e(name)}" src="{uri}">'
                f"<figcaption>{_e(name)}: |yours| · |reference| · |yours − reference| "
                "(summed over channels, same colour scale)</figcaption></figure>")
    return blocks


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}.ok{color:#1a7f37}.bad{color:#b42318}.part{color:#9a6700}
.pair{display:flex;gap:1em;flex-wrap:wrap}figure{margin:.5em 0}img{max-width:520px;
image-rendering:pixelated;border:1px solid #ddd}.missing{padding:2em;border:1px dashed #bbb}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.8em;max-height:30em;overflow:auto}
.note{background:#fff8c5;padding:.5em .8em}.hidden{font-size:.85em;color:#666}
"""


def feedback_html(
    report: GradeReport,
    *,
    student: dict[str, Record | None],
    reference: dict[str, Record],
    problems: list[str] = (),
    log: str = "",
) -> str:
    """One self-contained page for the student (see the module docstring)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>lab3 feedback: {_e(report.submission)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Laboratory 3 — feedback for {_e(report.submission)}</h1>",
        f"<p><strong>{report.score:g} / {report.max_score:g} points</strong></p>",
        f"<p class=\"hidden\">{_e(report.weights.get('id', ''))} weights · "
        f"{_e(report.reference_records)} · graded in {report.execution_time:.1f} s</p>",
    ]
    for note in [*report.notes, *problems]:
        out.append(f'<p class="note">{_e(note)}</p>')
    out.append("<table><tr><th>task</th><th>points</th><th>first problem</th></tr>")
    for task in report.tasks:
        spec = task_spec(task.task)
        cls = _cls(task.score, task.max_score)
        out.append(
            f'<tr><td><a href="#{_e(task.task)}">{_e(spec.title)}</a></td>'
            f'<td class="{cls}">{task.score:g}/{task.max_score:g}</td>'
            f"<td>{_e(task.first_failure or '')}</td></tr>")
    out.append(f"<tr><th>total</th><th>{report.score:g}/{report.max_score:g}</th><th></th></tr>"
               "</table>")
    for task in report.tasks:
        spec = task_spec(task.task)
        out.append(f'<h2 id="{_e(task.task)}">{_e(spec.title)} — {task.score:g}/'
                   f"{task.max_score:g}</h2><table>")
        for check in task.checks:
            hidden = (' <span class="hidden">(hidden check, shown after grades are '
                      "published)</span>") if check.hidden else ""
            out.append(
                f"<tr><td>{_e(check.name)}{hidden}</td>"
                f'<td class="{_cls(check.score, check.max_score, check.passed)}">'
                f"{check.score:g}/{check.max_score:g}</td><td>{_e(check.message)}</td></tr>")
        out.append("</table>")
        out.extend(_figures(task.task, student.get(task.task), reference.get(task.task)))
    if report.answers:
        out.append('<h2 id="answers-text">Your answers (graded by hand)</h2>')
        for question, answer in report.answers.items():
            out.append(f"<h3>{_e(question)}</h3><pre>{_e(answer) or '<em>(no answer)</em>'}</pre>")
    if log.strip():
        out.append("<h2>Output of your code while it was graded</h2>"
                   f"<details><summary>show</summary><pre>{_e(log)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def _cls(score: float, max_score: float, passed: bool | None = None) -> str:
    if passed is True or (passed is None and score >= max_score):
        return "ok"
    return "part" if score > 0 else "bad"
