"""GPU results agree with CPU results within the grader's tolerances (skipped without CUDA).

The reference, probed on CUDA, is graded against the reference's CPU records: every
check must pass, so a grade never depends on the device the grader ran on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.check.grading import grade_in_process
from grader.probe.implementation import load_implementation
from grader.settings import DEFAULT_SETTINGS
from grader.tasks import TASK_NAMES


@pytest.mark.gpu
def test_reference_probed_on_cuda_gets_full_points_against_cpu_records(
        resolved_weights, reference_records, tmp_path: Path) -> None:
    cpu_records = {task: reference_records[task] for task in TASK_NAMES}
    report = grade_in_process(
        load_implementation("reference"), weights=resolved_weights, settings=DEFAULT_SETTINGS,
        reference=cpu_records, reference_description="reference probed on the CPU",
        scratch=tmp_path, device="cuda",
    )
    assert report.score == report.max_score, report.table()
