"""Probe → record → check: the one path every grade takes, in pytest and in `lab3 grade`."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable
from pathlib import Path

from grader.check.checking import CheckContext, CheckFailed, Outcome
from grader.check.results import CheckResult, GradeReport, TaskResult
from grader.points import SWITCHED_OFF, Course, checks_of
from grader.probe.probing import ImplementationError, ProbeContext, student_traceback
from grader.probe.records import Record
from grader.tasks import TASK_NAMES, probe_task_record, task_checks, task_module


def probe_task(task: str, ctx: ProbeContext) -> Record:
    """Run one task's probe; import failures and probe crashes become plain data."""
    from grader.probe.top_level import offline_for

    urls: list[str] = []
    try:
        # The handout downloads its labels and photo: answered offline, other URLs refused.
        with offline_for(ctx, urls):
            record = probe_task_record(task, ctx)
    except ImplementationError as exc:
        record = Record(task=task, data={"import_error": str(exc)})
    except BaseException as exc:  # student code may break the probe itself
        if isinstance(exc, KeyboardInterrupt):
            raise
        record = Record(task=task, data={
            "probe_error": f"{type(exc).__name__}: {exc}"[:2000],
            "traceback": student_traceback(exc)[-4000:],
        })
    record.task = task
    if urls:
        record.data.setdefault("adapted", []).append(
            "downloads answered by the grader's offline stand-ins: " + "; ".join(urls[:5]))
    if ctx.run_top_level is not None:  # what a top-level run computed for this task
        from grader.check.top_level_checks import collect

        collect(task, ctx, record)
    if ctx.adapted.get(task):  # how a handout-shaped function was called: for the notes
        record.data["adapted"] = [*ctx.adapted[task], *record.data.get("adapted", [])]
    locations = getattr(ctx.impl, "locations", None)
    if locations is not None:  # a notebook: lets the checks' messages name its cells
        record.data["notebook_locations"] = locations.to_dict()
    return record


def probe_all(ctx: ProbeContext, tasks: Iterable[str] = TASK_NAMES) -> dict[str, Record]:
    return {task: probe_task(task, ctx) for task in tasks}


def check_task(
    task: str,
    student: Record | None,
    reference: Record | None,
    ctx: CheckContext,
    *,
    include_hidden: bool = True,
    course: Course | None = None,
) -> TaskResult:
    """Every check of ``task`` at ``course``'s points (:func:`grader.points.effective_checks`);
    whatever goes wrong becomes a failed check with a message. A check the course switched
    off is not run: 0 of 0 points, passed, with :data:`grader.points.SWITCHED_OFF`."""
    from grader.submission.locations import NotebookLocations

    task_module(task)  # an unknown task fails here, before any check
    result = TaskResult(task=task)
    failure = _task_failure(task, student, reference)
    # Checks speak of model.py, ...; a notebook's student reads of their cells instead.
    locations = NotebookLocations.from_dict(student.data.get("notebook_locations")) \
        if student is not None else None
    for spec in checks_of(task, include_hidden=include_hidden, course=course):
        if spec.switched_off:
            outcome = Outcome(1.0, SWITCHED_OFF)
        elif failure is not None:
            outcome = Outcome(0.0, failure)
        else:
            outcome = run_check(_check_function(task, spec.name, student), student, reference,
                                ctx)
        result.checks.append(CheckResult(
            task=task,
            name=spec.name,
            score=round(spec.points * outcome.fraction, 4),
            max_score=spec.points,
            message=locations.localize(outcome.message) if locations else outcome.message,
            passed=outcome.passed,
            hidden=spec.hidden,
        ))
    return result


def _check_function(task: str, name: str, student: Record | None):
    """The task's check ``name``, or, for a submission whose function is missing but whose
    top-level run left evidence, the check of that evidence (:mod:`grader.check.top_level_checks`)."""
    from grader.check.top_level_checks import EVIDENCE_CHECKS, has_evidence

    if has_evidence(student) and name in EVIDENCE_CHECKS.get(task, {}):
        return EVIDENCE_CHECKS[task][name]
    return task_checks(task)[name]


