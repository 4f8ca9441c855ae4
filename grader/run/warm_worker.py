"""The parent's side of a batch slot's warm process (:mod:`grader.run.warm_worker_process`).

With ``--sandbox bwrap`` each worker slot of ``lab3 grade`` starts one zygote in
its own sandbox, whose only writable folder is the slot's folder: the
submission being graded (scratch copy, records, home) is staged there, and
removed before the next one is. The zygote imports torch and the grader once;
every probe run is a child forked from it, with the submission's uid, limits,
environment and log file (see :mod:`grader.run.warm_worker_process` for what it cleans between
children). :class:`ForkedChild` gives :mod:`grader.run.submission_run` the same handle as a
freshly started process (:class:`grader.run.attempt.FreshChild`): ``poll``, ``stop``, ``output``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.errors import WorkerError
from grader.run import cgroup, processes, sandbox, uids

# Importing torch, torchvision (with torch._dynamo), Captum and matplotlib: ~3 s on an
# idle 2-core machine, much more while other workers run; generous on purpose.
READY_TIMEOUT = 180.0
REPLY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# CAP_SYS_ADMIN: each forked child unshares a new IPC namespace before it drops to its uid
# (consecutive submissions of one worker share the sandbox's namespaces otherwise).
ZYGOTE_CAPABILITIES = ("CAP_KILL", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN")


class WarmWorker:
    """One slot's zygote: started on first use, restarted when it dies."""

    def __init__(self, folder: Path, spec_for: Callable[[Path], sandbox.ChildSpec],
                 limits: sandbox.Limits) -> None:
        """``spec_for(folder) -> sandbox.ChildSpec`` builds the zygote's sandbox spec."""
        self.folder = folder
        self._spec_for = spec_for
        self._limits = limits
        self.proc: subprocess.Popen | None = None
        # The zygote and every child it forks run in one memory cgroup (where the machine
        # allows one); before each fork its limit is set to --memory above what the zygote
        # holds, so each submission gets --memory for all its processes together.
        self.memory_group: cgroup.MemoryCgroup | None = None
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: processes.OutputCapture | None = None
        self.starts = 0

    # -- life cycle

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        """Start the zygote unless one is running and ready.

        Raises:
            WorkerError: it exited or did not get ready within READY_TIMEOUT.
        """
        if self.alive():
            return
        self.destroy()
        self.folder.mkdir(mode=0o711, exist_ok=True)
        self._messages = queue.Queue()
        self.memory_group = cgroup.MemoryCgroup.create(self._limits.memory_mb * 2**20, "warm")
        self.proc = sandbox.start(self._spec_for(self.folder), mode="bwrap", limits=self._limits,
                                  identity=uids.Identity(None, None), control=True,
                                  memory_group=self.memory_group)
        self.starts += 1
        threading.Thread(target=self._read_messages, args=(self.proc.stdout, self._messages),
                         daemon=True).start()
        self._stderr = processes.OutputCapture(self.proc.stderr, 64 * 1024)
        self._stderr.start()
        reply = self._reply("ready", READY_TIMEOUT)
        if reply is None or not reply.get("ready"):
            detail = reply.get("error") if reply else "no answer"
            self.destroy()
            raise WorkerError(f"the warm worker did not start ({detail}); its output ends "
                              f"with:\n{self.stderr()[-1500:]}")

    def destroy(self) -> None:
        """Kill the zygote's sandbox (every process in it) and forget it."""
        if self.proc is None:
            return
        processes.kill_tree(self.proc, uids.Identity(None, None))
        processes.wait(self.proc, STOP_TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc = None
        if self.memory_group is not None:
            self.memory_group.remove()
            self.memory_group = None

    def shutdown(self) -> None:
        """Ask the zygote to exit (end of the batch); kill it if it does not."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        processes.wait(self.proc, STOP_TIMEOUT)
        self.destroy()

    def stderr(self) -> str:
        return self._stderr.text() if self._stderr is not None else ""

    # -- messages

    @staticmethod
    def _read_messages(stream: Any, messages: queue.Queue) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    messages.put(message)
        messages.put(None)  # end of stream: the zygote is gone

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError, AttributeError):
            return False

    def _reply(self, key: str, timeout: float) -> dict[str, Any] | None:
        """The next message holding ``key`` (or an error); None on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if message is None:
                self._messages.put(None)  # keep the end visible to later calls
                return None
            if key in message or "error" in message:
                return message

    # -- children

    def fork(self, argv: list[str], env: dict[str, str], limits: sandbox.Limits,
             log: Path) -> ForkedChild:
        """Run ``grader.probe.child.main(argv)`` in a child forked from the zygote.

        Raises:
            WorkerError: the zygote did not take the request.
        """
        self.ensure()
        if self.memory_group is not None:
            try:
                self.memory_group.limit_above_current(limits.memory_mb * 2**20)
            except OSError as exc:
                self.destroy()
                raise WorkerError(f"the warm worker's memory limit could not be set ({exc})") \
                    from exc
        request = {"op": "run", "argv": argv, "env": env, "rlimits": limits.rlimits()}
        if not self._send(request) or self._reply("started", REPLY_TIMEOUT) is None:
            self.destroy()
            raise WorkerError("the warm worker did not start a child; it is restarted for the "
                              "next one")
        return ForkedChild(self, log, self.memory_group)


class ForkedChild:
    """A running child of a :class:`WarmWorker`, handled like a ``Popen`` by the batch."""

    def __init__(self, worker: WarmWorker, log: Path,
                 memory_group: cgroup.MemoryCgroup | None = None) -> None:
        self.worker, self.log = worker, log
        self.memory_group = memory_group  # the zygote's, limited for this child
        self.returncode: int | None = None
        self.peak_memory: int | None = None
        self.out_of_memory = False

    def poll(self) -> tuple[int | None, int | None]:
        """``(exit code, peak memory in bytes)`` once the child has ended, else ``(None, None)``."""
        if self.returncode is None:
            self._take(self.worker._reply("exited", 0.0))
        return self.returncode, self.peak_memory

    def stop(self) -> tuple[int | None, int | None]:
        """Kill the child if it still runs and wait for the zygote's report; ``(exit code,
        peak memory)``: the cgroup's peak above the zygote's own where there is one."""
        if self.returncode is None:
            self.worker._send({"op": "kill"})
            self._take(self.worker._reply("exited", STOP_TIMEOUT), give_up=True)
        group, self.memory_group = self.memory_group, None
        if group is not None:
            self.out_of_memory = group.out_of_memory()
            self.peak_memory = group.peak() or self.peak_memory
        return self.returncode, self.peak_memory

    def _take(self, message: dict[str, Any] | None, give_up: bool = False) -> None:
        if message is not None and "exited" in message:
            self.returncode = int(message["exited"])
            peak = message.get("peak_memory")
            self.peak_memory = int(peak) if isinstance(peak, int) else None
        elif message is not None or not self.worker.alive() or give_up:
            # The zygote failed or is gone (a student may kill its parent): the whole
            # sandbox goes, and the next request starts a fresh one.
            self.worker.destroy()
            self.returncode = -9

    def output(self, cap: int) -> str:
        """The first and last ``cap // 2`` bytes of the child's log, read without following links."""
        return read_log(self.log, cap)


def read_log(path: Path, cap: int) -> str:
    half = max(1024, cap // 2)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        head = os.read(fd, half)
        if info.st_size <= 2 * half:
            rest = os.read(fd, 2 * half)
            return (head + rest).decode("utf-8", "replace")
        os.lseek(fd, info.st_size - half, os.SEEK_SET)
        tail = os.read(fd, half)
        cut = info.st_size - len(head) - len(tail)
        return (head.decode("utf-8", "replace") + f"\n[... {cut} bytes of output cut ...]\n"
                + tail.decode("utf-8", "replace"))
    finally:
        os.close(fd)
