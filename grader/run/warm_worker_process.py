"""A batch worker's warm process: imports torch and the grader once, forks a child per probe run.

Started by :class:`grader.run.warm_worker.WarmWorker` inside one worker slot's bubblewrap
sandbox (``python -I -B -c <bootstrap> ...``, see :func:`grader.run.sandbox.child_python`).
It never runs student code itself:

1. it makes itself non-dumpable (a child running as the same uid, as with an
   unprivileged bubblewrap, can then neither ptrace it nor open its ``/proc``
   files, the control pipes included), imports what every probe needs (torch,
   torchvision, Captum, matplotlib, the grader's task modules), builds the
   trusted ResNet-34 once with a single intra-op thread (no OpenMP thread team and
   no CUDA state exist yet to be broken by ``fork``; the children copy the model),
   and writes ``{"ready": ...}``;
2. for each ``{"op": "run", ...}`` line on stdin it forks a child that starts a
   new session, puts ``/dev/null`` on its standard streams, closes every other
   descriptor (the control pipes), takes the request's environment and resource
   limits, and runs :func:`grader.probe.child.main` with the request's arguments
   (that drops to the submission's uid and sends its output to a log file in the
   submission's folder before any student code is imported);
3. while the child runs it obeys ``{"op": "kill"}``; once the child is reaped
   (``wait4``: exit status and peak resident memory) it kills every other
   process left in the sandbox's PID namespace (a student's daemon), empties
   ``/tmp`` and ``/dev/shm``, and only then writes ``{"exited": ...}``; so the
   next child, usually another student's, starts in a clean sandbox.

Only the parent decides anything: it reads the records from the submission's
folder itself, and what this process reports (exit status, memory) is
bookkeeping. Importing torch and friends once per worker instead of once per
submission saves about 2.5 s of CPU per submission on the 2-core machine
(``import torchvision`` alone pulls in ``torch._dynamo``: about 1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
KILL_ROUNDS = 50
POLL_SECONDS = 0.02
CLEANED = (Path("/tmp"), Path("/dev/shm"))


# What the probes import; torchvision pulls in torch._dynamo (about 1 s by itself).
PRELOADED = (
    "numpy", "PIL.Image", "torch", "torchvision.models", "torchvision.transforms",
    "captum.attr", "matplotlib.pyplot", "torchviz", "graphviz",
    "grader.probe.child", "grader.check.grading", "grader.probe.implementation",
)


def preload() -> None:
    """Import what the probes import, without running a tensor operation (fork-safe)."""
    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOADED:
        importlib.import_module(name)
    from grader.tasks import TASK_NAMES, task_module

    for task in TASK_NAMES:
        task_module(task)


try:  # resolved at import: no dlopen between fork and the child's first student code
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _prctl(option: int, value: int) -> None:
    if _PRCTL is not None:
        _PRCTL(option, value, 0, 0, 0)


class Control:
    """Line-delimited JSON on the inherited stdin/stdout descriptors (no Python buffering)."""

    def __init__(self) -> None:
        self.pending = b""

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(1, data):]

    def receive(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message; None when ``timeout`` passes first. Raises EOFError at the end."""
        while b"\n" not in self.pending:
            ready, _, _ = select.select([0], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(0, 65536)
            if not chunk:
                raise EOFError
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)


def run_child(request: dict[str, Any], control: Control, folder: Path) -> None:
    """Fork, run one child to its end, clean the sandbox, report."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            code = _child(request)
        finally:
            os._exit(code)
    control.send({"started": pid})
    killed = False
    while True:
        try:
            message = control.receive(POLL_SECONDS)
        except EOFError:  # the parent is gone: nothing is wanted from this child any more
            message = {"op": "kill"}
        if message is not None and message.get("op") == "kill":
            killed = True
        if killed:
            # Again at every turn: the child may not have reached setsid() yet, and then
            # its group does not exist (seen under load).
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
    left = sweep()
    clean_shared_folders(folder)
    control.send({"exited": os.waitstatus_to_exitcode(status),
                  "peak_memory": usage.ru_maxrss * 1024, "killed_left": left})


def _child(request: dict[str, Any]) -> int:
    """In the forked child: a clean process state, then :func:`grader.probe.child.main`."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the zygote died before the line above took effect
        return 70
    for which, value in request.get("rlimits", []):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    os.environ.clear()
    os.environ.update(request["env"])
    from grader.probe.child import main

    return main(list(request["argv"]))


def sweep() -> int:
    """SIGKILL every process of this PID namespace but this one and its ancestors.

    Returns how many were found (a student's leftover or daemonized processes).
    """
    keep = {os.getpid(), 1}
    with contextlib.suppress(OSError):
        keep.add(os.getppid())
    found: set[int] = set()
    for _ in range(KILL_ROUNDS):
        others = [pid for pid in _pids() if pid not in keep]
        if not others:
            break
        for pid in others:
            found.add(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # Reap what is ours (reparented orphans are reaped by bwrap's init).
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(POLL_SECONDS)
    return len(found)


def _pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    state = f.read().rpartition(b")")[2].split()[0]
            except OSError:
                continue
            if state not in (b"Z", b"X"):  # zombies are gone already, only not reaped
                pids.append(int(entry))
    return pids


def clean_shared_folders(keep: Path) -> None:
    """Empty the folders every child of this sandbox can write besides its own.

    The slot's folder (``keep``) is bound into the sandbox, often below ``/tmp``:
    the path down to it, and anything on another file system (a bind mount), stays.
    """
    keep = keep.resolve()
    for folder in CLEANED:
        try:
            device = folder.stat().st_dev
        except OSError:
            continue
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                if keep == entry or keep.is_relative_to(entry) or \
                        entry.lstat().st_dev != device:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader.run.warm_worker_process", description=__doc__)
    parser.add_argument("--folder", required=True, type=Path,
                        help="the slot's folder, bound into the sandbox (never cleaned)")
    parser.add_argument("--weights-kind", default=None)
    parser.add_argument("--weights-path", type=Path, default=None,
                        help="checkpoint whose model is built once, before any fork")
    parser.add_argument("--weights-sha256", default=None)
    return parser.parse_args(argv)


def in_bubblewrap() -> bool:
    """True inside a bubblewrap PID namespace (its PID 1 is bwrap's init)."""
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return Path(f.read().split(b"\0")[0].decode(errors="replace")).name == "bwrap"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    control = Control()
    if not in_bubblewrap():
        # Its clean-up kills every process it can see: only ever inside the sandbox.
        control.send({"error": "grader.run.warm_worker_process runs only inside bubblewrap's PID namespace"})
        return 2
    _prctl(_PR_SET_DUMPABLE, 0)
    try:
        preload()
        if args.weights_path is not None:
            from grader.refdata.weights import ResolvedWeights, preload_model

            preload_model(ResolvedWeights(kind=args.weights_kind, path=args.weights_path,
                                          sha256=args.weights_sha256))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which gives up
        control.send({"error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1
    control.send({"ready": True, "pid": os.getpid()})
    while True:
        try:
            message = control.receive(None)
        except EOFError:
            return 0
        if message is None:
            continue
        op = message.get("op")
        if op == "run":
            run_child(message, control, args.folder)
        elif op == "quit":
            return 0
