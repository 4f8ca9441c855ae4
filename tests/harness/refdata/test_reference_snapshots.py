"""CI regression: the reference's records stay as snapshotted (per weights id, with tolerance).

Regenerate after an intended change with ``pytest tests/harness/refdata/test_reference_snapshots.py
--snapshot-update`` and review the diff of ``__snapshots__/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.refdata.snapshot import extension_for, summarize_record
from grader.tasks import TASK_NAMES

SNAPSHOTS = Path(__file__).parent / "__snapshots__"


@pytest.fixture
def record_snapshot(snapshot, resolved_weights, request: pytest.FixtureRequest):
    updating = request.config.getoption("--snapshot-update", default=False)
    if not updating and not (SNAPSHOTS / resolved_weights.id).is_dir():
        pytest.skip(f"no snapshots for {resolved_weights.id}; add them with --snapshot-update")
    return snapshot.use_extension(extension_for(resolved_weights.id))


@pytest.mark.parametrize("task", TASK_NAMES)
def test_reference_record_matches_snapshot(task: str, reference_records, record_snapshot) -> None:
    assert summarize_record(reference_records[task]) == record_snapshot
