"""``lab3 grade``: grade many untrusted submissions, each in its own sandboxed child process.

The parent (this module) is trusted. Before any child starts it resolves the
weights, loads the reference's records once (probing ``reference/`` only when
no cache exists) and imports the checks. For each submission it then:

1. stages a private scratch copy: a folder is copied (regular files only: no
   symlinks, no devices, capped in count and size), a ``.zip`` is extracted here,
   in the parent, with :mod:`grader.probe.implementation`'s safe extractor (no absolute
   paths, no ``..``, no symlinks, capped) and its task modules' folder copied the
   same way. The parent never imports the submission;
2. runs a child (:mod:`grader.probe.child`, never a fork of this process) on it under
   :mod:`grader.run.sandbox` (resource limits, an unprivileged uid when run as root):
   with bubblewrap, forked from the worker slot's warm process
   (:mod:`grader.run.warm_worker`, :mod:`grader.run.warm_worker_process`), which imported torch once in
   the slot's sandbox; with ``--sandbox none``, a fresh process. It watches the
   child's progress markers: a task over its time budget, or the submission over
   its own, kills the child's whole process tree and that task records a timeout;
   a crash costs the running task only; a new child then probes the remaining tasks;
3. reads the records back itself (no symlinks, no special files, size caps, then
   :meth:`Record.load`'s validation), never unpickling anything, and runs the same
   checks as ``pytest --impl`` on them (:func:`grader.check.grading.grade_records`);
4. writes ``<out>/<name>/`` (feedback.html, report.json, log.txt, then
   results.json last, all atomically) and finally ``summary.csv``/``answers.csv``.

A submission whose ``results.json`` exists is skipped unless ``force``, so an
interrupted batch resumes where it stopped. ``jobs`` threads each manage one
child at a time (the heavy work is in the children; checks are light); with
bubblewrap each thread's slot keeps its warm process for the whole batch.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.check.results import format_points
from grader.errors import GraderError, Interrupted, UsageError
from grader.outputs.report import (
    ANSWERS_FILE,
    SUMMARY_FILE,
    all_entries,
    load_entry,
    score_table,
    write_submission,
    write_summary,
)
from grader.outputs.terminal import printable
from grader.probe.child import PROGRESS_FILE
from grader.probe.implementation import (
    BUILTIN_PACKAGES,
    MAX_ZIP_BYTES,
    MAX_ZIP_FILES,
    _extract_zip,
    _find_root,
    _has_modules,
    submitted_notebook,
)
from grader.probe.probing import ImplementationError
from grader.probe.records import MAX_JSON_BYTES, MAX_TENSOR_BYTES, Record, RecordError
from grader.run import cgroup, sandbox
from grader.run.sandbox import OutputCapture
from grader.run.warm_worker import ZYGOTE_CAPABILITIES, WarmWorker, WorkerError
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import TASK_NAMES

DEFAULT_TIMEOUT = 300.0
DEFAULT_TASK_TIMEOUT = 60.0
# The part of --task-timeout a top-level run may take (it runs inside Task 1's probe).
TOP_LEVEL_SHARE = 0.8
# RLIMIT_AS counts address space, not resident memory: importing torch, torchvision,
# captum and matplotlib already maps about 3.6 GB (resident: 0.8 GB), and probing the
# reference peaks at 4.2 GB mapped / 1.2 GB resident. 8 GB leaves room for an honest
# submission and still stops a runaway one.
DEFAULT_MEMORY_MB = 8192
# The child imports torch and loads the model before its first task: generous, since a
# slow start is the machine's fault, not the student's (it is still bounded by --timeout).
STARTUP_TIMEOUT = 120.0
# Once every task is done the child has this long to exit before it is killed (a
# student's leftover process or thread must not hold the batch up).
EXIT_GRACE = 5.0
POLL_SECONDS = 0.05
MEMORY_SAMPLE_SECONDS = 0.25
MAX_PROGRESS_BYTES = 64 * 1024
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".venv"})


# --------------------------------------------------------------------------- submissions


@dataclass
class Submission:
    """One SUBMISSION argument: where it is and what it is called in the outputs."""

    spec: str
    name: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded at all
    missing: bool = False
    digest: str = ""  # sha256 of the content (files' paths and bytes); "" when unreadable

    def source(self) -> dict[str, str]:
        """What report.json records of the source: a resumed run regrades unless both match."""
        return {"path": str(self.path) if self.path is not None else self.spec,
                "sha256": self.digest}


# Names the batch writes at the top of --out (case-insensitive on some file systems).
RESERVED_NAMES = frozenset(n.casefold() for n in (
    SUMMARY_FILE, ANSWERS_FILE, "summary.md", "grades", "readback"))


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name[:100] or "submission"


def find_submissions(specs: Sequence[str], out: Path | None = None) -> list[Submission]:
    """Resolve SUBMISSION arguments: folders, zips, notebooks, or the installed ``reference``
    / ``student_template`` packages.

    Each gets an output folder name that is a function of its source and never collides:
    the readable name, with a short hash of the source path added when sanitising changed
    it, when it is reserved (``summary.csv``, ...), or when another source in this batch or
    an earlier run in ``out`` has the same readable name. A source graded before in ``out``
    keeps its folder. A submission given as (or through) a symbolic link is refused: unzip
    and tar create links, and a link to a classmate's folder would grade the other work.
    """
    import importlib.util

    found: list[Submission] = []
    for spec in specs:
        path = Path(spec).expanduser()
        problem = None
        missing = False
        if spec in BUILTIN_PACKAGES and not _has_modules(path):
            found_spec = importlib.util.find_spec(spec)
            if found_spec is None or not found_spec.submodule_search_locations:
                path, problem, missing = None, f"{spec}: the package is not installed", True
            else:
                path = Path(next(iter(found_spec.submodule_search_locations))).resolve()
            base = spec
        elif not os.path.lexists(path):
            base, problem, missing = path.name or spec, (
                f"{spec}: no such folder or zip; pass a folder holding model.py, "
                "preprocessing.py, ... (a filled-in copy of student_template/) or a .zip of one"
            ), True
            path = None
        elif path.is_symlink():
            base = path.name
            problem = (f"{path.name} is a symbolic link (to {os.readlink(path)}); it was "
                       "refused so that no submission is graded as another's work: hand in "
                       "the folder or zip itself")
            path = path.absolute()
        elif path.is_dir():
            path = path.resolve()
            base = path.name
        else:
            base = path.stem
            if path.suffix.lower() not in (".zip", ".ipynb", ".py"):
                problem = (f"{path.name}: expected a folder, a .zip, a .ipynb or a .py, "
                           "got another kind of file")
            path = path.resolve()
        if path is not None and path.is_symlink():
            # Refused, but a row like any other: a rerun skips it while the link is unchanged.
            digest = hashlib.sha256(f"symlink:{os.readlink(path)}".encode()).hexdigest()
        else:
            digest = _content_digest(path) if path is not None else ""
        found.append(Submission(spec, base, path, problem, missing, digest))
    _assign_names(found, out)
    return found


def _assign_names(found: list[Submission], out: Path | None) -> None:
    """Give each submission its output folder name (see :func:`find_submissions`)."""
    earlier = _earlier_sources(out)
    readable = [_safe_name(s.name) for s in found]
    # Clashes among names that sanitising left alone; a changed name always gets a hash.
    counts: dict[str, int] = {}
    for sub, name in zip(found, readable, strict=True):
        if name == sub.name:
            counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    taken: set[str] = set()
    for sub, name in zip(found, readable, strict=True):
        source = sub.source()["path"]
        if source in earlier and earlier[source].casefold() not in taken:
            sub.name = earlier[source]
        elif (name != sub.name or counts.get(name.casefold(), 0) > 1
              or name.casefold() in RESERVED_NAMES
              or name in earlier.values()):
            sub.name = f"{name[:90]}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
        else:
            sub.name = name
        n = 2
        unique = sub.name
        while unique.casefold() in taken:  # only on a hash collision: keep names distinct
            unique, n = f"{sub.name}-{n}", n + 1
        sub.name = unique
        taken.add(unique.casefold())


def _earlier_sources(out: Path | None) -> dict[str, str]:
    """Source path -> folder name of the submissions an earlier run graded into ``out``."""
    if out is None or not out.is_dir():
        return {}
    sources = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink()):
        entry = load_entry(folder)
        source = entry.get("source") if entry else None
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            sources.setdefault(source["path"], folder.name)
    return sources


def _content_digest(path: Path) -> str:
    """sha256 over a file's bytes, or a folder's regular files (relative paths and bytes, no
    links followed), within the staging caps; "" when unreadable or over the caps."""
    h = hashlib.sha256()
    try:
        if path.is_file():
            if path.stat().st_size > MAX_ZIP_BYTES:
                return ""
            h.update(path.read_bytes())
            return h.hexdigest()
        count = total = 0
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                file = Path(root) / name
                info = os.lstat(file)
                if not stat.S_ISREG(info.st_mode):
                    continue
                count += 1
                total += info.st_size
                if count > MAX_ZIP_FILES or total > MAX_ZIP_BYTES:
                    return ""
                h.update(file.relative_to(path).as_posix().encode() + b"\0")
                h.update(file.read_bytes())
    except OSError:
        return ""
    return h.hexdigest()


def stage(sub: Submission, dest: Path, unpack: Path, *,
          should_stop: Callable[[], bool] | None = None) -> list[str]:
    """Copy ``sub``'s task modules' folder into ``dest`` (extracting a zip in ``unpack``; a
    notebook is turned into modules by parsing only, nothing of it runs in the parent).

    Returns:
        notes on what of a notebook could not be used (empty for folders and zips).

    Raises:
        ImplementationError: a bad or unsafe zip or notebook, no task modules, over the caps.
        grader.submission.notebook.ParseInterrupted: ``should_stop()`` became true while a notebook
            was read (Ctrl-C in a batch).
    """
    if sub.path is None:
        raise ImplementationError(f"{sub.spec}: nothing to grade")
    source = sub.path
    notebook = source if source.suffix.lower() in (".ipynb", ".py") else None
    if notebook is None:
        if source.is_file():
            source = _extract_zip(source, unpack)
        root = _find_root(source)
        _refuse_linked_root(source, root)
        # A folder or zip whose only submission file is a notebook (a Gradescope upload).
        notebook = submitted_notebook(root)
        if notebook is None:
            copy_regular_files(root, dest)
            return []
    from grader.submission.notebook import write_package

    # Kept from here, not read back from the scratch copy: the child can write there.
    notes = write_package(notebook, unpack / "notebook", should_stop=should_stop)
    copy_regular_files(unpack / "notebook", dest)
    return notes


def _refuse_linked_root(source: Path, root: Path) -> None:
    """The submission's root must be a real folder inside it: no symbolic link on the way.

    Raises:
        ImplementationError: a folder on the path from ``source`` to ``root`` is a link.
    """
    here = source
    for part in root.relative_to(source).parts:
        here = here / part
        if here.is_symlink():
            raise ImplementationError(
                f"{source.name}/{here.relative_to(source).as_posix()} is a symbolic link "
                f"(to {os.readlink(here)}); it was refused so that no submission is graded as "
                "another's work: hand in the folder itself, not a link to it")


def copy_regular_files(src: Path, dst: Path) -> None:
    """Copy regular files only (no symlinks, devices or caches), capped in count and bytes."""
    count = total = 0
    for root, dirs, files in os.walk(src, followlinks=False):
        here = Path(root)
        dirs[:] = [d for d in dirs
                   if d not in _SKIP_DIRS and not os.path.islink(os.path.join(root, d))]
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            info = os.lstat(here / name)
            if not stat.S_ISREG(info.st_mode):
                continue  # a symlink could point at files the child must not see
            count += 1
            total += info.st_size
            if count > MAX_ZIP_FILES or total > MAX_ZIP_BYTES:
                raise ImplementationError(
                    f"{src.name}: more than {MAX_ZIP_FILES} files or {MAX_ZIP_BYTES // 2**20} MB; "
                    "submit only the task modules and answers.md")
            shutil.copyfile(here / name, target / name)


# --------------------------------------------------------------------------- batch set-up


@dataclass
class Batch:
    """What every submission's grading shares: trusted data, options, the work folder."""

    out: Path
    work: Path
    tasks: tuple[str, ...]
    weights: Any  # ResolvedWeights
    child_weights: Path
    reference: Any  # ReferenceRecords
    cctx: Any  # CheckContext of worker slot 0; see check_context()
    settings: ProbeSettings
    mode: str
    limits: sandbox.Limits
    timeout: float
    task_timeout: float
    device: str
    threads: int
    hidden: tuple[Path, ...]
    python_reachable: bool
    notes: list[str] = field(default_factory=list)
    course: Any = None  # grader.course.Course: the course file's points, or None
    run_top_level: bool = False  # run handout-shaped submissions' top-level code (grader.probe.top_level)
    uids: sandbox.UidPool = field(default_factory=sandbox.UidPool)
    contexts: dict[int, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[int, tuple[subprocess.Popen, sandbox.Identity]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    workers: dict[int, WarmWorker] = field(default_factory=dict)

    warm_problem: str | None = None  # why warm workers were given up, if they were

    @property
    def warm(self) -> bool:
        """Children are forked from a warm worker per slot (bwrap), not started afresh."""
        return self.mode == "bwrap" and self.warm_problem is None

    def give_up_warm(self, problem: str) -> None:
        """Start every later child afresh (still in bwrap) and say why, once."""
        with self.lock:
            if self.warm_problem is not None:
                return
            self.warm_problem = problem
        print(f"lab3 grade: warm workers unavailable ({problem.splitlines()[0]}); starting a "
              "fresh process per child instead", file=sys.stderr)

    def worker(self, slot: int) -> WarmWorker:
        """Slot ``slot``'s warm worker (its process starts on first use)."""
        with self.lock:
            if slot not in self.workers:
                self.workers[slot] = WarmWorker(self.work / f"slot-{slot}", self.zygote_spec,
                                                self.zygote_limits())
            return self.workers[slot]

    def zygote_spec(self, folder: Path) -> sandbox.ChildSpec:
        home = folder / "zygote-home"
        (home / "mpl").mkdir(parents=True, exist_ok=True)
        _copy_font_cache(home / "mpl")
        home.chmod(0o755)
        env = {**self.base_env(), "HOME": str(home), "MPLCONFIGDIR": str(home / "mpl"),
               "TMPDIR": "/tmp"}
        # Its home is read-only in the sandbox: a child running as the same uid
        # (bubblewrap as an ordinary user) cannot leave anything there for the next one.
        return sandbox.ChildSpec(
            argv=sandbox.child_python([
                "--folder", str(folder), "--weights-kind", self.weights.kind,
                "--weights-path", str(self.child_weights),
                "--weights-sha256", self.weights.sha256], module="grader.run.warm_worker_process"),
            scratch=folder, readonly=(self.child_weights, home), hidden=self.hidden, env=env,
            cwd=folder, device=self.device, capabilities=ZYGOTE_CAPABILITIES,
        )

    def zygote_limits(self) -> sandbox.Limits:
        # The children set their own (lower or equal) limits; the zygote's hard limits
        # bound them where it runs unprivileged, so they match the children's.
        return sandbox.Limits(memory_mb=self.limits.memory_mb, processes=self.limits.processes,
                              file_size_mb=self.limits.file_size_mb,
                              open_files=self.limits.open_files, cpu_seconds=None,
                              output_bytes=self.limits.output_bytes)

    def base_env(self) -> dict[str, str]:
        """Environment shared by every child (the OpenMP settings are read when torch loads)."""
        threads = str(self.threads)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            # OpenMP threads that sleep instead of spinning at barriers: on a busy machine
            # (other workers, other users) spinning made a 2-thread child 6x slower than a
            # 1-thread one (80 s instead of 12 s per reference grade, measured); passive
            # waiting costs nothing measurable on an idle one.
            "OMP_WAIT_POLICY": "PASSIVE",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        }
        if self.device.startswith("cuda") and "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        return env

    def shutdown_workers(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()

    def check_context(self, slot: int):
        """The CheckContext of worker ``slot``: one trusted model per worker thread.

        Checks may hook the trusted model (``grader.probe.probing.mean_activation`` raises
        out of a forward hook), so two threads must never share one: a shared model
        let one submission's check stop another's forward pass (seen at -j 2).
        """
        from grader.check.checking import CheckContext

        with self.lock:
            if slot == 0:
                return self.cctx
            if slot not in self.contexts:
                self.contexts[slot] = CheckContext(weights=self.cctx.weights)
            return self.contexts[slot]

    def new_identity(self) -> sandbox.Identity:
        uid = self.uids.take() if sandbox.is_root() else 0
        return sandbox.identity_for(self.mode, uid=uid, python_reachable=self.python_reachable)

    def sandbox_info(self, identity: sandbox.Identity) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "uid": identity.uid if identity.uid is not None else os.geteuid(),
            "timeout_s": self.timeout,
            "task_timeout_s": self.task_timeout,
            "memory_mb": self.limits.memory_mb,
            "processes": self.limits.processes,
        }


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _hidden_paths(out: Path, work: Path, secret: str | None = None) -> tuple[Path, ...]:
    """What the sandbox must not show: the reference, its records, caches, outputs, the
    course secret (whose variant's inputs a submission must not be able to derive)."""
    import importlib.util

    from grader.refdata.reference_records import SHIPPED_DIR
    from grader.refdata.weights import cache_dir
    from grader.run.variant import DEFAULT_SECRET_PATH, secret_path

    hidden = [sandbox.PROJECT_ROOT / "reference", SHIPPED_DIR, cache_dir(), out,
              work / "readback", sandbox.PROJECT_ROOT / "fixtures" / "submissions",
              sandbox.PROJECT_ROOT / "tests", DEFAULT_SECRET_PATH.parent, secret_path(secret)]
    spec = importlib.util.find_spec("reference")
    if spec is not None and spec.submodule_search_locations:
        hidden += [Path(p) for p in spec.submodule_search_locations]
    return tuple(hidden)


def _load_reference(weights, settings: ProbeSettings, device: str, notes: list[str],
                    tasks: Sequence[str] = TASK_NAMES):
    from grader.refdata.reference_records import ReferenceUnavailable, reference_for

    try:
        return reference_for(weights, settings, device=device, tasks=tuple(tasks), notes=notes)
    except ReferenceUnavailable as exc:
        raise GraderError(f"{exc}; build them where reference/ is installed") from exc
    except RuntimeError as exc:  # the reference failed its own probes
        raise GraderError(str(exc)) from exc


def _prepare_weights(weights, work: Path, give: bool) -> Path:
    """The checkpoint path the child reads: a world-readable copy when it runs as another uid."""
    if not give:
        return Path(weights.path).resolve()
    folder = work / "weights"
    folder.mkdir(mode=0o755)
    target = folder / Path(weights.path).name
    shutil.copyfile(weights.path, target)
    target.chmod(0o444)
    return target


# --------------------------------------------------------------------------- one child


@dataclass
class Attempt:
    """What one child did: its exit, the tasks it finished, where it stopped and why."""

    returncode: int | None
    done: list[str]
    current: str | None
    stopped: str | None  # "task-timeout", "submission-timeout", "startup-timeout", "memory"
    output: str
    startup_s: float | None = None  # from start to the first task (imports, model)
    seconds: float = 0.0
    # bytes: the submission's peak: its memory cgroup's where the machine allows one, else
    # the sampled sum of all processes of its uid (sandbox.uid_memory) where it has a uid of
    # its own, else the kernel's ru_maxrss of the child
    peak_memory: int | None = None


class FreshChild:
    """A child started afresh (``--sandbox none``): its process, output reader, memory and,
    where the machine allows one, the memory cgroup all its processes run in."""

    def __init__(self, proc: subprocess.Popen, identity: sandbox.Identity, cap: int,
                 memory_group: cgroup.MemoryCgroup | None = None) -> None:
        self.proc, self.identity = proc, identity
        self.memory_group = memory_group
        self.reader = OutputCapture(proc.stdout, cap)
        self.reader.start()
        self.peak_memory: int | None = None
        self.out_of_memory = False

    def poll(self) -> tuple[int | None, int | None]:
        returncode, peak = sandbox.poll(self.proc)
        if peak is not None:
            self.peak_memory = peak
        return returncode, self.peak_memory

    def stop(self) -> tuple[int | None, int | None]:
        """Kill the whole tree, reap the child; ``(exit code or None, peak memory)``: the
        cgroup's peak (every process of the submission) where there is one."""
        sandbox.kill_tree(self.proc, self.identity)
        if self.proc.returncode is None:
            _, peak = sandbox.wait(self.proc, timeout=10)
            self.peak_memory = peak if peak is not None else self.peak_memory
        self.reader.join(timeout=5)
        group, self.memory_group = self.memory_group, None
        if group is not None:
            self.out_of_memory = group.out_of_memory()
            self.peak_memory = group.peak() or self.peak_memory
            group.remove()
        return self.proc.returncode, self.peak_memory

    def output(self, cap: int) -> str:
        return self.reader.text()


def _read_capped(dir_fd: int, name: str, cap: int) -> bytes | None:
    """A regular file of the child's folder, read without following links; None if absent.

    Raises:
        RecordError: not a regular file, or over ``cap`` bytes.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"{name} is not a regular file ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{name} is not a regular file")
        if info.st_size > cap:
            raise RecordError(f"{name} is {info.st_size} bytes, over the cap of {cap}")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise RecordError(f"{name} grew over the cap of {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_child_record(records: Path, readback: Path, task: str) -> Record:
    """The child's record of ``task``: copied from ``records`` into the parent's own
    ``readback`` folder without following links (no symlink to the reference's records,
    no FIFO that blocks, size caps), then validated by :meth:`Record.load`. Anything
    wrong becomes a ``record_error`` record for that task only."""
    for suffix in (".json", ".safetensors"):
        (readback / f"{task}{suffix}").unlink(missing_ok=True)
    try:
        fd = os.open(records, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for suffix, cap in ((".json", MAX_JSON_BYTES), (".safetensors", MAX_TENSOR_BYTES)):
                data = _read_capped(fd, f"{task}{suffix}", cap)
                if data is not None:
                    (readback / f"{task}{suffix}").write_bytes(data)
        finally:
            os.close(fd)
        return Record.load(readback, task)
    except (RecordError, OSError) as exc:
        return Record(task=task, data={"record_error": str(exc)[:2000]})


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
        _copy_font_cache(self.scratch / "home" / "mpl")

    def give_folders(self) -> None:
        """Hand the writable folders to a fresh identity (one per child)."""
        self.identity = self.batch.new_identity()
        for name in ("submission", "records", "home", "probe", "output"):
            sandbox.give_to(self.scratch / name, self.identity)

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
        if self.identity.uid is None and self.batch.mode == "none" and not sandbox.is_root():
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
                if child.memory_group is not None and child.memory_group.out_of_memory():
                    stopped = "memory"  # the kernel killed one of its processes: stop them all
                    break
                if watch and now >= next_sample:
                    used = sandbox.uid_memory(self.identity.uid)
                    submission_peak = max(submission_peak, used)
                    next_sample = now + MEMORY_SAMPLE_SECONDS
                    if used > b.limits.memory_mb * 2**20:
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
                sandbox.kill_uid(self.identity.uid)
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
            raw = _read_capped(fd, PROGRESS_FILE, MAX_PROGRESS_BYTES) or b""
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
            self.logs.append(f"--- child for {', '.join(remaining)}: {_describe_exit(run)} "
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
                    f"({_describe_exit(run)}); its output ends with:\n{_tail(run.output, 1500)}")
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
                self.fail(task, "probe_error", _crash_message(run, self.batch.limits))

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
        from grader.submission.notebook import LOCATIONS_FILE, NotebookLocations, ParseInterrupted

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
                problem = _archive_fault(sub, exc)
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
                sandbox.kill_uid(self.identity.uid)
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


# A zip member the file system refuses (a name over 255 bytes, bytes that are no name, a file
# where the zip also has a folder): the archive's fault, not the grader's.
_ARCHIVE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTDIR,
                             errno.EISDIR, errno.EEXIST})


def _archive_fault(sub: Submission, exc: BaseException) -> str | None:
    """The row's problem when unpacking ``sub``'s zip raised ``exc`` because of the zip
    (zipfile's unsupported methods, bad data, members the file system refuses); None when
    ``exc`` is not the archive's fault (the grader's own disk, say)."""
    if sub.path is None or sub.path.suffix.lower() != ".zip":
        return None
    if isinstance(exc, OSError):
        if exc.errno not in _ARCHIVE_ERRNOS:
            return None
        member = Path(str(exc.filename)).name if exc.filename else ""
        detail = f"{exc.strerror}: {member[:60]}{'...' if len(member) > 60 else ''}"
    else:
        detail = f"{type(exc).__name__}: {exc}"[:300]
    return (f"{sub.path.name} could not be unpacked ({detail}); zip the folder again, with "
            "ordinary file names and the usual compression")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _tail(text: str, n: int) -> str:
    return text[-n:].strip()


def _describe_exit(run: Attempt) -> str:
    if run.stopped:
        return run.stopped.replace("-", " ")
    if run.returncode is None:
        return "killed after finishing"
    return sandbox.describe_signal(run.returncode)


def _crash_message(run: Attempt, limits: sandbox.Limits) -> str:
    code = run.returncode if run.returncode is not None else 0
    hint = {
        -9: f" (out of memory? the limit is {limits.memory_mb} MB)",
        -11: " (a segmentation fault in native code)",
        -6: " (aborted, often a failed memory allocation)",
        -24: " (the CPU time limit)",
        -25: f" (a file over the {limits.file_size_mb} MB limit was written)",
    }.get(code, "")
    if code >= 0:
        hint = "; does your code call sys.exit() or os._exit(), or kill its own process?"
    last = [line for line in run.output.strip().splitlines() if line.strip()][-3:]
    tail = f" Last output: {' | '.join(last)[-400:]}" if last else ""
    return (f"the process running your code ended during this task "
            f"({sandbox.describe_signal(code)}){hint}.{tail}")


def _user_tasks(uid: int) -> int:
    count = 0
    for pid in sandbox._pids():
        if sandbox._uid_state(pid)[0] == uid:
            with contextlib.suppress(OSError):
                count += len(os.listdir(f"/proc/{pid}/task"))
    return count


def _copy_font_cache(folder: Path) -> None:
    """Give the child matplotlib's font list, so it does not rebuild it (about a second)."""
    try:
        import matplotlib

        cache = Path(matplotlib.get_cachedir())
    except Exception:  # noqa: BLE001 - only a speed-up; the child rebuilds it if need be
        return
    for path in cache.glob("fontlist-*.json"):
        with contextlib.suppress(OSError):
            shutil.copyfile(path, folder / path.name)


# --------------------------------------------------------------------------- the batch


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
    from grader.refdata.weights import WeightsError, resolve_weights

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
    try:
        resolved = resolve_weights(weights)
    except WeightsError as exc:
        raise UsageError(str(exc)) from exc
    try:
        mode, warning = sandbox.resolve_mode(sandbox_mode)
    except sandbox.SandboxError as exc:
        raise UsageError(str(exc)) from exc
    notes: list[str] = []
    if warning:
        emit(warning)
    _check_task_modules(task_list)
    settings = _variant_settings(variant, secret, notes)
    from grader.course import CourseError, find_course

    try:
        course_file = find_course(course)
    except CourseError as exc:
        raise UsageError(str(exc)) from exc
    if course_file is not None:
        emit(course_file.describe())
    for note in notes:
        emit(note)
    resolved, reference = _load_reference(resolved, settings, device, notes, task_list)
    from grader.check.checking import CheckContext

    cctx = CheckContext(weights=resolved)
    cctx.trusted_model()  # fails here, before any child starts, if the weights are unusable

    out_dir.mkdir(parents=True, exist_ok=True)
    todo, skipped, missing = [], [], []
    for index, sub in enumerate(found):
        if sub.missing:
            # Still a row and a results.json (0 points, the reason): nothing passed is lost.
            missing.append((sub.name, sub.problem or "not found"))
            emit(f"not found: {sub.spec}: {sub.problem}")
            todo.append((index, sub))
        elif not force and _already_graded(out_dir / sub.name, sub,
                                           course_file.key if course_file else None):
            skipped.append(sub.name)
        else:
            todo.append((index, sub))
    if skipped:
        emit(f"{len(skipped)} submission(s) already graded in {out_dir} (use --force to regrade)")

    work = Path(tempfile.mkdtemp(prefix="lab3-grade-"))
    work.chmod(0o711)  # the children traverse it to reach their own scratch, nothing else
    errors: list[tuple[str, str]] = []
    graded: list[str] = []
    interrupted = False
    try:
        python_reachable = sandbox.is_root() and mode == "none" and sandbox.readable_by_others(
            [*sandbox.python_paths(), sandbox.PROJECT_ROOT / "fixtures"])
        drop = sandbox.identity_for(mode, uid=sandbox.uid_base(),
                                    python_reachable=python_reachable).drop_at
        gives = drop != "none"
        if gives and (problem := sandbox.chown_works(work)):
            raise UsageError(problem)
        if sandbox.is_root() and not gives:
            emit("sandbox: the Python installation is not readable by an unprivileged uid and "
                 "setpriv is missing, so submissions run as root (no process-count limit); "
                 "use --sandbox bwrap")
        elif drop == "setpriv":
            emit("sandbox none: the Python installation is not readable by an unprivileged "
                 "uid; children run as one with CAP_DAC_READ_SEARCH (they can read any file)")
        batch = Batch(
            out=out_dir, work=work, tasks=task_list, weights=resolved,
            child_weights=_prepare_weights(resolved, work, gives), reference=reference,
            cctx=cctx, settings=settings, mode=mode,
            limits=sandbox.Limits(memory_mb=memory), timeout=timeout,
            task_timeout=task_timeout, device=device,
            threads=max(1, _cpu_count() // jobs), hidden=_hidden_paths(out_dir, work, secret),
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
            sandbox.kill_tree(proc, identity)
        emit("interrupted: finished submissions are kept; run the same command to resume")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        batch.shutdown_workers()
        bar.close()
    return interrupted
