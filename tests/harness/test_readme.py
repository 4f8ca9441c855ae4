"""The README's points table is the one the grader uses."""

from __future__ import annotations

from pathlib import Path

from grader.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_points_table_is_current(capsys) -> None:
    assert main(["points"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in README.read_text(), "README's points table is stale: paste `lab3 points` into it"
