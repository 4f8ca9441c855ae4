"""The submission's memory cgroup: the kernel holds ``--memory`` for all its processes.

Each test starts tiny Python processes (no torch) in a fresh group, so they cost about a
second; they skip where this machine does not let the grader create a memory cgroup (not
root, no memory controller), where the batch relies on its watchdog instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.run import cgroup, sandbox, uids

MB = 2**20


needs_cgroup = pytest.mark.skipif(
    not cgroup.available(),
    reason="this machine does not let the grader create a memory cgroup (root and a memory "
           "controller are needed); the batch uses its watchdog there")

# Touches every page, so the memory is resident (charged), not only mapped.
HOG = "b = bytearray({mb} * 2**20); import time; time.sleep(3)"


@pytest.fixture
def group() -> Iterator[cgroup.MemoryCgroup]:
    made = cgroup.MemoryCgroup.create(300 * MB, "test")
    assert made is not None
    try:
        yield made
    finally:
        made.remove()


def _start(script: str, group: cgroup.MemoryCgroup) -> subprocess.Popen:
    spec = sandbox.ChildSpec(argv=[sys.executable, "-I", "-c", script], scratch=Path("/tmp"),
                             readonly=(), hidden=(), env={"PATH": "/usr/bin:/bin"},
                             cwd=Path("/tmp"))
    return sandbox.start(spec, mode="none", limits=sandbox.Limits(memory_mb=4096),
                         identity=uids.Identity(None, None), memory_group=group)


# Three processes of 120 MB: each far under its own 4 GB RLIMIT_AS, together over 300 MB.
SPAWNER = (
    "import subprocess, sys\n"
    f"hog = {HOG.format(mb=120)!r}\n"
    "procs = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(3)]\n"
    "print([p.wait() for p in procs], flush=True)\n"
)


@needs_cgroup
def test_the_limit_holds_for_all_processes_together(group: cgroup.MemoryCgroup) -> None:
    proc = _start(SPAWNER, group)
    out, _ = proc.communicate(timeout=60)
    assert group.out_of_memory()
    assert b"-9" in out  # the kernel killed one of the three


@needs_cgroup
def test_processes_under_the_limit_together_run_untouched(group: cgroup.MemoryCgroup) -> None:
    proc = _start(HOG.format(mb=100).replace("time.sleep(3)", "print('ok')"), group)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"ok" in out
    assert not group.out_of_memory()


@needs_cgroup
def test_the_peak_counts_every_process_of_the_group(group: cgroup.MemoryCgroup) -> None:
    two = ("import subprocess, sys\n"
           f"hog = {HOG.format(mb=100).replace('time.sleep(3)', 'time.sleep(0.5)')!r}\n"
           "procs = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(2)]\n"
           "[p.wait() for p in procs]\n")
    _start(two, group).communicate(timeout=60)
    peak = group.peak()
    assert peak is not None and 200 * MB < peak <= 300 * MB


@needs_cgroup
def test_a_limit_above_the_current_charge_leaves_the_charge_out_of_the_peak(
        group: cgroup.MemoryCgroup) -> None:
    # What a warm worker does before each child: its own pages are not the child's.
    holder = _start(HOG.format(mb=100), group)
    try:
        while group.usage() < 100 * MB:
            assert holder.poll() is None
        group.limit_above_current(150 * MB)
        _start(HOG.format(mb=120).replace("time.sleep(3)", "print('ok')"), group).wait(60)
        assert not group.out_of_memory()
        peak = group.peak()
        assert peak is not None and 100 * MB < peak < 150 * MB
        _start(HOG.format(mb=200), group).wait(60)
        assert group.out_of_memory()
    finally:
        holder.kill()
        holder.wait()


@needs_cgroup
def test_removing_a_group_kills_what_is_left_in_it() -> None:
    made = cgroup.MemoryCgroup.create(300 * MB, "test")
    assert made is not None
    # A grandchild in its own session, orphaned: no process tree leads to it any more.
    proc = _start("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                  "'import time; time.sleep(60)'], start_new_session=True)\n", made)
    proc.wait(60)
    assert made.processes()
    made.remove()
    assert not made.folder.exists()


@needs_cgroup
def test_groups_left_by_a_dead_grader_are_swept() -> None:
    found = cgroup.own_group()
    assert found is not None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = found[1] / f"lab3-{dead}-slot0-0"
    stale.mkdir()
    live = found[1] / f"lab3-{os.getpid()}-slot0-999"
    live.mkdir()
    try:
        cgroup.sweep_stale(found[1])
        assert not stale.exists()
        assert live.exists()
    finally:
        for folder in (stale, live):
            if folder.exists():
                folder.rmdir()


def test_no_group_where_the_machine_allows_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroup, "own_group", lambda: None)
    assert cgroup.MemoryCgroup.create(300 * MB) is None


@needs_cgroup
@pytest.mark.parametrize("mb", [100, 600, 200])
def test_the_limit_can_be_raised_and_lowered(group: cgroup.MemoryCgroup, mb: int) -> None:
    group.set_limit(mb * MB)
    proc = _start(HOG.format(mb=mb - 50).replace("time.sleep(3)", "print('ok')"), group)
    assert proc.wait(60) == 0
    group.set_limit(50 * MB)
    assert _start(HOG.format(mb=mb), group).wait(60) == -9
