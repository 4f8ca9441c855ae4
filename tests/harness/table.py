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


def expected_check_points(task: str, expectation: str | dict) -> dict[str, float]:
    """Each check of ``task`` with the points an expectation stated in checks gives it.

    ``"full"``: every check earns its table points; ``"zero"``: every check earns 0;
    ``{"fail": [...], "partial": {check: fraction}}``: the checks named in ``fail`` earn 0,
    those in ``partial`` that fraction of their table points, every other one its full
    points. The corpus's expected.json files state points this way (issue 16), so that
    moving a point in grader/points.py touches none of them.
    """
    table = {c.name: c.points for c in checks_of(task)}
    if expectation == "full":
        return dict(table)
    if expectation == "zero":
        return dict.fromkeys(table, 0.0)
    if not isinstance(expectation, dict) or not set(expectation) <= {"fail", "partial"}:
        raise ValueError(f"{task}: not 'full', 'zero' or {{'fail', 'partial'}}: {expectation!r}")
    fail, partial = list(expectation.get("fail", [])), dict(expectation.get("partial", {}))
    unknown = (set(fail) | set(partial)) - set(table)
    if unknown:
        raise ValueError(f"{task}: no such check {sorted(unknown)} (the table has {sorted(table)})")
    if set(fail) & set(partial):
        raise ValueError(f"{task}: {sorted(set(fail) & set(partial))} both failed and partial")
    for name, fraction in partial.items():
        if not 0 < fraction < 1:
            raise ValueError(f"{task}::{name}: a partial fraction in (0, 1), not {fraction!r}")
    return {name: 0.0 if name in fail else points * partial.get(name, 1.0)
            for name, points in table.items()}
