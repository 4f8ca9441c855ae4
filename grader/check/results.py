"""Grading results as dataclasses: per check, per task, per submission; Gradescope's format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from grader.points import TASKS, task_spec

DISPLAY_DECIMALS = 2


def format_points(value: float) -> str:
    """Points as shown to people (tables, CSV, messages): at most two decimals, no trailing
    zeros (``8.2308`` -> ``8.23``, ``8.5`` -> ``8.5``, ``10.0`` -> ``10``). Files meant for
    machines (results.json, report.json) keep the exact value."""
    return f"{round(value, DISPLAY_DECIMALS) + 0.0:g}"  # + 0.0: no "-0" from a tiny negative


@dataclass(frozen=True)
class CheckResult:
    task: str
    name: str
    score: float
    max_score: float
    message: str
    passed: bool
    hidden: bool = False

    @property
    def visibility(self) -> str:
        # Gradescope: hidden checks are shown to students only after grades are published.
        return "after_published" if self.hidden else "visible"

    def to_gradescope(self) -> dict[str, Any]:
        spec = task_spec(self.task)
        number = f"Task {spec.number}" if spec.number else spec.title
        return {
            "name": f"{number} {self.task}::{self.name}",
            "score": round(self.score, 4),
            "max_score": self.max_score,
            "output": self.message,
            "visibility": self.visibility,
        }


@dataclass
class TaskResult:
    task: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    @property
    def first_failure(self) -> str | None:
        for check in self.checks:
            if not check.passed:
                return f"{check.name}: {check.message}"
        return None


@dataclass
class GradeReport:
    """All results of one implementation, with what they were computed with."""

    submission: str
    tasks: list[TaskResult]
    weights: dict[str, str]
    versions: dict[str, str]
    settings: dict[str, Any]
    reference_records: str
    execution_time: float = 0.0
    notes: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tasks)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tasks)

    def checks(self, *, include_hidden: bool = True) -> list[CheckResult]:
        return [c for t in self.tasks for c in t.checks if include_hidden or not c.hidden]

    def task(self, name: str) -> TaskResult:
        for task in self.tasks:
            if task.task == name:
                return task
        raise KeyError(name)

    def to_gradescope(self) -> dict[str, Any]:
        """Gradescope's results.json (score, max_score, execution_time, output, tests)."""
        lines = [f"{self.submission}: {format_points(self.score)} / {format_points(self.max_score)}",
                 *self.notes]
        return {
            "score": round(self.score, 4),
            "max_score": self.max_score,
            "execution_time": round(self.execution_time, 2),
            "output": "\n".join(lines),
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [c.to_gradescope() for c in self.checks()],
            "extra_data": {
                "weights": self.weights,
                "versions": self.versions,
                # A graded variant's inputs (photo, crop, seeds) stay with the instructor:
                # results.json reaches students, who may submit again.
                "settings": self.settings if self.settings.get("variant", "practice") == "practice"
                else {"variant": self.settings["variant"]},
                "reference_records": self.reference_records,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self, *, include_hidden: bool = True) -> str:
        """Plain-text score table: one row per task, with the first failing message."""
        rows = []
        for spec in TASKS:
            try:
                task = self.task(spec.module)
            except KeyError:
                continue
            checks = [c for c in task.checks if include_hidden or not c.hidden]
            score = sum(c.score for c in checks)
            possible = sum(c.max_score for c in checks)
            failure = next((f"{c.name}: {c.message}" for c in checks if not c.passed), "")
            if spec.number is None:
                failure = failure or "collected for manual grading"
            rows.append((spec.title, f"{format_points(score)}/{format_points(possible)}", failure))
        width = max(len(r[0]) for r in rows)
        out = [f"{'task'.ljust(width)}  points   first problem", "-" * (width + 40)]
        for title, pts, failure in rows:
            if len(failure) > 110:
                failure = failure[:107] + "..."
            out.append(f"{title.ljust(width)}  {pts:>7}  {failure}")
        total_checks = self.checks(include_hidden=include_hidden)
        out.append("-" * (width + 40))
        out.append(
            f"{'total'.ljust(width)}  {format_points(sum(c.score for c in total_checks))}/"
            f"{format_points(sum(c.max_score for c in total_checks))}"
        )
        return "\n".join(out)
