"""One child of ``lab3 grade`` (:mod:`grader.run.submission_run`), as the parent sees it.

:class:`Attempt`: what one child did (its exit, the tasks it finished, where it stopped and
why, its time and peak memory). :class:`FreshChild`: the handle on a child started afresh
(``--sandbox none``, or once a warm worker failed), the same interface as
:class:`grader.run.warm_worker.ForkedChild`. :func:`describe_exit` and :func:`crash_message`
put an attempt's end into words for the log and the student's feedback.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from grader.run import cgroup, processes, sandbox, uids
from grader.run.processes import OutputCapture


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
    # the sampled sum of all processes of its uid (processes.uid_memory) where it has a uid of
    # its own, else the kernel's ru_maxrss of the child
    peak_memory: int | None = None


class FreshChild:
    """A child started afresh (``--sandbox none``): its process, output reader, memory and,
    where the machine allows one, the memory cgroup all its processes run in."""

    def __init__(self, proc: subprocess.Popen, identity: uids.Identity, cap: int,
                 memory_group: cgroup.MemoryCgroup | None = None) -> None:
        self.proc, self.identity = proc, identity
        self.memory_group = memory_group
        self.reader = OutputCapture(proc.stdout, cap)
        self.reader.start()
        self.peak_memory: int | None = None
        self.out_of_memory = False

    def poll(self) -> tuple[int | None, int | None]:
        returncode, peak = processes.poll(self.proc)
        if peak is not None:
            self.peak_memory = peak
        return returncode, self.peak_memory

    def stop(self) -> tuple[int | None, int | None]:
        """Kill the whole tree, reap the child; ``(exit code or None, peak memory)``: the
        cgroup's peak (every process of the submission) where there is one."""
        processes.kill_tree(self.proc, self.identity)
        if self.proc.returncode is None:
            _, peak = processes.wait(self.proc, timeout=10)
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


def describe_exit(run: Attempt) -> str:
    if run.stopped:
        return run.stopped.replace("-", " ")
    if run.returncode is None:
        return "killed after finishing"
    return processes.describe_signal(run.returncode)


def crash_message(run: Attempt, limits: sandbox.Limits) -> str:
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
            f"({processes.describe_signal(code)}){hint}.{tail}")
