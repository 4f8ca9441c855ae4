"""Batch grading throughput: ``lab3 grade`` on N copies of the reference with -j 1 and -j 2.

Run alone and serially: ``pytest benchmarks/test_batch_bench.py --benchmark-only``.
Target (issue 4): -j 2 on a 2-core machine grades at least 1.7x the submissions per
second of -j 1. Each copy must score 100; times are reported, never asserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader.batch import grade_batch

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
COPIES = 4


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("class")
    paths = []
    for i in range(COPIES):
        dest = root / f"student{i:02d}"
        shutil.copytree(REFERENCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
        paths.append(str(dest))
    return paths


@pytest.mark.parametrize("jobs", [1, 2])
def test_batch_grading(benchmark, submissions, tmp_path: Path, jobs: int) -> None:
    benchmark.group = f"lab3 grade {COPIES} reference copies"
    counter = iter(range(1000))

    def grade():
        return grade_batch(submissions, out=tmp_path / f"run{next(counter)}", jobs=jobs, quiet=True)

    result = benchmark.pedantic(grade, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["submissions_per_second"] = COPIES / result.seconds
    assert result.exit_code == 0
    assert sorted(result.graded) == sorted(Path(s).name for s in submissions)
    scores = [e.get("score") for e in result.entries]
    assert all(s == 100 for s in scores), scores
