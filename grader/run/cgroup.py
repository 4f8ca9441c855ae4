"""A memory cgroup for one submission slot, so the kernel holds ``--memory`` for all the
processes of a submission together.

Per-process ``RLIMIT_AS`` lets a submission of N processes use N times the limit, and the
watchdog in :mod:`grader.run.submission_run` only samples. Where this machine lets the grader create a
memory cgroup (root, and a cgroup v1 memory controller or cgroup v2 with ``memory``
enabled below our own group), each child process joins one between fork and exec
(:func:`grader.run.sandbox.preexec`), every descendant inherits it, and the kernel's OOM killer
acts inside it when the submission's pages pass the limit. Its peak is what the submission
was charged: resident pages and the page cache it caused.

Elsewhere :meth:`MemoryCgroup.create` returns None and the batch keeps the watchdog.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

V1_MOUNT = Path("/sys/fs/cgroup/memory")
V2_MOUNT = Path("/sys/fs/cgroup")
_names = itertools.count()
_sweeps = itertools.count()


def own_group() -> tuple[int, Path] | None:
    """``(cgroup version, folder)`` of this process's memory cgroup, or None when there is
    no memory controller we can see."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and V1_MOUNT.is_dir():
            return 1, _existing(V1_MOUNT, path)
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "" and (V2_MOUNT / "cgroup.controllers").is_file():
            return 2, _existing(V2_MOUNT, path)
    return None


def _existing(mount: Path, path: str) -> Path:
    # Inside a cgroup namespace the mount's root is our own group already.
    folder = mount / path.lstrip("/")
    return folder if folder.is_dir() else mount


class MemoryCgroup:
    """One cgroup below our own; the limit applies to every process that joins it."""

    def __init__(self, version: int, folder: Path) -> None:
        self.version, self.folder = version, folder
        self._base = 0  # bytes charged before the submission's processes (a warm worker's own)
        self._oom_base = 0

    @classmethod
    def create(cls, limit_bytes: int, label: str = "slot") -> MemoryCgroup | None:
        """A fresh group limited to ``limit_bytes``, or None where this machine does not
        allow one (not root, no memory controller, a read-only hierarchy)."""
        found = own_group()
        if found is None or os.geteuid() != 0:
            return None
        version, parent = found
        if next(_sweeps) == 0:
            sweep_stale(parent)
        folder = parent / f"lab3-{os.getpid()}-{label}-{next(_names)}"
        try:
            folder.mkdir()
        except OSError:
            return None
        group = cls(version, folder)
        try:
            group.set_limit(limit_bytes)
        except OSError:
            group.remove()
            return None
        return group

    @property
    def procs_file(self) -> str:
        """The file a process writes its pid to, to join (see :func:`join`)."""
        return str(self.folder / "cgroup.procs")

    def set_limit(self, limit_bytes: int) -> None:
        """Raises OSError where the kernel refuses the value."""
        if self.version == 1:
            # Without swap limited too, a submission could page out past the limit. The
            # kernel keeps memory <= memory+swap at every step: raising, the second limit
            # goes first; lowering, the first (so one of the two writes may fail).
            with contextlib.suppress(OSError):
                self._write("memory.memsw.limit_in_bytes", limit_bytes)
            self._write("memory.limit_in_bytes", limit_bytes)
            with contextlib.suppress(OSError):
                self._write("memory.memsw.limit_in_bytes", limit_bytes)
        else:
            self._write("memory.max", limit_bytes)
            with contextlib.suppress(OSError):
                self._write("memory.swap.max", 0)

    def limit_above_current(self, limit_bytes: int) -> None:
        """Let the processes that will join now use ``limit_bytes`` beyond what the group is
        charged already (a warm worker's own pages), and start the peak afresh."""
        self._base = self.usage()
        self.set_limit(self._base + limit_bytes)
        self._oom_base = self.oom_kills()
        if self.version == 1:
            with contextlib.suppress(OSError):
                self._write("memory.max_usage_in_bytes", 0)  # resets the peak
        else:
            with contextlib.suppress(OSError):
                self._write("memory.peak", 0)  # resettable from Linux 6.12

    def usage(self) -> int:
        """Bytes charged to the group now."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return self._read_int(name) or 0

    def peak(self) -> int | None:
        """The largest charge since the group was made or :meth:`limit_above_current`, less
        the charge from before, in bytes; None where the kernel keeps no peak."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        peak = self._read_int(name)
        return None if peak is None else max(0, peak - self._base)

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this group for passing the limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.folder / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def out_of_memory(self) -> bool:
        """True when the kernel killed a process of this group since the limit was set."""
        return self.oom_kills() > self._oom_base

    def processes(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs_file).read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, rounds: int = 50) -> None:
        """SIGKILL every process in the group until none is left (a fork bomb refills it)."""
        for _ in range(rounds):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left in the group and delete it."""
        self.kill_all()
        for _ in range(100):
            try:
                self.folder.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # the killed processes are still leaving the group

    def _write(self, name: str, value: int) -> None:
        (self.folder / name).write_text(str(value))

    def _read_int(self, name: str) -> int | None:
        try:
            return int((self.folder / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def available() -> bool:
    """True where this process can make a memory cgroup (a group is made and removed)."""
    group = MemoryCgroup.create(2**20, "probe")
    if group is None:
        return False
    group.remove()
    return True


def sweep_stale(parent: Path) -> None:
    """Delete the empty groups that an earlier grader process left (killed before it could
    clean up); groups of live graders are kept."""
    for folder in parent.glob("lab3-*-*"):
        pid = folder.name.split("-")[1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        with contextlib.suppress(OSError):
            MemoryCgroup(0, folder).kill_all(rounds=5)
            folder.rmdir()


def join(procs_file: str) -> None:
    """Move the calling process into the group whose ``cgroup.procs`` is ``procs_file``.

    Runs between fork and exec, so only ``os.open``/``os.write``; raises OSError when the
    kernel refuses, which makes the child fail to start rather than run unlimited.
    """
    fd = os.open(procs_file, os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
