"""Set-up for ``lab3 grade`` (:mod:`grader.run.batch`): what every submission's grading shares.

:class:`Batch` holds the trusted data (weights, the reference's records, one check context
per worker slot), the options, the sandbox's limits and the work folder, and hands out each
worker slot's warm worker and each child's identity. The helpers here build it:
:func:`hidden_paths` (what the sandbox must not show), :func:`load_reference` (the
reference's records, before any child starts), :func:`prepare_weights` (the checkpoint the
child reads), :func:`cpu_count` and :func:`copy_font_cache`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.run import sandbox, uids
from grader.run.warm_worker import ZYGOTE_CAPABILITIES, WarmWorker
from grader.settings import ProbeSettings
from grader.tasks import TASK_NAMES


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
    uids: uids.UidPool = field(default_factory=uids.UidPool)
    contexts: dict[int, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[int, tuple[subprocess.Popen, uids.Identity]] = field(default_factory=dict)
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
        copy_font_cache(home / "mpl")
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

    def new_identity(self) -> uids.Identity:
        uid = self.uids.take() if uids.is_root() else 0
        return uids.identity_for(self.mode, uid=uid, python_reachable=self.python_reachable)

    def sandbox_info(self, identity: uids.Identity) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "uid": identity.uid if identity.uid is not None else os.geteuid(),
            "timeout_s": self.timeout,
            "task_timeout_s": self.task_timeout,
            "memory_mb": self.limits.memory_mb,
            "processes": self.limits.processes,
        }


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def hidden_paths(out: Path, work: Path, secret: str | None = None) -> tuple[Path, ...]:
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


def load_reference(weights, settings: ProbeSettings, device: str, notes: list[str],
                    tasks: Sequence[str] = TASK_NAMES):
    from grader.refdata.reference_records import ReferenceUnavailable, reference_for

    try:
        return reference_for(weights, settings, device=device, tasks=tuple(tasks), notes=notes)
    except ReferenceUnavailable as exc:
        raise GraderError(f"{exc}; build them where reference/ is installed") from exc
    except RuntimeError as exc:  # the reference failed its own probes
        raise GraderError(str(exc)) from exc


def prepare_weights(weights, work: Path, give: bool) -> Path:
    """The checkpoint path the child reads: a world-readable copy when it runs as another uid."""
    if not give:
        return Path(weights.path).resolve()
    folder = work / "weights"
    folder.mkdir(mode=0o755)
    target = folder / Path(weights.path).name
    shutil.copyfile(weights.path, target)
    target.chmod(0o444)
    return target


def copy_font_cache(folder: Path) -> None:
    """Give the child matplotlib's font list, so it does not rebuild it (about a second)."""
    try:
        import matplotlib

        cache = Path(matplotlib.get_cachedir())
    except Exception:  # noqa: BLE001 - only a speed-up; the child rebuilds it if need be
        return
    for path in cache.glob("fontlist-*.json"):
        with contextlib.suppress(OSError):
            shutil.copyfile(path, folder / path.name)
