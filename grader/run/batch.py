"""``lab3 grade``: grade many untrusted submissions, each in its own sandboxed child process.

The parent (this module and the ones it names) is trusted. Before any child starts it
resolves the weights, loads the reference's records once (probing ``reference/`` only
when no cache exists) and imports the checks (:mod:`grader.run.batch_setup`). For each
submission it then (:class:`grader.run.submission_run.SubmissionRun`):

1. stages a private scratch copy (:mod:`grader.run.staging`): a folder is copied (regular
   files only: no symlinks, no devices, capped in count and size), a ``.zip`` is extracted
   here, in the parent, with :mod:`grader.probe.implementation`'s safe extractor (no absolute
   paths, no ``..``, no symlinks, capped) and its task modules' folder copied the
   same way. The parent never imports the submission;
2. runs a child (:mod:`grader.probe.child`, never a fork of this process) on it under
   :mod:`grader.run.sandbox` (resource limits, an unprivileged uid when run as root):
   with bubblewrap, forked from the worker slot's warm process
   (:mod:`grader.run.warm_worker`, :mod:`grader.run.warm_worker_process`), which imported torch once in
   the slot's sandbox; with ``--sandbox none``, a fresh process (:mod:`grader.run.attempt`).
   It watches the child's progress markers: a task over its time budget, or the submission
   over its own, kills the child's whole process tree and that task records a timeout;
   a crash costs the running task only; a new child then probes the remaining tasks;
3. reads the records back itself (:mod:`grader.run.readback`: no symlinks, no special
   files, size caps, then :meth:`Record.load`'s validation), never unpickling anything,
   and runs the same checks as ``pytest --impl`` on them
   (:func:`grader.check.grading.grade_records`);
4. writes ``<out>/<name>/`` (feedback.html, report.json, log.txt, then
   results.json last, all atomically) and finally ``summary.csv``/``answers.csv``.

A submission whose ``results.json`` exists is skipped unless ``force``, so an
interrupted batch resumes where it stopped. ``jobs`` threads each manage one
child at a time (the heavy work is in the children; checks are light); with
bubblewrap each thread's slot keeps its warm process for the whole batch.

This module keeps the entry point (:func:`grade_batch`, :func:`parse_tasks`) and the
worker pool. ``grade_batch``'s keyword defaults are literals or constants assigned here:
:func:`grader.cli.grade_defaults` reads them from this file's source, so that
``lab3 grade --help`` does not import torch.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.check.results import format_points
from grader.errors import GraderError, Interrupted, UsageError
from grader.outputs.report import all_entries, load_entry, score_table, write_summary
from grader.outputs.terminal import printable
from grader.run import processes, sandbox, uids
from grader.run.batch_setup import Batch, cpu_count, hidden_paths, load_reference, prepare_weights
from grader.run.staging import Submission, find_submissions
from grader.run.submission_run import SubmissionRun
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import TASK_NAMES

DEFAULT_TIMEOUT = 300.0
DEFAULT_TASK_TIMEOUT = 60.0
# RLIMIT_AS counts address space, not resident memory: importing torch, torchvision,
# captum and matplotlib already maps about 3.6 GB (resident: 0.8 GB), and probing the
# reference peaks at 4.2 GB mapped / 1.2 GB resident. 8 GB leaves room for an honest
# submission and still stops a runaway one.
DEFAULT_MEMORY_MB = 8192


@dataclass
class BatchResult:
    """What ``grade_batch`` did; ``exit_code`` for the CLI."""

    entries: list[dict[str, Any]]
    graded: list[str]
    skipped: list[str]
    missing: list[tuple[str, str]]
    errors: list[tuple[str, str]]
    interrupted: bool = False
    table: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.errors else 0


def parse_tasks(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"model,preprocessing"`` -> the tasks in the points table's order.

    Raises:
        UsageError: an unknown task name.
    """
    if value is None:
        return TASK_NAMES
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    unknown = sorted(set(names) - set(TASK_NAMES) - {""})
    if unknown:
        raise UsageError(f"--tasks: unknown {unknown}; tasks are {', '.join(TASK_NAMES)}")
    return tuple(t for t in TASK_NAMES if t in names)


def _already_graded(folder: Path, sub: Submission, course_key: str | None = None) -> bool:
    """Whether ``folder`` holds a complete grade of exactly this source (path and content),
    graded under the same course file (:attr:`grader.course.Course.key`)."""
    entry = load_entry(folder)
    return entry is not None and bool(sub.digest) and entry.get("source") == sub.source() \
        and entry.get("course") == course_key


