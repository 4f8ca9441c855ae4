"""Per-task probes and checks; each module is named like the task's module in ``reference/``.

A task module provides:

- ``probe(ctx: ProbeContext) -> Record``: calls the implementation under test on
  fixed inputs and records plain data (runs next to untrusted code);
- ``CHECKS: dict[str, CheckFn]``: one pure function per visible row of
  ``grader/points.py`` for that task, ``(student, reference, ctx) -> Outcome``
  (runs in the trusted grader process).

A task with hidden checks (rows declared in ``grader/hidden/__init__.py``) has a module
``grader/hidden/<task>.py`` too, with their ``CHECKS`` and, when they probe inputs of their
own, ``probe(ctx, record)``. The two are joined here, in one place: :func:`task_checks`
and :func:`probe_task_record`. A student release has no ``grader/hidden/`` and no hidden
rows, so nothing is joined there.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from grader.points import CHECKS, TASKS

if TYPE_CHECKING:
    from grader.probe.probing import ProbeContext
    from grader.probe.records import Record


def hidden_module(name: str) -> ModuleType | None:
    """``grader.hidden.<name>`` when the points table has hidden rows of task ``name``."""
    if not any(c.hidden and c.task == name for c in CHECKS):
        return None
    return importlib.import_module(f"grader.hidden.{name}")


def task_module(name: str) -> ModuleType:
    """``grader.tasks.<name>``; verifies its CHECKS, with its hidden module's, match the
    points table."""
    module = importlib.import_module(f"grader.tasks.{name}")
    hidden = hidden_module(name)
    expected = {c.name for c in CHECKS if c.task == name}
    actual = set(getattr(module, "CHECKS", {})) | set(getattr(hidden, "CHECKS", {}))
    if expected != actual:
        where = f"grader/tasks/{name}.py" + (f", grader/hidden/{name}.py" if hidden else "")
        raise RuntimeError(
            f"{where}: CHECKS {sorted(actual)} do not match "
            f"grader/points.py {sorted(expected)}"
        )
    return module


def task_checks(name: str) -> dict:
    """Every check function of task ``name``: the task module's ``CHECKS`` and its hidden
    module's (read afresh, so a patched ``CHECKS`` entry is the one used)."""
    module = task_module(name)
    hidden = hidden_module(name)
    return {**module.CHECKS, **(hidden.CHECKS if hidden is not None else {})}


def probe_task_record(name: str, ctx: ProbeContext) -> Record:
    """Task ``name``'s record: its probe, then its hidden checks' probing, when they have any."""
    record = task_module(name).probe(ctx)
    hidden = hidden_module(name)
    if hidden is not None and hasattr(hidden, "probe"):
        hidden.probe(ctx, record)
    return record


TASK_NAMES: tuple[str, ...] = tuple(t.module for t in TASKS)
