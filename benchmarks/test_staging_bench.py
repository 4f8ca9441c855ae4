"""What ``lab3 grade`` spends per submission besides running it: staging and bookkeeping.

Run alone: ``pytest benchmarks/test_staging_bench.py --benchmark-only`` (the 200-submission
class batch: add ``-m slow``). No child is started in the first benchmark: the parent's own
work is called directly, for ``COUNT`` submissions of one kind at a time (copies of
``reference/`` as folders, as zips, and as the reference notebook, ``lab3.ipynb``):

- ``find``: :func:`grader.run.staging.find_submissions` on a fresh ``--out`` (resolving each
  argument, the content hash, :func:`~grader.run.staging._assign_names`);
- ``stage``: :func:`grader.run.staging.stage` into a scratch folder (a zip extracted, a notebook
  parsed into modules);
- ``write``: :func:`grader.outputs.report.write_submission` of an ungradable-shaped report
  (log.txt, feedback.html, report.json, results.json);
- ``summary``: :func:`grader.outputs.report.all_entries` and :func:`~grader.outputs.report.write_summary`
  (summary.csv, answers.csv) once for the batch;
- ``resume``: the same ``find_submissions`` against the filled ``--out`` (it reads every
  report.json) plus :func:`grader.run.batch._already_graded` for each.

``extra_info`` holds each phase in milliseconds per submission (the fastest of the rounds);
times are reported, never asserted. The slow benchmark grades
``tests/harness/class_batch.py``'s 200 generated submissions (honest, broken, hostile,
colliding names, links, archives) with ``-j 2 --tasks model,answers``, uninterrupted, and
reports the wall time and seconds per submission.

Measured on the 2-core machine (2026-12-02, ``OMP_NUM_THREADS=1``, load average 0.4 beside
other engineers' idle sessions), ms per submission, 20 submissions of each kind, the fastest
of 3 rounds (``total``: the fastest round's sum, so not the column sum):

========  =====  =====  =====  =======  ======  =====
kind      find   stage  write  summary  resume  total
========  =====  =====  =====  =======  ======  =====
folder    0.42   1.45   1.26   0.11     0.53    3.87
zip       0.09   3.24   1.21   0.10     0.20    4.85
notebook  0.15   73.8   1.10   0.12     0.30    75.5
========  =====  =====  =====  =======  ======  =====

A notebook's staging is its parse (the reference's ``lab3.ipynb``: 96 kB, 39 cells, 63 kB of
code; see benchmarks/test_notebook_parse_bench.py for parse time against size). ``write`` is
for a report without figures (what an ungradable row writes); a graded row's feedback page
also embeds its PNGs. The parent's own work is about 1% (folders, zips) and 20% (notebooks)
of the class batch's 366 ms per submission below, children included.

Class batch (200 submissions, ``-j 2``, bubblewrap with warm workers, ``--tasks
model,answers``, practice variant, start-up and reference records included; load average
0.5 before, 2.1 after: the batch's own two workers): 73.2 s wall, 0.366 s per submission.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from grader.outputs.report import all_entries, write_submission, write_summary
from grader.probe.records import Record
from grader.run import sandbox
from grader.run.batch import _already_graded, grade_batch
from grader.run.staging import find_submissions, stage

REPO = Path(__file__).resolve().parents[1]
COUNT = 20  # submissions per kind: enough that per-batch costs (imports, caches) are not the figure
ROUNDS = 3
TASKS = ("model", "preprocessing", "inference", "integrated_gradients", "answers")
PHASES = ("find", "stage", "write", "summary", "resume")


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder).as_posix())
    return target


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """``COUNT`` submissions of each kind, as an LMS export holds them."""
    from grader.distribute.notebook_writer import write_notebook

    root = tmp_path_factory.mktemp("class")
    copy = root / "reference-copy"
    shutil.copytree(REPO / "reference", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "__main__.py"))
    notebook = write_notebook(root / "lab3.ipynb", reference=True)
    kinds: dict[str, list[str]] = {"folder": [], "zip": [], "notebook": []}
    (root / "zip").mkdir()
    for i in range(COUNT):
        folder = root / "folder" / f"student_{i:03d}"
        shutil.copytree(copy, folder)
        kinds["folder"].append(str(folder))
        kinds["zip"].append(str(_zip(copy, root / "zip" / f"student_{i:03d}.zip")))
        target = root / "notebook" / f"student_{i:03d}" / "lab3.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copyfile(notebook, target)  # a Gradescope upload: a folder with its notebook
        kinds["notebook"].append(str(target.parent))
    return kinds


@pytest.fixture(scope="module")
def report(resolved_weights):
    """One ungradable-shaped report (no student code ran): what is written per submission."""
    from grader.check.checking import CheckContext
    from grader.check.grading import grade_records

    check_context = CheckContext(weights=resolved_weights)

    records = {t: Record(task=t, data={"import_error": "benchmark"}) for t in TASKS}
    return grade_records("student", records, {}, check_context, settings={},
                         reference_description="benchmark", tasks=TASKS), records


def _pipeline(specs: list[str], work: Path, report, records) -> dict[str, float]:
    """Every phase once over ``specs``; seconds per phase."""
    grade_report = report
    out = work / "out"
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    found = find_submissions(specs, out)
    seconds["find"] = time.perf_counter() - start

    start = time.perf_counter()
    for index, sub in enumerate(found):
        stage(sub, work / f"{index:05d}" / "submission", work / f"{index:05d}" / "unpacked")
    seconds["stage"] = time.perf_counter() - start

    start = time.perf_counter()
    for sub in found:
        write_submission(out / sub.name, grade_report, status="ungradable",
                         problems=["benchmark"], student=records, reference={},
                         log="", extra={"source": sub.source()})
    seconds["write"] = time.perf_counter() - start

    start = time.perf_counter()
    write_summary(out, all_entries(out))
    seconds["summary"] = time.perf_counter() - start

    start = time.perf_counter()
    again = find_submissions(specs, out)
    skipped = [sub for sub in again if _already_graded(out / sub.name, sub)]
    seconds["resume"] = time.perf_counter() - start
    assert len(skipped) == len(specs)  # the resume path really was taken
    return seconds


@pytest.mark.parametrize("kind", ["folder", "zip", "notebook"])
def test_staging_and_bookkeeping_per_submission(benchmark, sources, report, tmp_path: Path,
                                                kind: str) -> None:
    benchmark.group = f"staging and bookkeeping, {COUNT} submissions"
    grade_report, records = report
    specs = sources[kind]
    rounds: list[dict[str, float]] = []
    counter = iter(range(1000))

    def run() -> None:
        work = tmp_path / f"round{next(counter)}"
        rounds.append(_pipeline(specs, work, grade_report, records))

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    info = benchmark.extra_info
    info["submissions"] = len(specs)
    info["load_average_1min"] = round(os.getloadavg()[0], 2)
    for phase in PHASES:
        info[f"{phase}_ms_per_submission"] = round(
            min(r[phase] for r in rounds) / len(specs) * 1e3, 2)
    info["total_ms_per_submission"] = round(
        min(sum(r.values()) for r in rounds) / len(specs) * 1e3, 2)


@pytest.mark.slow
def test_class_batch_wall_time(benchmark, tmp_path: Path) -> None:
    from tests.harness.class_batch import generate_class

    expected = generate_class(tmp_path / "class", 200)
    specs = [e.spec for e in expected]

    def grade():
        return grade_batch(specs, out=tmp_path / "grades", jobs=2, tasks="model,answers",
                           variant="practice", quiet=True)

    result = benchmark.pedantic(grade, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["submissions"] = len(specs)
    benchmark.extra_info["sandbox"] = sandbox.resolve_mode("auto")[0]
    benchmark.extra_info["load_average_1min"] = round(os.getloadavg()[0], 2)
    benchmark.extra_info["wall_seconds"] = round(result.seconds, 1)
    benchmark.extra_info["seconds_per_submission"] = round(result.seconds / len(specs), 3)
    assert result.exit_code == 0
    assert len(result.entries) == len(specs)
