"""Batch grading throughput: ``lab3 grade`` on N copies of the reference with -j 1 and -j 2.

Run alone and serially: ``pytest benchmarks/test_batch_bench.py --benchmark-only``.
Targets (issues 4 and 6): -j 2 on a 2-core machine grades at least 1.7x the
submissions per second of -j 1, with a peak memory under 1.5 GB per worker.
``submissions_per_second`` is the whole batch's (start-up included);
``steady_submissions_per_second`` counts from the moment every worker has
finished its first submission, the rate a large class sees. Each
case runs under bwrap (a warm worker per slot forks the children) and, beside it,
with ``--sandbox none`` (a fresh process per child, importing torch each time).
Each copy must score 100; times and memory are reported, never asserted.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from grader.run import sandbox
from grader.run.batch import grade_batch

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
COPIES = 8  # a class is many submissions: enough that start-up (reference records, workers) is not the figure


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("class")
    paths = []
    for i in range(COPIES):
        dest = root / f"student{i:02d}"
        shutil.copytree(REFERENCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
        paths.append(str(dest))
    return paths


SANDBOXES = [
    pytest.param("bwrap", id="warm-bwrap", marks=pytest.mark.skipif(
        sandbox.bwrap_problem() is not None, reason=f"{sandbox.bwrap_problem()}")),
    pytest.param("none", id="fresh-none"),
]


@pytest.mark.parametrize("mode", SANDBOXES)
@pytest.mark.parametrize("jobs", [1, 2])
def test_batch_grading(benchmark, submissions, tmp_path: Path, jobs: int, mode: str) -> None:
    benchmark.group = f"lab3 grade {COPIES} reference copies [{mode}]"
    counter = iter(range(1000))

    done: list[float] = []  # when each submission's grade was reported

    def note(line: str) -> None:
        if line.startswith("student") and ": " in line:
            done.append(time.monotonic())

    def grade():
        done.clear()
        return grade_batch(submissions, out=tmp_path / f"run{next(counter)}", jobs=jobs,
                           sandbox_mode=mode, variant="practice", say=note)

    result = benchmark.pedantic(grade, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["submissions_per_second"] = round(COPIES / result.seconds, 4)
    # Once every worker has finished its first submission, start-up (reference records,
    # the workers' imports) is behind: the rate from then on is what a class of
    # hundreds of submissions gets.
    if len(done) == COPIES > jobs:
        benchmark.extra_info["steady_submissions_per_second"] = round(
            (COPIES - jobs) / (done[-1] - done[jobs - 1]), 4)
    peaks = [e.get("resources", {}).get("peak_memory_mib") for e in result.entries]
    benchmark.extra_info["peak_memory_mib_per_worker"] = max(
        (p for p in peaks if p is not None), default=None)
    assert result.exit_code == 0
    assert sorted(result.graded) == sorted(Path(s).name for s in submissions)
    scores = [e.get("score") for e in result.entries]
    assert all(s == 100 for s in scores), scores
