"""How a submission's child process is started: resource limits, identity, and bubblewrap.

The child runs the grader's probes next to untrusted student code. This module
builds its command line and the function applied between ``fork`` and ``exec``;
:mod:`grader.run.submission_run` starts and watches it.

What every child gets, in both modes:

- a new session (its own process group), so a timeout kills the whole tree;
- resource limits (``RLIMIT_AS`` from ``--memory``, ``RLIMIT_NPROC``,
  ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, ``RLIMIT_CPU`` as a backstop, no core
  dumps) and ``PR_SET_PDEATHSIG`` so it dies with the thread that watches it;
- a minimal environment (no inherited secrets), threads set per worker;
- ``python -I -B``: the scratch folder (its working directory) is never on
  ``sys.path``, so a student file named ``grader.py`` or ``torch.py`` cannot
  replace the grader's code;
- when the grader runs as root: a fresh unprivileged uid per child process
  (``RLIMIT_NPROC`` is not enforced for root; distinct uids keep concurrent
  submissions from signalling or writing each other's files, and a uid is never
  reused while a process of it exists, zombies included: in a container whose
  PID 1 does not reap orphans they would count against the next child's limit).

With ``--sandbox bwrap`` (and ``auto`` where bubblewrap works) the child also
runs in new mount, PID, network, IPC and UTS namespaces: no network, the system,
the Python installation and the grader's own code read-only, ``reference/``, the
shipped reference records, the cache and the output folder absent, and the
submission's scratch folder the only writable path (``/tmp`` is a small tmpfs).
As root, bubblewrap runs without a user namespace and the child drops to its
uid inside the sandbox (bwrap keeps only CAP_SETUID/CAP_SETGID for that, and
the child sets ``no_new_privs``); as an ordinary user bubblewrap uses a user
namespace and no uid change is possible. In ``lab3 grade`` one such sandbox
holds a worker slot's warm process (:mod:`grader.run.warm_worker_process`), which also keeps
CAP_KILL, CAP_FOWNER and CAP_DAC_OVERRIDE to clean up between children; its
children get the limits above through the request, not through :func:`preexec`.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.errors import SandboxError
from grader.paths import PROJECT_ROOT
from grader.run import cgroup
from grader.run.uids import Identity, is_root, python_paths

SANDBOX_MODES: tuple[str, ...] = ("auto", "bwrap", "none")

# Paths visible read-only inside bwrap under /etc: what the dynamic loader,
# fontconfig (matplotlib) and Graphviz need; nothing else of /etc.
_ETC_PATHS = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts",
    "/etc/alternatives", "/etc/localtime", "/etc/passwd", "/etc/group",
    "/etc/nsswitch.conf", "/etc/mime.types",
)
TMPFS_BYTES = 256 * 1024 * 1024

_PR_SET_PDEATHSIG = 1
try:  # resolved before any fork: dlopen after fork in a threaded process may deadlock
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
    _UNSHARE = _LIBC.unshare
    _SYSCALL = _LIBC.syscall
except (OSError, AttributeError):  # not Linux
    _PRCTL = _UNSHARE = _SYSCALL = None
_CLONE_NEWIPC = 0x08000000
_KEYCTL_JOIN_SESSION_KEYRING = 1
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)


def isolate_ipc_and_keyring() -> tuple[bool, bool]:
    """Give this process (and what it starts) its own System V IPC namespace and a new, empty
    session keyring, so no two submissions share a shared-memory segment, semaphore, message
    queue or session key.

    A new IPC namespace needs CAP_SYS_ADMIN: root, or the user namespace of bubblewrap as an
    ordinary user; without it the call fails and the process keeps the namespace it has.
    Joining a new anonymous session keyring needs no privilege.

    Returns:
        ``(ipc, keyring)``: whether each took.
    """
    ipc = _UNSHARE is not None and _UNSHARE(_CLONE_NEWIPC) == 0
    keyring = (_SYSCALL is not None and _SYS_KEYCTL is not None
               and _SYSCALL(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, None) >= 0)
    return ipc, keyring


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child process (see the module docstring)."""

    memory_mb: int = 8192
    processes: int = 64
    file_size_mb: int = 256
    open_files: int = 1024
    cpu_seconds: int | None = None
    output_bytes: int = 64 * 1024

    def rlimits(self) -> list[tuple[int, int]]:
        mb = 1024 * 1024
        limits = [
            (resource.RLIMIT_AS, self.memory_mb * mb),
            (resource.RLIMIT_FSIZE, self.file_size_mb * mb),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_NPROC, self.processes),
        ]
        if self.cpu_seconds:
            limits.append((resource.RLIMIT_CPU, int(self.cpu_seconds)))
        return limits


