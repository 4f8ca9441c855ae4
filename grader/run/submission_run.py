"""One submission of ``lab3 grade`` (:mod:`grader.run.batch`): :class:`SubmissionRun`.

It stages the submission (:mod:`grader.run.staging`), probes its tasks in as many children
as crashes and timeouts need (forked from the slot's warm worker, else a
:class:`grader.run.attempt.FreshChild`), watching each child's progress markers, time and
memory; takes each finished task's record out of the child's reach as soon as it is done
(:mod:`grader.run.readback`); grades the records with the same checks as ``pytest --impl``
and writes ``<out>/<name>/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import Any

from grader.errors import GraderError, Interrupted
from grader.outputs.report import write_submission
from grader.probe.child import PROGRESS_FILE
from grader.probe.probing import ImplementationError
from grader.probe.records import Record, RecordError
from grader.run import cgroup, processes, sandbox, uids
from grader.run.attempt import Attempt, FreshChild, crash_message, describe_exit
from grader.run.batch_setup import Batch, copy_font_cache
from grader.run.readback import read_capped, read_child_record
from grader.run.staging import Submission, archive_fault, stage
from grader.run.warm_worker import WorkerError

# The part of --task-timeout a top-level run may take (it runs inside Task 1's probe).
TOP_LEVEL_SHARE = 0.8
# The child imports torch and loads the model before its first task: generous, since a
# slow start is the machine's fault, not the student's (it is still bounded by --timeout).
STARTUP_TIMEOUT = 120.0
# Once every task is done the child has this long to exit before it is killed (a
# student's leftover process or thread must not hold the batch up).
EXIT_GRACE = 5.0
POLL_SECONDS = 0.05
MEMORY_SAMPLE_SECONDS = 0.25
MAX_PROGRESS_BYTES = 64 * 1024


class SubmissionRun:
    """Probe one submission's tasks in as many children as crashes and timeouts need."""

    def __init__(self, batch: Batch, sub: Submission, index: int, slot: int) -> None:
        self.batch, self.sub, self.slot = batch, sub, slot
        # With a warm worker the scratch lies in its slot's folder, the only one its
        # sandbox shows.
        parent = batch.work / f"slot-{slot}" if batch.warm else batch.work
        parent.mkdir(mode=0o711, exist_ok=True)
        self.scratch = parent / f"{index:05d}-{sub.name}"
        self.readback = batch.work / "readback" / f"{index:05d}"
        self.identity = batch.new_identity()
        self.records: dict[str, Record | None] = {}
        self.problems: list[str] = []
        self.notebook_notes: list[str] = []
        self.source_kind = "notebook"  # "script" when the notes speak of a .py's lines
        self.logs: list[str] = []
        self.children = 0
        self.peak_memory: int | None = None  # bytes, the largest of its children's

    # -- folders

    def make_folders(self) -> None:
        self.scratch.mkdir(mode=0o711)
        self.readback.mkdir(mode=0o700, parents=True)
        for name in ("records", "home", "probe", "output"):
            (self.scratch / name).mkdir()
        for name in ("home/mpl", "home/tmp", "home/.cache"):
            (self.scratch / name).mkdir()
        copy_font_cache(self.scratch / "home" / "mpl")

    def give_folders(self) -> None:
        """Hand the writable folders to a fresh identity (one per child)."""
        self.identity = self.batch.new_identity()
        for name in ("submission", "records", "home", "probe", "output"):
            uids.give_to(self.scratch / name, self.identity)

    # -- the child

    def child_args(self, tasks: list[str]) -> list[str]:
        b, s = self.batch, self.scratch
        args = [
            "--impl", str(s / "submission"), "--records", str(s / "records"),
            "--scratch", str(s / "probe"), "--tasks", ",".join(tasks),
            "--weights-kind", b.weights.kind, "--weights-path", str(b.child_weights),
            "--weights-sha256", b.weights.sha256,
            "--settings", _json(b.settings.to_dict()), "--device", b.device,
            "--threads", str(b.threads), "--cwd", str(s / "submission"), "--handoff",
        ]
        if self.identity.drop_at == "child":
            args += ["--drop-uid", str(self.identity.uid), "--drop-gid", str(self.identity.gid)]
        if b.run_top_level:
            # Within the task that starts it (Task 1): what the run made by then is kept.
            args += ["--run-top-level", f"{TOP_LEVEL_SHARE * b.task_timeout:g}"]
        return args

    def child_env(self) -> dict[str, str]:
        b, home = self.batch, self.scratch / "home"
        return {
            **b.base_env(),
            "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"), "MPLCONFIGDIR": str(home / "mpl"),
            "LAB3_CACHE_DIR": str(home / "lab3-cache"),
            "TMPDIR": "/tmp" if b.mode == "bwrap" else str(home / "tmp"),
        }

    def child_spec(self, tasks: list[str]) -> sandbox.ChildSpec:
        b, s = self.batch, self.scratch
        return sandbox.ChildSpec(
            argv=sandbox.child_python(self.child_args(tasks)), scratch=s,
            readonly=(b.child_weights,), hidden=b.hidden, env=self.child_env(),
            cwd=s / "submission", device=b.device,
        )

    def limits(self) -> sandbox.Limits:
        limits = self.batch.limits
        cpu = int((self.batch.timeout + 60) * max(1, self.batch.threads) + 60)
        processes = limits.processes
        if self.identity.uid is None and self.batch.mode == "none" and not uids.is_root():
            # RLIMIT_NPROC counts every process of the user: leave room for the user's own.
            processes += _user_tasks(os.getuid())
        return sandbox.Limits(memory_mb=limits.memory_mb, processes=processes,
                              file_size_mb=limits.file_size_mb, open_files=limits.open_files,
                              cpu_seconds=cpu, output_bytes=limits.output_bytes)

    def start_child(self, tasks: list[str]):
        """A child probing ``tasks``: forked from the slot's warm worker, or a fresh process
        (``--sandbox none``, or once a warm worker failed to start: the batch goes on)."""
        b = self.batch
        child = None
        if b.warm:
            worker = b.worker(self.slot)
            log = self.scratch / "output" / f"child-{self.children + 1}.log"
            try:
                child = worker.fork([*self.child_args(tasks), "--log", str(log)],
                                    self.child_env(), self.limits(), log)
                running = (worker.proc, self.identity)
            except WorkerError as exc:
                # The grader's problem, not the student's: grade on without warm workers.
                self.logs.append(f"--- warm worker: {exc} ---")
                b.give_up_warm(str(exc))
        if child is None:
            group = cgroup.MemoryCgroup.create(b.limits.memory_mb * 2**20, f"slot{self.slot}")
            try:
                proc = sandbox.start(self.child_spec(tasks), mode=b.mode, limits=self.limits(),
                                     identity=self.identity, memory_group=group)
            except BaseException:
                if group is not None:
                    group.remove()
                raise
            child = FreshChild(proc, self.identity, b.limits.output_bytes, group)
            running = (proc, self.identity)
        with b.lock:
            b.running[self.slot] = running
        return child

    def attempt(self, tasks: list[str], deadline: float) -> Attempt:
        """Run one child on ``tasks`` until it exits, finishes, or overruns a time limit."""
        b = self.batch
        progress = self.scratch / "records" / PROGRESS_FILE
        if progress.is_dir() and not progress.is_symlink():
            shutil.rmtree(progress)  # left by the previous child's student code
        progress.unlink(missing_ok=True)
        self.give_folders()
        child = self.start_child(tasks)
        started = time.monotonic()
        current, current_since, done, stopped = None, started, [], None
        all_done_at = first_task_at = None
        # --memory holds for the whole submission, all its processes together: by the
        # kernel in a memory cgroup where the machine allows one, else by sampling the
        # processes of the submission's own uid.
        watch = self.identity.dedicated and child.memory_group is None
        submission_peak, next_sample = 0, started
        try:
            while True:
                returncode, _ = child.poll()
                events = self.progress(tasks)
                done = [t for kind, t in events if kind == "done"]
                self.take_records(done)
                starts = [t for kind, t in events if kind == "start"]
                running = starts[-1] if starts and starts[-1] not in done else None
                if running != current:
                    current, current_since = running, time.monotonic()
                if starts and first_task_at is None:
                    first_task_at = time.monotonic()
                if returncode is not None:
                    break
                now = time.monotonic()
                if b.stop.is_set():
                    raise Interrupted
                if now >= next_sample:
                    next_sample = now + MEMORY_SAMPLE_SECONDS
                    if child.memory_group is not None:
                        # The kernel killed one of its processes: stop them all.
                        over = child.memory_group.out_of_memory()
                    elif watch:
                        used = processes.uid_memory(self.identity.uid)
                        submission_peak = max(submission_peak, used)
                        over = used > b.limits.memory_mb * 2**20
                    else:
                        over = False
                    if over:
                        stopped = "memory"
                        break
                if now >= deadline:
                    stopped = "submission-timeout"
                elif current is not None and now - current_since > b.task_timeout:
                    stopped = "task-timeout"
                elif current is None and not starts and now - started > STARTUP_TIMEOUT:
                    stopped = "startup-timeout"
                elif set(tasks) <= set(done):
                    all_done_at = all_done_at or now
                    if now - all_done_at > EXIT_GRACE:
                        break  # finished; a leftover process of the student holds it open
                if stopped:
                    break
                time.sleep(POLL_SECONDS)
        finally:
            returncode, peak = child.stop()
            if child.out_of_memory and stopped is None:
                stopped = "memory"
            if b.warm and self.identity.dedicated:
                processes.kill_uid(self.identity.uid)
            with b.lock:
                b.running.pop(self.slot, None)
        events = self.progress(tasks)
        done = [t for kind, t in events if kind == "done"]
        return Attempt(returncode, done, current if current not in done else None,
                       stopped, child.output(b.limits.output_bytes),
                       startup_s=None if first_task_at is None else first_task_at - started,
                       seconds=time.monotonic() - started,
                       peak_memory=(submission_peak or peak) if watch else peak)

    def progress(self, tasks: list[str]) -> list[tuple[str, str]]:
        """The child's progress markers for ``tasks``: [("start"|"done", task), ...]."""
        try:
            fd = os.open(self.scratch / "records", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return []
        try:
            raw = read_capped(fd, PROGRESS_FILE, MAX_PROGRESS_BYTES) or b""
        except RecordError:
            raw = b""
        finally:
            os.close(fd)
        events = []
        for line in raw.decode("utf-8", "replace").splitlines():
            kind, _, task = line.partition(" ")
            if kind in ("start", "done") and task in tasks:
                events.append((kind, task))
        return events

    def read_record(self, task: str) -> Record:
        return read_child_record(self.scratch / "records", self.readback, task)

    def take_records(self, done: list[str]) -> None:
        """Take each finished task's record out of the child's reach as soon as it is done.

        The record is read into the parent, then the child's copy deleted; the child
        (``--handoff``) waits for that deletion before it runs the next task, so no later
        student code can rewrite a finished task's record.
        """
        for task in done:
            if task in self.records:
                continue
            self.records[task] = self.read_record(task)
            try:
                fd = os.open(self.scratch / "records", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                for suffix in (".json", ".safetensors"):
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(f"{task}{suffix}", dir_fd=fd)
            finally:
                os.close(fd)

    # -- the whole submission

    def probe_all(self, tasks: list[str], deadline: float) -> None:
        """Probe ``tasks`` in children until each has a record or a failure."""
        remaining = list(tasks)
        startup_failures = 0
        while remaining:
            if time.monotonic() >= deadline:
                for task in remaining:
                    self.fail(task, "timeout", f"not run: the submission's time limit of "
                              f"{self.batch.timeout:g} s was used up by the tasks before it")
                return
            run = self.attempt(remaining, deadline)
            self.children += 1
            if run.peak_memory is not None:
                self.peak_memory = max(self.peak_memory or 0, run.peak_memory)
            startup = "" if run.startup_s is None else f", first task after {run.startup_s:.1f} s"
            memory = "" if run.peak_memory is None else \
                f", peak memory {run.peak_memory / 2**20:.0f} MiB"
            self.logs.append(f"--- child for {', '.join(remaining)}: {describe_exit(run)} "
                             f"after {run.seconds:.1f} s{startup}{memory} ---\n{run.output}")
            self.take_records([t for t in run.done if t in remaining])
            for task in run.done:
                if task in remaining:
                    remaining.remove(task)
            if not remaining:
                return
            if run.current is None:
                if run.done:
                    continue  # it died between two tasks: what it finished counts, go on
                # The child stopped before starting a task: the grader's side (imports,
                # weights, limits), not the student's code. Try once more, then give up.
                startup_failures += 1
                if startup_failures < 2 and run.stopped is None:
                    continue
                raise GraderError(
                    f"{self.sub.name}: the grader's child process failed before probing "
                    f"({describe_exit(run)}); its output ends with:\n{_tail(run.output, 1500)}")
            task = run.current
            remaining.remove(task)
            if run.stopped in ("task-timeout", "submission-timeout") and self.keep_partial(
                    task, run.stopped):
                continue
            if run.stopped == "task-timeout":
                self.fail(task, "timeout", f"the task ran over its time limit of "
                          f"{self.batch.task_timeout:g} s (an infinite loop, or far more work than "
                          "the handout's settings need?)")
            elif run.stopped == "memory":
                self.fail(task, "probe_error", f"your code used more than the {self.batch.limits.memory_mb} "
                          "MB memory limit (all its processes together) during this task and "
                          "was stopped; free what you no longer need, or start fewer processes")
            elif run.stopped == "submission-timeout":
                self.fail(task, "timeout", f"the submission's time limit of "
                          f"{self.batch.timeout:g} s ran out during this task")
            else:
                self.fail(task, "probe_error", crash_message(run, self.batch.limits))

    def keep_partial(self, task: str, stopped: str = "task-timeout") -> bool:
        """After a task or submission timeout (``stopped``): keep what the task recorded
        before the call that overran.

        Returns whether a usable partial record was found (the child saves one before each
        student call, with that call marked as cut).
        """
        from grader.probe.child import PARTIAL_DIR

        partial_back = self.readback / PARTIAL_DIR
        partial_back.mkdir(exist_ok=True)
        record = read_child_record(self.scratch / "records" / PARTIAL_DIR, partial_back, task)
        if "record_error" in record.data or not isinstance(record.data.get("calls"), dict):
            return False
        cut = [n for n, c in record.data["calls"].items()
               if isinstance(c, dict) and c.get("timeout") and c.get("seconds") is None]
        for name in cut:
            record.data["calls"][name]["message"] = (
                f"this call was cut by the task's time limit of {self.batch.task_timeout:g} s"
                if stopped == "task-timeout" else f"the submission's time limit of "
                f"{self.batch.timeout:g} s ran out during this task, in this call")
        record.data["cut_calls"] = cut
        self.records[task] = record
        self.problems.append(f"{task}: timed out")
        return True

    def fail(self, task: str, kind: str, message: str) -> None:
        self.records[task] = Record(task=task, data={kind: message})
        label = "timed out" if kind == "timeout" else "crashed"
        self.problems.append(f"{task}: {label}")

    def run(self) -> dict[str, Any]:
        """Grade the submission; write its outputs; return its summary entry."""
        from grader.check.grading import grade_records
        from grader.errors import ParseInterrupted
        from grader.submission.locations import LOCATIONS_FILE, NotebookLocations

        b, sub = self.batch, self.sub
        start = time.monotonic()
        status = "graded"
        try:
            self.make_folders()
            if sub.problem is not None:
                raise ImplementationError(sub.problem)
            try:
                self.notebook_notes = stage(sub, self.scratch / "submission",
                                            self.readback / "unpacked",
                                            should_stop=b.stop.is_set)
            except ParseInterrupted:
                raise Interrupted from None
            except (OSError, NotImplementedError, RuntimeError, EOFError, ValueError) as exc:
                problem = archive_fault(sub, exc)
                if problem is None:
                    raise
                raise ImplementationError(problem) from exc
            # Read before any child runs: the staged folder is the child's to write later.
            staged = NotebookLocations.read(self.scratch / "submission" / LOCATIONS_FILE)
            if staged is not None and staged.unit == "line":
                self.source_kind = "script"
            self.probe_all(list(b.tasks), start + b.timeout)
        except ImplementationError as exc:
            status = "not_found" if sub.missing else "ungradable"
            self.records = {t: Record(task=t, data={"import_error": str(exc)}) for t in b.tasks}
            self.problems = [str(exc)]
        finally:
            if self.identity.dedicated:
                processes.kill_uid(self.identity.uid)
            shutil.rmtree(self.scratch, ignore_errors=True)
        report = grade_records(
            sub.name, self.records, b.reference.records, b.check_context(self.slot),
            settings=b.settings.to_dict(), reference_description=b.reference.describe(),
            execution_time=time.monotonic() - start, tasks=b.tasks, course=b.course,
            notes=[*b.notes, *(f"{self.source_kind}: {n}" for n in self.notebook_notes),
                   *(f"problem: {p}" for p in self.problems)],
        )
        try:
            return write_submission(
                b.out / sub.name, report, status=status, problems=self.problems,
                student=self.records, reference=b.reference.records,
                log="\n".join(self.logs), extra={
                    "source": sub.source(),
                    "course": b.course.key if b.course else None,
                    "sandbox": b.sandbox_info(self.identity),
                    "resources": {
                        "children": self.children,
                        "peak_memory_mib": None if self.peak_memory is None
                        else round(self.peak_memory / 2**20, 1),
                    },
                })
        finally:
            shutil.rmtree(self.readback, ignore_errors=True)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _tail(text: str, n: int) -> str:
    return text[-n:].strip()


def _user_tasks(uid: int) -> int:
    count = 0
    for pid in processes.live_pids():
        if processes.uid_state(pid)[0] == uid:
            with contextlib.suppress(OSError):
                count += len(os.listdir(f"/proc/{pid}/task"))
    return count