def _variant_settings(variant: str, secret: str | None, notes: list[str]) -> ProbeSettings:
    """The probe settings of ``variant`` (``graded`` or ``practice``).

    Raises:
        UsageError: an unknown variant, or a course secret that cannot be read.
    """
    from grader.run.variant import SecretError, course_settings

    if variant == "practice":
        if secret is not None:
            raise UsageError("--secret applies to the graded variant; drop it or --variant practice")
        return DEFAULT_SETTINGS
    if variant != "graded":
        raise UsageError(f"--variant {variant!r}: choose graded (the default) or practice")
    try:
        return course_settings(secret, notes)
    except (SecretError, OSError) as exc:
        raise UsageError(str(exc)) from exc


def grade_batch(
    submissions: Sequence[str],
    *,
    out: str | os.PathLike[str],
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    task_timeout: float = DEFAULT_TASK_TIMEOUT,
    memory: int = DEFAULT_MEMORY_MB,
    sandbox_mode: str = "auto",
    weights: str = "auto",
    device: str = "cpu",
    force: bool = False,
    tasks: str | Sequence[str] | None = None,
    variant: str = "graded",
    secret: str | None = None,
    course: str | None = None,
    run_top_level: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] | None = None,
) -> BatchResult:
    """Grade ``submissions`` into ``out`` (see the module docstring).

    ``variant`` ``"graded"`` (the default) probes the inputs of the course secret
    (``secret``: its file; see :mod:`grader.run.variant`), ``"practice"`` the published inputs
    students check themselves on. ``course``: the course file (switched-off and reweighted
    checks; see :mod:`grader.course`), else ``$LAB3_COURSE_FILE`` or ``.lab3/course.toml``.
    ``run_top_level``: run the top-level code of script and notebook submissions (with the
    offline stand-ins, :mod:`grader.probe.top_level`) for what the handout asks as top-level code.

    Raises:
        UsageError: bad options, bubblewrap required but unusable, no submission exists.
        GraderError: no reference records, or the task modules do not load.
    """
    from grader.check.checking import CheckContext
    from grader.course import find_course
    from grader.refdata.weights import resolve_weights

    begin = time.monotonic()
    shown = say or (lambda message: None if quiet else print(message, file=sys.stderr))

    def emit(message: str) -> None:
        # Names, problems and messages come from submissions: no control characters reach
        # the terminal (or a caller's log).
        shown(printable(message))

    task_list = parse_tasks(tasks)
    if jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    out_dir = Path(out).resolve()
    found = find_submissions(submissions, out_dir)
    if not found or all(s.missing for s in found):
        raise UsageError("no submission found: " + "; ".join(s.problem or s.spec for s in found))
    # WeightsError, SandboxError and CourseError are UsageErrors (grader/errors.py).
    resolved = resolve_weights(weights)
    mode, warning = sandbox.resolve_mode(sandbox_mode)
    notes: list[str] = []
    if warning:
        emit(warning)
    _check_task_modules(task_list)
    settings = _variant_settings(variant, secret, notes)
    course_file = find_course(course)
    if course_file is not None:
        emit(course_file.describe())
    for note in notes:
        emit(note)
    resolved, reference = load_reference(resolved, settings, device, notes, task_list)
    cctx = CheckContext(weights=resolved)
    cctx.trusted_model()  # fails here, before any child starts, if the weights are unusable

    out_dir.mkdir(parents=True, exist_ok=True)
    todo, skipped, missing = _partition(found, out_dir, force,
                                        course_file.key if course_file else None, emit)
    work = Path(tempfile.mkdtemp(prefix="lab3-grade-"))
    work.chmod(0o711)  # the children traverse it to reach their own scratch, nothing else
    errors: list[tuple[str, str]] = []
    graded: list[str] = []
    interrupted = False
    try:
        python_reachable, gives = _identity_plan(mode, work, emit)
        batch = Batch(
            out=out_dir, work=work, tasks=task_list, weights=resolved,
            child_weights=prepare_weights(resolved, work, gives), reference=reference,
            cctx=cctx, settings=settings, mode=mode,
            limits=sandbox.Limits(memory_mb=memory), timeout=timeout,
            task_timeout=task_timeout, device=device,
            threads=max(1, cpu_count() // jobs), hidden=hidden_paths(out_dir, work, secret),
            python_reachable=python_reachable, notes=notes, course=course_file,
            run_top_level=run_top_level,
        )
        emit(f"grading {len(todo)} submission(s) with {jobs} worker(s); sandbox: {mode}; "
             f"{resolved.describe()}")
        interrupted = _run_pool(batch, todo, jobs, graded, errors, quiet, emit)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    entries = all_entries(out_dir)
    write_summary(out_dir, entries)
    table = score_table(entries)
    return BatchResult(entries=entries, graded=graded, skipped=skipped, missing=missing,
                       errors=errors, interrupted=interrupted, table=table,
                       seconds=time.monotonic() - begin)


def _partition(found: list[Submission], out_dir: Path, force: bool, course_key: str | None,
               emit: Callable[[str], None]) -> tuple[list, list[str], list[tuple[str, str]]]:
    """``(todo, skipped, missing)``: what to grade (``(index, submission)``; a missing one
    too, so that it still gets its row and results.json), the names already graded with
    the same source and content (unless ``force``), and the missing ones with the reason."""
    todo, skipped, missing = [], [], []
    for index, sub in enumerate(found):
        if sub.missing:
            # Still a row and a results.json (0 points, the reason): nothing passed is lost.
            missing.append((sub.name, sub.problem or "not found"))
            emit(f"not found: {sub.spec}: {sub.problem}")
            todo.append((index, sub))
        elif not force and _already_graded(out_dir / sub.name, sub, course_key):
            skipped.append(sub.name)
        else:
            todo.append((index, sub))
    if skipped:
        emit(f"{len(skipped)} submission(s) already graded in {out_dir} (use --force to regrade)")
    return todo, skipped, missing


def _identity_plan(mode: str, work: Path, emit: Callable[[str], None]) -> tuple[bool, bool]:
    """``(python_reachable, gives)``: whether an unprivileged uid can read the Python
    installation, and whether children run as a uid of their own (files are given to it).

    Raises:
        UsageError: children would get a uid of their own but ``chown`` fails in ``work``.
    """
    python_reachable = uids.is_root() and mode == "none" and uids.readable_by_others(
        [*uids.python_paths(), sandbox.PROJECT_ROOT / "fixtures"])
    drop = uids.identity_for(mode, uid=uids.uid_base(),
                                python_reachable=python_reachable).drop_at
    gives = drop != "none"
    if gives and (problem := uids.chown_works(work)):
        raise UsageError(problem)
    if uids.is_root() and not gives:
        emit("sandbox: the Python installation is not readable by an unprivileged uid and "
             "setpriv is missing, so submissions run as root (no process-count limit); "
             "use --sandbox bwrap")
    elif drop == "setpriv":
        emit("sandbox none: the Python installation is not readable by an unprivileged "
             "uid; children run as one with CAP_DAC_READ_SEARCH (they can read any file)")
    return python_reachable, gives


def _check_task_modules(tasks: Sequence[str]) -> None:
    from grader.tasks import task_module

    for task in tasks:
        try:
            task_module(task)
        except Exception as exc:
            raise GraderError(f"grader/tasks/{task}.py does not load: {type(exc).__name__}: "
                              f"{exc}") from exc


def _run_pool(batch: Batch, todo, jobs: int, graded: list[str],
              errors: list[tuple[str, str]], quiet: bool, emit) -> bool:
    """Grade ``todo`` on ``jobs`` threads; True when interrupted."""
    from tqdm import tqdm

    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)

    def grade(index: int, sub: Submission) -> dict[str, Any]:
        slot = slots.get()
        try:
            if batch.stop.is_set():
                raise Interrupted
            return SubmissionRun(batch, sub, index, slot).run()
        finally:
            slots.put(slot)

    bar = tqdm(total=len(todo), unit="submission", file=sys.stderr, dynamic_ncols=True,
               disable=quiet or not sys.stderr.isatty())
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lab3-grade")
    futures = {pool.submit(grade, index, sub): sub for index, sub in todo}
    interrupted = False
    try:
        for future in as_completed(futures):
            sub = futures[future]
            try:
                entry = future.result()
                graded.append(sub.name)
                line = (f"{sub.name}: {format_points(entry['score'])}/"
                        f"{format_points(entry['max_score'])}")
                if entry["problems"]:
                    line += f" ({'; '.join(entry['problems'])[:120]})"
            except Interrupted:
                continue
            except GraderError as exc:
                errors.append((sub.name, str(exc)))
                line = f"{sub.name}: NOT GRADED (grader problem): {exc}"
            except Exception as exc:  # noqa: BLE001 - a grader bug must not sink the batch
                errors.append((sub.name, f"{type(exc).__name__}: {exc}"))
                line = f"{sub.name}: NOT GRADED (grader error {type(exc).__name__}: {exc})"
            bar.update(1)
            if not quiet:
                bar.write(printable(line), file=sys.stderr) if not bar.disable else emit(line)
    except KeyboardInterrupt:
        interrupted = True
        batch.stop.set()
        with batch.lock:
            running = list(batch.running.values())
        for proc, identity in running:
            processes.kill_tree(proc, identity)
        emit("interrupted: finished submissions are kept; run the same command to resume")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        batch.shutdown_workers()
        bar.close()
    return interrupted
