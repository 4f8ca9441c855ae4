"""Two students in one batch cannot pass a secret through System V IPC or a keyring.

Alice's code stores a secret in a System V shared-memory segment (mode 0666, which outlives
its process), in her session keyring and in her user keyring; Bob's code, graded next by the
same worker, looks for all three. Each child gets its own IPC namespace and a new, empty
session keyring (and, as root, its own uid, hence its own user keyring), in both sandbox
modes that claim it: bubblewrap, and ``--sandbox none`` run as root.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import pytest

from grader.run import cgroup
from grader.run.batch import grade_batch

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64" or not hasattr(os, "getuid"),
                                reason="the submissions call x86_64 Linux syscalls directly")

PRELUDE = '''
import ctypes as _ctypes

_libc = _ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = _ctypes.c_void_p
_KEY = 0x1AB3
_ADD_KEY, _REQUEST_KEY = 248, 249
_SESSION, _USER = -3, -4
'''

ALICE = PRELUDE + '''

def load_model(device="cpu"):
    shmid = _libc.shmget(_KEY, 64, 0o1000 | 0o666)
    shm = False
    if shmid >= 0:
        addr = _libc.shmat(shmid, None, 0)
        if addr not in (None, _ctypes.c_void_p(-1).value):
            _ctypes.memmove(addr, b"secret-of-alice", 15)
            shm = True
    session = _libc.syscall(_ADD_KEY, b"user", b"lab3-secret-s", b"secret-of-alice", 15,
                            _ctypes.c_int(_SESSION)) >= 0
    user = _libc.syscall(_ADD_KEY, b"user", b"lab3-secret-u", b"secret-of-alice", 15,
                         _ctypes.c_int(_USER)) >= 0
    raise RuntimeError(f"alice stored: shm={shm} session={session} user={user}")
'''

BOB = PRELUDE + '''

def load_model(device="cpu"):
    shm = _libc.shmget(_KEY, 0, 0) >= 0
    session = _libc.syscall(_REQUEST_KEY, b"user", b"lab3-secret-s", None, 0) >= 0
    user = _libc.syscall(_REQUEST_KEY, b"user", b"lab3-secret-u", None, 0) >= 0
    raise RuntimeError(f"bob found: shm={shm} session={session} user={user}")
'''


def _student(root: Path, name: str, source: str) -> Path:
    folder = root / name
    shutil.copytree(REPO / "student_template", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "model.py").write_text((folder / "model.py").read_text() + "\n" + source)
    return folder


def _message(out: Path, name: str) -> str:
    report = json.loads((out / name / "report.json").read_text())["report"]
    return " | ".join(c["message"] for t in report["tasks"] for c in t["checks"])


def _modes() -> list[str]:
    modes = ["bwrap"]
    if os.getuid() == 0:
        modes.append("none")  # as an ordinary user, --sandbox none claims no such isolation
    return modes


@pytest.mark.slow
@pytest.mark.parametrize("mode", _modes())
def test_a_secret_does_not_pass_between_two_students(tmp_path: Path, mode: str) -> None:
    if mode == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    alice = _student(tmp_path, "alice", ALICE)
    bob = _student(tmp_path, "bob", BOB)
    out = tmp_path / "grades"
    result = grade_batch([str(alice), str(bob)], out=out, tasks="model", jobs=1,
                         sandbox_mode=mode, variant="practice", quiet=True)
    assert result.exit_code == 0
    # Alice's channel was open on her side (the test is not vacuous) ...
    assert "alice stored: shm=True session=True user=True" in _message(out, "alice")
    # ... and nothing of it reached Bob.
    assert "bob found: shm=False session=False user=False" in _message(out, "bob")


HOG = '''

def load_model(device="cpu"):
    import subprocess
    import sys

    hog = "b = bytearray({mb} * 2**20); import time; time.sleep(60)"
    procs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(3)]
    for proc in procs:
        proc.wait()
    raise RuntimeError("all my processes finished")
'''


# The kernel's memory cgroup where this machine allows one, and the watchdog (which the
# batch uses elsewhere) in every case.
MEMORY_GUARDS = ["cgroup", "watchdog"] if cgroup.available() else ["watchdog"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="the whole-submission limit needs the submission's own uid (root)")
@pytest.mark.parametrize("mode", _modes())
@pytest.mark.parametrize("guard", MEMORY_GUARDS)
def test_the_memory_limit_holds_for_all_processes_of_a_submission(
        tmp_path: Path, mode: str, guard: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    if guard == "watchdog":
        monkeypatch.setattr(cgroup.MemoryCgroup, "create", classmethod(lambda *_: None))
    # Three processes of 1.8 GB each stay under a 4.5 GB per-process limit, but not together.
    hog = _student(tmp_path, "hog", HOG.format(mb=1800))
    out = tmp_path / "grades"
    result = grade_batch([str(hog)], out=out, tasks="model", memory=4500, task_timeout=50,
                         sandbox_mode=mode, variant="practice", quiet=True)
    assert result.exit_code == 0
    message = _message(out, "hog")
    assert "4500 MB memory limit (all its processes together)" in message, message
    peak = json.loads((out / "hog" / "report.json").read_text())["resources"]["peak_memory_mib"]
    # The submission's peak, not one process's 1.8 GB: the sampled sum passes the limit
    # before the watchdog acts; the kernel's count stops at the limit.
    assert peak > 4500 if guard == "watchdog" else 2 * 1800 < peak <= 4500
