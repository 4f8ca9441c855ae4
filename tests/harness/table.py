"""Points as the harness tests state them: computed from grader/points.py, never typed in."""

from __future__ import annotations

from grader.points import checks_of


def task_points(*tasks: str) -> float:
    """Full marks of ``tasks`` in the table (hidden checks included, as `lab3 grade` gives)."""
    return sum(c.points for task in tasks for c in checks_of(task))


def check_points(task: str, *names: str) -> float:
    """The points of the checks ``names`` of ``task``."""
    table = {c.name: c.points for c in checks_of(task)}
    return sum(table[name] for name in names)