def run_check(fn, student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    try:
        outcome = fn(student, reference, ctx)
    except CheckFailed as exc:
        return Outcome(0.0, str(exc))
    except Exception as exc:  # noqa: BLE001 - a malformed record must not crash the grader
        return Outcome(0.0, f"the recorded output could not be checked ({type(exc).__name__}: "
                            f"{exc}); make the function return what its docstring says")
    if not isinstance(outcome, Outcome):
        return Outcome(0.0, "grader error: check returned no outcome")
    return outcome


def _task_failure(task: str, student: Record | None, reference: Record | None) -> str | None:
    if student is None:
        return "the grader recorded nothing for this task"
    if "timeout" in student.data:
        return f"timed out: {student.data['timeout']}"
    if "import_error" in student.data:
        return str(student.data["import_error"])
    if "probe_error" in student.data:
        return f"the grader's probe failed on your code: {student.data['probe_error']}"
    if "record_error" in student.data:
        return f"the record of this task is unusable: {student.data['record_error']}"
    if reference is None:
        return "no reference record for this task (grader set-up problem)"
    return None


def grade_records(
    submission: str,
    student: dict[str, Record | None],
    reference: dict[str, Record],
    ctx: CheckContext,
    *,
    settings: dict,
    reference_description: str,
    include_hidden: bool = True,
    execution_time: float = 0.0,
    notes: list[str] | None = None,
    tasks: Iterable[str] = TASK_NAMES,
    course: Course | None = None,
) -> GradeReport:
    """Check every task's record against the reference's and assemble the report.

    ``tasks`` limits the report to some tasks (``lab3 grade --tasks``, for tests);
    ``course`` is the course file's points (:mod:`grader.course`), named in the notes.
    """
    results = [
        check_task(t, student.get(t), reference.get(t), ctx, include_hidden=include_hidden,
                   course=course)
        for t in tasks
    ]
    notes = [*(notes or []), *([course.describe()] if getattr(course, "points", None) else []),
             *_adaptation_notes(student)]
    answers_record = student.get("answers")
    answers = {}
    if answers_record is not None and isinstance(answers_record.data.get("answers"), dict):
        # Only the grader's own question headings: the keys of a record are the submission's
        # to choose, and they become answers.csv's columns.
        from grader.tasks.answers import template_headings

        given = answers_record.data["answers"]
        answers = {h: str(given[h]) for h in template_headings() if h in given}
    return GradeReport(
        submission=submission,
        tasks=results,
        weights=ctx.weights.to_dict(),
        versions=library_versions(),
        settings=settings,
        reference_records=reference_description,
        execution_time=execution_time,
        notes=notes,
        answers=answers,
    )


def library_versions() -> dict[str, str]:
    import captum
    import numpy
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
        "numpy": numpy.__version__,
    }


def grade_in_process(
    impl,
    *,
    weights,
    settings,
    reference: dict[str, Record],
    reference_description: str,
    scratch: Path,
    device: str = "cpu",
    include_hidden: bool = True,
    course: Course | None = None,
) -> GradeReport:
    """Probe and check ``impl`` in this process (``pytest --impl``: fast, not isolated)."""
    from grader.probe.inputs import FIXTURES_DIR

    start = time.perf_counter()
    ctx = ProbeContext(impl=impl, weights=weights, settings=settings,
                       fixtures_dir=FIXTURES_DIR, scratch=scratch, device=device)
    records = probe_all(ctx)
    return grade_records(
        impl.name, records, reference, CheckContext(weights=weights),
        settings=settings.to_dict(), reference_description=reference_description,
        include_hidden=include_hidden, execution_time=time.perf_counter() - start,
        course=course,
    )


def _adaptation_notes(student: dict[str, Record | None]) -> list[str]:
    """How the probes called a handout-shaped submission's functions, per task (recorded
    by the probe as phrases only: capped, and never worth points)."""
    from grader.points import task_spec

    notes = []
    for task in (t for t in TASK_NAMES if t in student):
        record = student[task]
        adapted = record.data.get("adapted") if record is not None else None
        if isinstance(adapted, list):
            notes += [f"{task_spec(task).title.split(':')[0]}: {note[:300]}"
                      for note in adapted[:5] if isinstance(note, str)]
    return notes