# --------------------------------------------------------------------------- mode


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot run a sandbox here, or None when it can."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    # The features bwrap_command uses (--perms and --size need bubblewrap 0.8), so an
    # older bwrap is refused here rather than failing every child.
    probe = [exe, *_namespace_flags(), "--die-with-parent", "--ro-bind", "/", "/",
             "--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--perms", "1777",
             "--tmpfs", "/tmp", "--perms", "0755", "--dir", "/tmp/lab3-probe", "true"]
    if is_root():
        probe[1:1] = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not start: {exc}"
    if done.returncode != 0:
        text = done.stderr.decode(errors="replace").strip()[:300]
        return f"bwrap failed ({text or f'exit {done.returncode}'}); unprivileged user " \
               "namespaces may be disabled"
    return None


def resolve_mode(mode: str) -> tuple[str, str | None]:
    """``(mode actually used, warning or None)`` for ``--sandbox mode``.

    Raises:
        SandboxError: ``mode`` is ``bwrap`` and bubblewrap does not work here.
    """
    if mode == "none":
        return "none", None
    problem = bwrap_problem()
    if problem is None:
        return "bwrap", None
    if mode == "bwrap":
        raise SandboxError(f"--sandbox bwrap: {problem}; use --sandbox none to grade without it")
    return "none", f"sandbox: {problem}; grading with --sandbox none (no file-system or " \
                   "network isolation)"


def _namespace_flags() -> list[str]:
    if is_root():
        # No user namespace as root: the child must become a real unprivileged uid
        # (RLIMIT_NPROC, file permissions); a user namespace would map it back to 0.
        return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try"]
    return ["--unshare-all"]


# --------------------------------------------------------------------------- command


@dataclass(frozen=True)
class ChildSpec:
    """Everything needed to start one child."""

    argv: list[str]  # the child command (python -I -B -c ... args)
    scratch: Path  # the only writable folder
    readonly: tuple[Path, ...]  # extra read-only paths (the weights file)
    hidden: tuple[Path, ...]  # paths that must not be visible (reference/, caches, outputs)
    env: dict[str, str]
    cwd: Path
    device: str = "cpu"
    # Capabilities kept besides CAP_SETUID/CAP_SETGID when bwrap runs as root: a warm
    # worker (grader.run.warm_worker_process) needs CAP_KILL, CAP_FOWNER and CAP_DAC_OVERRIDE to clean up
    # after children of other uids; the children lose every capability when they drop
    # to their uid.
    capabilities: tuple[str, ...] = ()


def child_python(args: list[str], module: str = "grader.probe.child") -> list[str]:
    """``python -I -B -c <bootstrap> args``: ``module``'s ``main``, never the cwd on sys.path."""
    # os._exit: no atexit handler or leftover thread of the student runs after the probes.
    bootstrap = (
        "import os, sys; sys.path.insert(0, sys.argv.pop(1)); "
        f"from {module} import main; rc = main(); "
        "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)"
    )
    return [sys.executable, "-I", "-B", "-c", bootstrap, str(PROJECT_ROOT), *args]


