"""The record snapshot extension compares numbers with a tolerance and everything else exactly."""

from __future__ import annotations

import pytest
import torch

from grader.probe.records import Record
from grader.refdata.snapshot import REL_TOL, approx_equal, summarize_record


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        pytest.param(1.0, 1.0 + REL_TOL / 2, True, id="float-within-tolerance"),
        pytest.param(1.0, 1.1, False, id="float-outside-tolerance"),
        pytest.param(True, 1, False, id="bool-is-not-a-number"),
        pytest.param("a", "a", True, id="same-string"),
        pytest.param("a", "b", False, id="other-string"),
        pytest.param([1.0, 2.0], [1.0], False, id="list-length"),
        pytest.param({"x": 1.0}, {"y": 1.0}, False, id="dict-keys"),
        pytest.param({"x": [0.5, {"y": 2.0}]}, {"x": [0.5, {"y": 2.0 * (1 + REL_TOL / 4)}]}, True,
                     id="nested-within-tolerance"),
    ],
)
def test_approx_equal(a, b, equal: bool) -> None:
    assert approx_equal(a, b) is equal


def test_summary_drops_timings_and_keeps_facts() -> None:
    record = Record("t", data={"calls": {"f": {"ok": True, "seconds": 1.23}}})
    assert summarize_record(record)["data"] == {"calls": {"f": {"ok": True}}}


def test_summary_of_a_map_has_a_small_thumbnail() -> None:
    record = Record("t", tensors={"x": torch.arange(64.0).reshape(1, 1, 8, 8)})
    summary = summarize_record(record)["tensors"]["x"]
    assert summary["shape"] == [1, 1, 8, 8]
    assert len(summary["map"]) == 4 and len(summary["map"][0]) == 4


def test_summary_notices_a_changed_tensor() -> None:
    a = summarize_record(Record("t", tensors={"x": torch.ones(2, 8, 8)}))
    b = summarize_record(Record("t", tensors={"x": torch.ones(2, 8, 8) * 1.01}))
    assert not approx_equal(a, b)
