"""Who a child runs as: a fresh sandbox uid per child, where the drop to it happens, and
giving its folders to it (``lab3 grade`` run as root; an ordinary user keeps its own uid).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grader.paths import PROJECT_ROOT
from grader.run.processes import live_pids, uid_state

# First uid of the sandbox users (a child gets one from [base, base + UID_SPAN)). High
# and unnamed on purpose: no real account or daemon owns one, so "kill every process
# of this uid" only ever hits a submission's own processes. Override with
# $LAB3_SANDBOX_UID.
DEFAULT_UID_BASE = 2_000_000_000
UID_SPAN = 10_000_000


@dataclass(frozen=True)
class Identity:
    """Who the child runs as: ``uid``/``gid`` to drop to, or None to keep the caller's."""

    uid: int | None
    gid: int | None
    # Where the drop happens: "exec" (Popen's user=/group=, before the interpreter
    # starts), "child" (inside bwrap, by grader.probe.child before any student code), or
    # "setpriv" (util-linux setpriv, keeping only CAP_DAC_READ_SEARCH so an interpreter
    # installed under /root stays readable; see identity_for).
    drop_at: Literal["exec", "child", "setpriv", "none"] = "none"

    @property
    def dedicated(self) -> bool:
        """True when the uid belongs to this child alone (safe to kill all its processes)."""
        return self.uid is not None


def uid_base() -> int:
    return int(os.environ.get("LAB3_SANDBOX_UID", DEFAULT_UID_BASE))


def is_root() -> bool:
    return os.geteuid() == 0


class UidPool:
    """Fresh sandbox uids, one per child: never one that still owns a process.

    Each batch starts at a random offset of the range, so two batches running at
    once do not share uids (and never kill each other's children).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = uid_base() + secrets.randbelow(UID_SPAN // 2)

    def take(self) -> int:
        with self._lock:
            busy = {uid for pid in live_pids() if (uid := uid_state(pid)[0]) is not None}
            while self._next in busy:
                self._next += 1
            uid, self._next = self._next, self._next + 1
            return uid


def identity_for(mode: str, *, uid: int, python_reachable: bool) -> Identity:
    """The identity of a child, given a fresh ``uid`` from :class:`UidPool`.

    As root the child drops to ``uid``: inside bwrap (the sandbox
    makes the interpreter reachable), or with ``--sandbox none`` at exec when the
    interpreter is readable by that uid. When it is not (a Python installed under
    ``/root``), ``setpriv`` drops to the uid keeping one capability,
    CAP_DAC_READ_SEARCH: the child can read every file (as root could) but writes
    only its scratch folder, cannot signal other processes, and RLIMIT_NPROC
    applies. Without setpriv the child stays root (and the batch says so).
    """
    if not is_root():
        return Identity(None, None, "none")
    if mode == "bwrap":
        return Identity(uid, uid, "child")
    if python_reachable:
        return Identity(uid, uid, "exec")
    if shutil.which("setpriv"):
        return Identity(uid, uid, "setpriv")
    return Identity(None, None, "none")


def readable_by_others(paths: Iterable[Path]) -> bool:
    """True when an unprivileged stranger can reach and read every path (mode bits only)."""
    for path in paths:
        path = Path(path).resolve()
        if not path.exists():
            return False
        for parent in [*reversed(path.parents), path]:
            mode = parent.stat().st_mode
            if parent.is_dir() and not mode & 0o001:
                return False
        if path.is_file() and not path.stat().st_mode & 0o004:
            return False
    return True


def python_paths() -> list[Path]:
    """Folders the child interpreter reads: its installation, the venv, the grader."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(sys.executable).resolve().parent, PROJECT_ROOT / "grader"}
    return sorted(paths)


def give_to(path: Path, identity: Identity, mode: int = 0o700) -> None:
    """Make ``path`` (recursively) owned by the child's uid, so it can write there."""
    path.chmod(mode)
    if identity.uid is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, identity.uid, identity.gid, follow_symlinks=False)
        for name in dirs + files:
            os.chown(os.path.join(root, name), identity.uid, identity.gid, follow_symlinks=False)


def chown_works(folder: Path) -> str | None:
    """None when files can be given to the sandbox uids here, else why not."""
    probe = folder / ".chown-probe"
    probe.touch()
    try:
        os.chown(probe, uid_base(), uid_base())
    except OSError as exc:
        return f"cannot give files to uid {uid_base()} ({exc}); set $LAB3_SANDBOX_UID to a " \
               "uid this system accepts"
    finally:
        probe.unlink(missing_ok=True)
    return None
