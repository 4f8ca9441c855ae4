"""Scores as people read them (two decimals at most) and as files keep them (exact)."""

from __future__ import annotations

import re

import pytest

from grader.check.results import CheckResult, GradeReport, TaskResult, format_points


@pytest.mark.parametrize(("value", "shown"), [
    (8.2308, "8.23"),
    (8.5, "8.5"),
    (10.0, "10"),
    (0, "0"),
    (2 / 3, "0.67"),
    (-1e-9, "0"),
])
def test_points_are_shown_with_two_decimals_at_most(value: float, shown: str) -> None:
    assert format_points(value) == shown


@pytest.fixture
def report() -> GradeReport:
    """Task 5 at 8.2308 of 16 points (a partial activation check)."""
    checks = [CheckResult("filters", "activation_rises", 2.2308, 6, "rises too little", False),
              CheckResult("filters", "grid", 6, 6, "", True),
              CheckResult("filters", "hooks_removed", 0, 4, "a hook is left", False)]
    return GradeReport(submission="alice", tasks=[TaskResult("filters", checks)], weights={},
                       versions={}, settings={}, reference_records="")


def test_score_table_rounds_for_display(report: GradeReport) -> None:
    table = report.table()
    assert re.search(r"^Task 5: .*  8\.23/16  activation_rises", table, re.M), table
    assert re.search(r"^total\s+8\.23/16$", table, re.M), table


def test_results_json_keeps_the_exact_score_and_rounds_its_message(report: GradeReport) -> None:
    results = report.to_gradescope()
    assert results["score"] == 8.2308
    assert results["tests"][0]["score"] == 2.2308
    assert results["output"].splitlines()[0] == "alice: 8.23 / 16"


def test_batch_table_and_summary_csv_round_for_display(report: GradeReport, tmp_path) -> None:
    from grader.outputs.report import SUMMARY_FILE, score_table, summary_entry, write_summary

    entry = summary_entry(report, status="graded", problems=[])
    assert entry["score"] == 8.2308  # report.json: exact
    row = score_table([entry]).splitlines()[-1]
    assert row.split()[1:3] == ["8.23", "8.23/16"], row
    write_summary(tmp_path, [entry])
    assert (tmp_path / SUMMARY_FILE).read_text().splitlines()[1].startswith("alice,8.23,8.23,16,")
