"""Outputs of ``lab3 grade``: results.json, report.json, summary.csv, answers.csv, and the
score table; feedback.html comes from :mod:`grader.outputs.feedback_page`.

Everything is written atomically (temporary file + ``os.replace``), and a
submission's ``results.json`` is written last: its presence means the
submission is completely graded (``lab3 grade`` resumes from that).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader import files
from grader.check.results import GradeReport, format_points
from grader.outputs.feedback_page import feedback_html
from grader.points import TASKS, task_spec
from grader.probe.records import Record

REPORT_FILE = "report.json"
RESULTS_FILE = "results.json"
FEEDBACK_FILE = "feedback.html"
LOG_FILE = "log.txt"
SUMMARY_FILE = "summary.csv"
ANSWERS_FILE = "answers.csv"
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
