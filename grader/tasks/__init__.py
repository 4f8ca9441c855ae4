"""Per-task probes and checks; each module is named like the task's module in ``reference/``.

A task module provides:

- ``probe(ctx: ProbeContext) -> Record``: calls the implementation under test on
  fixed inputs and records plain data (runs next to untrusted code);
- ``CHECKS: dict[str, CheckFn]``: one pure function per row of
  ``grader/points.py`` for that task, ``(student, reference, ctx) -> Outcome``
  (runs in the trusted grader process).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from grader.points import CHECKS, TASKS


def task_module(name: str) -> ModuleType:
    """``grader.tasks.<name>``; verifies its CHECKS match the points table."""
    module = importlib.import_module(f"grader.tasks.{name}")
    expected = {c.name for c in CHECKS if c.task == name}
    actual = set(getattr(module, "CHECKS", {}))
    if expected != actual:
        raise RuntimeError(
            f"grader/tasks/{name}.py: CHECKS {sorted(actual)} do not match "
            f"grader/points.py {sorted(expected)}"
        )
    return module


TASK_NAMES: tuple[str, ...] = tuple(t.module for t in TASKS)
