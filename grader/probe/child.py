"""The child process of ``lab3 grade``: probes one submission, writes records, nothing else.

Run by :mod:`grader.run.submission_run` in the submission's scratch copy: under bubblewrap as
a process forked from the worker slot's warm process (:mod:`grader.run.warm_worker_process` calls
:func:`main` with the arguments; ``--log`` then names the file for its output),
otherwise started as ``python -I -B -c <bootstrap> ...`` (see
:func:`grader.run.sandbox.child_python`; ``python -m grader.probe.child ...`` works too for
debugging). It

1. drops to the unprivileged uid it is given (when started as root inside bwrap)
   and sets ``no_new_privs``, before any student code is imported;
2. for each task, in order: appends ``start <task>`` to ``<records>/progress``
   (before the first task's probe it imports the submission as a synthetic package,
   :mod:`grader.probe.implementation`: its ``__init__.py`` is student code, so a process it
   ends is that task's crash), runs the task's probe, writes the record (safetensors + JSON,
   :meth:`grader.probe.records.Record.save`) and appends ``done <task>``; with ``--handoff``
   it then waits until the parent has taken that record (read and deleted it), so no
   later task's student code can rewrite it.

The parent watches ``progress`` to time each task, and reads the records back
with :meth:`Record.load` (validated, capped). Nothing the child returns or prints
is trusted; its exit code only tells the parent whether the running task crashed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from pathlib import Path

PROGRESS_FILE = "progress"
HANDOFF_LIMIT = 30.0
PARTIAL_DIR = "partial"  # the running task's record so far, before each student call
_PR_SET_NO_NEW_PRIVS = 38


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader.probe.child", description=__doc__)
    parser.add_argument("--impl", required=True, type=Path, help="the submission's folder")
    parser.add_argument("--records", required=True, type=Path, help="where records go")
    parser.add_argument("--scratch", required=True, type=Path, help="the probes' scratch folder")
    parser.add_argument("--tasks", required=True, help="comma-separated task names, in order")
    parser.add_argument("--weights-kind", required=True)
    parser.add_argument("--weights-path", required=True, type=Path)
    parser.add_argument("--weights-sha256", required=True)
    parser.add_argument("--settings", required=True, help="ProbeSettings as JSON")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cwd", type=Path, default=None, help="working directory (after the drop)")
    parser.add_argument("--drop-uid", type=int, default=None)
    parser.add_argument("--drop-gid", type=int, default=None)
    parser.add_argument("--run-top-level", type=float, default=None, metavar="SECONDS",
                        help="run a script's or notebook's top-level code, for this long at most")
    parser.add_argument("--handoff", action="store_true",
                        help="after each task, wait until the parent has taken its record")
    parser.add_argument("--log", type=Path, default=None,
                        help="file for stdout and stderr, opened after the drop (warm workers)")
    return parser.parse_args(argv)


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good (real, effective and saved ids), without groups.

    Raises:
        SystemExit: the drop did not take (never run student code as root).
    """
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise SystemExit("lab3 child: could not drop privileges")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise SystemExit("lab3 child: privileges could be regained; refusing to continue")


def no_new_privs() -> None:
    """``PR_SET_NO_NEW_PRIVS``: no setuid binary can give student code privileges back."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def redirect_output(path: Path) -> None:
    """Send stdout and stderr to ``path``, created with the child's own uid, never via a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def mark(records: Path, line: str) -> None:
    """Append one progress line; reopened each time, so student code closing fds cannot stop it."""
    with open(records / PROGRESS_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def wait_for_handoff(records: Path, task: str, limit: float = HANDOFF_LIMIT) -> None:
    """Block until the parent has taken ``task``'s record (its files are gone).

    The next task's student code runs only after that, so it cannot rewrite this record.
    After ``limit`` seconds the child goes on (the parent's per-task timeout still rules).
    """
    import time

    deadline = time.monotonic() + limit
    names = [records / f"{task}{suffix}" for suffix in (".json", ".safetensors")]
    while any(os.path.lexists(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from grader.run.sandbox import isolate_ipc_and_keyring

    # Before the drop: a new IPC namespace needs the capability the drop gives up. A child
    # started unprivileged (--sandbox none) got both from its preexec already.
    isolate_ipc_and_keyring()
    if args.drop_uid is not None:
        drop_privileges(args.drop_uid, args.drop_gid if args.drop_gid is not None else args.drop_uid)
    no_new_privs()
    os.umask(0o077)
    if args.log is not None:
        redirect_output(args.log)
    if args.cwd is not None:
        os.chdir(args.cwd)

    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (only possible when imported by a test)

    from grader.check.grading import probe_task
    from grader.probe.implementation import load_implementation
    from grader.probe.inputs import FIXTURES_DIR
    from grader.probe.probing import ImplementationError, ProbeContext, set_checkpoint
    from grader.probe.records import Record
    from grader.refdata.weights import ResolvedWeights, activate
    from grader.settings import ProbeSettings

    weights = ResolvedWeights(kind=args.weights_kind, path=args.weights_path,
                              sha256=args.weights_sha256)
    activate(weights)
    settings = ProbeSettings(**json.loads(args.settings))
    tasks = [t for t in args.tasks.split(",") if t]
    args.records.mkdir(parents=True, exist_ok=True)
    args.scratch.mkdir(parents=True, exist_ok=True)

    if args.handoff:
        set_checkpoint(lambda record, changed: record.save(args.records / PARTIAL_DIR,
                                                           tensors=changed))
    impl, impl_error, ctx = None, None, None
    for task in tasks:
        mark(args.records, f"start {task}")
        if ctx is None:
            # Loaded once the first task has started: the package's __init__.py is student
            # code, and a process it ends is that task's crash (the student's), not a child
            # that failed before probing (the grader's).
            try:
                impl = load_implementation(args.impl)
            except ImplementationError as exc:
                impl_error = str(exc)
            ctx = ProbeContext(impl=impl, weights=weights, settings=settings,
                               fixtures_dir=FIXTURES_DIR, scratch=args.scratch,
                               device=args.device, run_top_level=args.run_top_level)
        if impl is None:
            record = Record(task=task, data={"import_error": impl_error})
        else:
            record = probe_task(task, ctx)
        try:
            record.save(args.records)
        except Exception as exc:  # noqa: BLE001 - a probe stored something JSON cannot hold
            Record(task=task, data={
                "record_error": f"{type(exc).__name__}: {exc}"[:2000]}).save(args.records)
        mark(args.records, f"done {task}")
        if args.handoff and task != tasks[-1]:
            wait_for_handoff(args.records, task)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
