"""The sandbox child as a process: reaping it with its peak memory, capturing its output,
and killing it and every process of its uid.

:mod:`grader.run.sandbox` starts the child (limits, identity, bubblewrap); this module
watches and ends it, for :mod:`grader.run.submission_run` and the warm workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.run.uids import Identity

# --------------------------------------------------------------------------- the child


def poll(proc: subprocess.Popen) -> tuple[int | None, int | None]:
    """``proc.poll()`` that also returns the child's peak resident memory in bytes.

    Reaps with ``wait4`` so the kernel's resource usage of the child comes back
    with its exit status. Its ``ru_maxrss`` is the largest resident set of the child
    and of every descendant it waited for: under bwrap, bwrap's own processes and
    the Python child inside. ``(None, None)`` while the child runs; the memory is
    None once the child was reaped elsewhere.
    """
    if proc.returncode is not None:
        return proc.returncode, None
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return proc.poll(), None
    if pid == 0:
        return None, None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024  # Linux reports KiB


def wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, int | None]:
    """:func:`poll` until the child exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        returncode, peak = poll(proc)
        if returncode is not None or time.monotonic() >= deadline:
            return returncode, peak
        time.sleep(0.02)


class OutputCapture(threading.Thread):
    """Reads the child's stdout+stderr, keeping the first and last ``cap // 2`` bytes."""

    def __init__(self, stream, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.half = stream, max(1024, cap // 2)
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.stream.read1(65536):
                self.total += len(chunk)
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail += chunk
                    del self.tail[: max(0, len(self.tail) - self.half)]

    def text(self) -> str:
        middle = len(self.head) + len(self.tail)
        gap = f"\n[... {self.total - middle} bytes of output cut ...]\n" if self.total > middle else ""
        return (bytes(self.head).decode("utf-8", "replace") + gap
                + bytes(self.tail).decode("utf-8", "replace"))


# --------------------------------------------------------------------------- clean-up


def kill_tree(proc: subprocess.Popen, identity: Identity) -> None:
    """Kill the child's process group and, with a dedicated uid, every process of that uid.

    The uid sweep catches processes that left the group with ``setsid`` (only
    possible without bwrap: inside it the PID namespace dies with the child).
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if identity.dedicated:
        kill_uid(identity.uid)


def kill_uid(uid: int, *, rounds: int = 50) -> int:
    """SIGKILL every live process whose real uid is ``uid``; repeat until none is left.

    Returns the number of signals sent. Only called for the dedicated sandbox
    uids (never an account's uid).
    """
    if uid == 0 or uid < 1000:
        raise ValueError(f"refusing to kill the processes of system uid {uid}")
    sent = 0
    for _ in range(rounds):
        found = uid_processes(uid)
        if not found:
            return sent
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                sent += 1
            except ProcessLookupError:
                pass
            except PermissionError:
                return sent
        time.sleep(0.01)
    return sent


def uid_memory(uid: int) -> int:
    """The memory of all live processes of ``uid``, in bytes: the sum of their proportional
    set sizes (``Pss`` of ``/proc/<pid>/smaps_rollup``), so pages several of them share
    (a forked child's copy-on-write pages of its warm worker) count once in all."""
    total = 0
    for pid in uid_processes(uid):
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue  # gone, or not ours to read
    return total


def uid_processes(uid: int) -> list[int]:
    """Live (not zombie) pids whose real uid is ``uid``."""
    return [pid for pid in live_pids() if uid_state(pid) == (uid, False)]


def live_pids() -> list[int]:
    """Every pid in /proc now (empty when /proc cannot be read)."""
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def uid_state(pid: int) -> tuple[int | None, bool]:
    """(real uid, is a zombie) of ``pid``; (None, False) when it is gone."""
    zombie = False
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:"):
                    zombie = line.split()[1] in (b"Z", b"X")
                elif line.startswith(b"Uid:"):
                    return int(line.split()[1]), zombie
    except (OSError, ValueError, IndexError):
        pass
    return None, False


def describe_signal(returncode: int) -> str:
    """``-9`` -> ``"killed by SIGKILL"``, ``3`` -> ``"exit code 3"``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