def bwrap_command(spec: ChildSpec) -> list[str]:
    """The bwrap command line wrapping ``spec.argv`` (see the module docstring)."""
    exe = shutil.which("bwrap") or "bwrap"
    cmd = [exe, *_namespace_flags(), "--die-with-parent"]
    if is_root():
        # Only what the child needs to drop to its uid; everything else goes.
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        for capability in spec.capabilities:
            cmd += ["--cap-add", capability]
    made: set[str] = {"/"}

    def dirs_for(target: Path) -> list[str]:
        # bwrap creates missing parents 0700 as root: make them 0755 explicitly so the
        # unprivileged child can traverse them.
        out: list[str] = []
        for parent in reversed(target.parents):
            p = str(parent)
            if p not in made:
                made.add(p)
                out += ["--perms", "0755", "--dir", p]
        return out

    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if Path(top).is_symlink():
            cmd += ["--symlink", os.readlink(top), top]
            made.add(top)
    # Virtual file systems first: binds below /tmp (the scratch) must land on the tmpfs.
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--size", str(TMPFS_BYTES), "--perms", "1777", "--tmpfs", "/tmp"]
    made.update({"/proc", "/dev", "/tmp"})
    if spec.device.startswith("cuda"):
        for dev in sorted(Path("/dev").glob("nvidia*")):
            cmd += ["--dev-bind-try", str(dev), str(dev)]
        cmd += ["--ro-bind-try", "/sys", "/sys",
                "--ro-bind-try", "/proc/driver/nvidia", "/proc/driver/nvidia"]

    binds: list[Path] = [Path(t) for t in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
                         if Path(t).is_dir() and not Path(t).is_symlink()]
    binds += [Path("/usr"), *(Path(e) for e in _ETC_PATHS if Path(e).exists())]
    binds += python_paths()
    binds += [PROJECT_ROOT / n for n in ("fixtures", "student_template")
              if (PROJECT_ROOT / n).is_dir()]
    scratch = spec.scratch.resolve()
    readonly = [p.resolve() for p in spec.readonly]
    binds += [p for p in readonly if not p.is_relative_to(scratch)]
    bound: list[Path] = []
    # Shortest paths first, and a path inside one already bound is skipped.
    for path in sorted(set(binds), key=lambda p: (len(p.parts), str(p))):
        if any(path.is_relative_to(b) for b in bound):
            continue
        bound.append(path)
        cmd += [*dirs_for(path), "--ro-bind", str(path), str(path)]
        made.add(str(path))
    cmd += [*dirs_for(scratch), "--bind", str(scratch), str(scratch)]
    # Read-only parts of the scratch (a warm worker's own home) go over its bind.
    for path in sorted(p for p in readonly if p.is_relative_to(scratch) and p.exists()):
        cmd += ["--ro-bind", str(path), str(path)]
    for path in spec.hidden:
        path = path.resolve()
        if not path.exists() or not any(path.is_relative_to(b) for b in bound):
            continue  # not visible in the sandbox anyway
        if path.is_dir():  # masked by an empty read-only folder
            cmd += ["--perms", "0555", "--tmpfs", str(path), "--remount-ro", str(path)]
        else:
            cmd += ["--ro-bind", "/dev/null", str(path)]
    # bwrap changes directory with its capabilities already dropped: into the scratch root
    # (traversable by anyone); the child enters spec.cwd itself once it has its uid.
    cmd += ["--chdir", str(scratch), "--", *spec.argv]
    return cmd


def command_for(spec: ChildSpec, mode: str, identity: Identity | None = None) -> list[str]:
    if mode == "bwrap":
        return bwrap_command(spec)
    if identity is not None and identity.drop_at == "setpriv":
        return [shutil.which("setpriv") or "setpriv", f"--reuid={identity.uid}",
                f"--regid={identity.gid}", "--clear-groups",
                "--bounding-set=-all,+dac_read_search", "--inh-caps=-all,+dac_read_search",
                "--ambient-caps=+dac_read_search", "--no-new-privs", "--", *spec.argv]
    return list(spec.argv)


def preexec(limits: Limits, identity: Identity | None = None,
            cgroup_procs: str | None = None) -> Callable[[], None]:
    """The function run in the child between fork and exec: its memory cgroup (the
    ``cgroup.procs`` file of a :class:`grader.run.cgroup.MemoryCgroup`, joined first, so every
    process it starts is in it), its own IPC namespace and session keyring, limits,
    parent-death signal, and (``drop_at == "exec"``) the drop to the child's uid, after the
    isolation that needs root.

    Only async-signal-tolerant work: ``setrlimit``, pre-resolved ``prctl``/``unshare``/
    ``syscall`` and the set*id calls.
    """
    rlimits = limits.rlimits()
    prctl = _PRCTL
    drop = identity if identity is not None and identity.drop_at == "exec" else None

    def apply() -> None:
        if cgroup_procs is not None:
            cgroup.join(cgroup_procs)
        isolate_ipc_and_keyring()
        if drop is not None:
            os.setgroups([])
            os.setresgid(drop.gid, drop.gid, drop.gid)
            os.setresuid(drop.uid, drop.uid, drop.uid)
        for which, value in rlimits:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                # A limit above the hard limit we inherited: keep the inherited one.
                _soft, hard = resource.getrlimit(which)
                resource.setrlimit(which, (min(value, hard), hard))
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return apply


def start(spec: ChildSpec, *, mode: str, limits: Limits, identity: Identity,
          control: bool = False, memory_group: cgroup.MemoryCgroup | None = None,
          ) -> subprocess.Popen:
    """Start the child: new session, limits, identity; stdout and stderr on one pipe.

    ``control``: stdin, stdout and stderr are three pipes instead (a warm worker's
    requests, replies and diagnostics). ``memory_group``: the cgroup the child and all
    its descendants run in.
    """
    # The uid drop happens in preexec, after the IPC namespace that needs root.
    return subprocess.Popen(
        command_for(spec, mode, identity),
        cwd=str(spec.cwd),
        env=spec.env,
        stdin=subprocess.PIPE if control else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if control else subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec(limits, identity,
                           None if memory_group is None else memory_group.procs_file),
        close_fds=True,
    )
