"""Warm workers (``lab3 grade`` under bwrap): one zygote per slot, one forked child per run.

What sharing a sandbox between consecutive submissions must not change: nothing
one submission leaves behind (a daemon, a file in ``/tmp`` or ``/dev/shm``) is
there when the next one runs; a child that kills or stops the zygote costs its own
task only; the zygote itself never ran a tensor operation before forking.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.cli import main
from grader.run import cgroup, sandbox
from grader.run.warm_worker import WarmWorker, read_log

REPO = Path(__file__).resolve().parents[3]
BWRAP_PROBLEM = sandbox.bwrap_problem()
pytestmark = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"{BWRAP_PROBLEM}")

# Appended to reference/model.py: load_model leaves a daemon and two files behind...
LEAVES_TRACES = '''
_load_model = load_model

def load_model(device="cpu"):
    import os
    from pathlib import Path
    # The worker's home lies next to this submission's folder, in the slot's folder.
    home = Path.cwd().parent.parent / "zygote-home"
    for path in ("/tmp/lab3-left-behind", "/dev/shm/lab3-left-behind",
                 str(home / "lab3-left-behind"), str(home / "mpl" / "lab3-left-behind")):
        try:
            open(path, "w").close()
        except OSError:
            pass
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "31338"])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return _load_model(device)
'''
# ...and this one refuses to work if it can see any of them.
LOOKS_FOR_TRACES = '''
_load_model = load_model

def load_model(device="cpu"):
    import os
    from pathlib import Path
    home = Path.cwd().parent.parent / "zygote-home"
    seen = [p for p in ("/tmp/lab3-left-behind", "/dev/shm/lab3-left-behind",
                        str(home / "lab3-left-behind"), str(home / "mpl" / "lab3-left-behind"))
            if os.path.exists(p)]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"31338" in f.read():
                    seen.append(f"process {pid}")
        except OSError:
            pass
    if seen:
        raise RuntimeError(f"left behind by the previous submission: {seen}")
    return _load_model(device)
'''


def _variant(root: Path, name: str, source: str) -> Path:
    folder = root / name
    shutil.copytree(REPO / "reference", folder, ignore=shutil.ignore_patterns("__pycache__"))
    model = folder / "model.py"
    model.write_text(model.read_text() + "\n" + source)
    return folder


def _model_points(out: Path, name: str) -> tuple[float, str]:
    entry = json.loads((out / name / "report.json").read_text())
    task = entry["tasks"]["model"]
    return task["score"], str(task.get("problem"))


def test_nothing_one_submission_leaves_behind_is_there_for_the_next(tmp_path: Path) -> None:
    first = _variant(tmp_path, "a_leaves_traces", LEAVES_TRACES)
    second = _variant(tmp_path, "b_looks_for_traces", LOOKS_FOR_TRACES)
    out = tmp_path / "out"
    # One worker: the second submission's child is forked from the same zygote, in the
    # same sandbox, right after the first one's.
    assert main(["grade", str(first), str(second), "--out", str(out), "--tasks", "model",
                 "-j", "1", "--sandbox", "bwrap", "-q"]) == 0
    assert _model_points(out, "a_leaves_traces")[0] == 10
    score, problem = _model_points(out, "b_looks_for_traces")
    assert score == 10, problem


MEMORY_GUARDS = ["cgroup", "watchdog"] if cgroup.available() else ["watchdog"]


@pytest.mark.parametrize("guard", MEMORY_GUARDS)
def test_the_log_line_names_the_peak_memory_of_each_child(
        tmp_path: Path, guard: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if guard == "watchdog":
        monkeypatch.setattr(cgroup.MemoryCgroup, "create", classmethod(lambda *_: None))
    out = tmp_path / "out"
    assert main(["grade", "student_template", "--out", str(out), "--tasks", "model",
                 "--sandbox", "bwrap", "-q"]) == 0
    entry = json.loads((out / "student_template" / "report.json").read_text())
    assert entry["resources"]["children"] == 1
    peak = entry["resources"]["peak_memory_mib"]
    if guard == "cgroup":
        # The cgroup charges the child only the pages it adds to the zygote's: the
        # template's model task holds a few MB beyond the torch the zygote imported.
        assert 0 < peak < 100
    else:
        # A forked child's resident set includes the pages it shares with the zygote
        # (torch and friends, about 0.8 GB): the figure is the whole worker's.
        assert 100 < peak < 4096
    assert "peak memory" in (out / "student_template" / "log.txt").read_text()


def test_a_worker_that_cannot_start_leaves_fresh_children_to_grade(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from grader.run.warm_worker import WorkerError

    def broken(self) -> None:
        raise WorkerError("the warm worker did not start (simulated)")

    monkeypatch.setattr(WarmWorker, "ensure", broken)
    out = tmp_path / "out"
    assert main(["grade", "reference", "--out", str(out), "--tasks", "model",
                 "--sandbox", "bwrap", "-q"]) == 0
    assert _model_points(out, "reference")[0] == 10
    assert "warm workers unavailable" in capsys.readouterr().err
    assert "simulated" in (out / "reference" / "log.txt").read_text()


# --------------------------------------------------------------------------- the worker itself


@pytest.fixture
def slot() -> Iterator[Path]:
    """A slot folder the sandbox uids can traverse (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="lab3-warm-test-"))
    folder.chmod(0o711)
    try:
        yield folder / "slot-0"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _worker(folder: Path) -> WarmWorker:
    from grader.refdata.weights import resolve_weights

    weights = resolve_weights("standin")

    def spec_for(slot: Path) -> sandbox.ChildSpec:
        # It builds the model too, as in a batch: the thread test below covers that.
        args = ["--folder", str(slot), "--weights-kind", weights.kind,
                "--weights-path", str(weights.path), "--weights-sha256", weights.sha256]
        return sandbox.ChildSpec(
            argv=sandbox.child_python(args, module="grader.run.warm_worker_process"),
            scratch=slot, readonly=(weights.path,), hidden=(), cwd=slot,
            env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": str(slot),
                 "MPLCONFIGDIR": str(slot / "mpl"), "OMP_NUM_THREADS": "1"},
            capabilities=("CAP_KILL", "CAP_FOWNER", "CAP_DAC_OVERRIDE"),
        )

    return WarmWorker(folder, spec_for, sandbox.Limits())


def _child_argv(slot: Path, name: str) -> tuple[list[str], Path]:
    """grader.probe.child arguments for a submission ``name`` whose model.py loops at import."""
    from grader.refdata.weights import resolve_weights

    weights = resolve_weights("standin")
    sub = slot / name
    for part in ("submission", "records", "probe", "output"):
        (sub / part).mkdir(parents=True)
    (sub / "submission" / "model.py").write_text("while True:\n    pass\n")
    argv = ["--impl", str(sub / "submission"), "--records", str(sub / "records"),
            "--scratch", str(sub / "probe"), "--tasks", "model",
            "--weights-kind", weights.kind, "--weights-path", str(weights.path),
            "--weights-sha256", weights.sha256, "--settings", "{}",
            "--cwd", str(sub / "submission"), "--log", str(sub / "output" / "log")]
    return argv, sub / "output" / "log"


def test_a_dead_zygote_costs_the_running_child_and_is_started_again(slot: Path) -> None:
    worker = _worker(slot)
    try:
        argv, log = _child_argv(slot, "first")
        child = worker.fork(argv, {"PATH": "/usr/bin:/bin"}, sandbox.Limits(), log)
        assert child.poll() == (None, None)  # looping at import
        os.killpg(worker.proc.pid, signal.SIGKILL)  # as a student sharing its uid could
        worker.proc.wait(timeout=30)
        returncode, _ = child.stop()
        assert returncode == -9
        argv, log = _child_argv(slot, "second")
        child = worker.fork(argv, {"PATH": "/usr/bin:/bin"}, sandbox.Limits(), log)
        assert worker.starts == 2
        returncode, peak = child.stop()
        assert returncode == -9 and peak is not None and peak > 0
    finally:
        worker.shutdown()


def test_a_stopped_zygote_is_replaced_after_the_stop_timeout(
        slot: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grader.run.warm_worker as warm

    monkeypatch.setattr(warm, "STOP_TIMEOUT", 2.0)
    worker = _worker(slot)
    try:
        argv, log = _child_argv(slot, "first")
        child = worker.fork(argv, {"PATH": "/usr/bin:/bin"}, sandbox.Limits(), log)
        zygote = worker.proc
        os.killpg(zygote.pid, signal.SIGSTOP)  # it can no longer answer "kill"
        assert child.stop()[0] == -9
        assert worker.proc is None and zygote.poll() is not None
    finally:
        worker.shutdown()


def test_the_zygote_has_not_started_openmp_threads_before_forking(slot: Path) -> None:
    worker = _worker(slot)
    try:
        worker.ensure()
        # One thread: forking a process whose OpenMP pool exists leaves the child's pool
        # broken (GNU libgomp), so the zygote must never have run a tensor operation.
        tasks = _tasks_of_namespace_pid(worker.proc.pid)
        assert tasks == 1
    finally:
        worker.shutdown()


def _tasks_of_namespace_pid(bwrap_pid: int) -> int:
    """Thread count of the Python process under ``bwrap_pid`` (bwrap -> init -> python)."""
    def children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    frontier = [bwrap_pid]
    while frontier:
        pid = frontier.pop()
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if "python" in Path(exe).name:
            return len(os.listdir(f"/proc/{pid}/task"))
        frontier += children(pid)
    raise AssertionError("no Python process under the worker's bwrap")


def test_a_log_is_read_without_following_a_link(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not show")
    (tmp_path / "log").symlink_to(secret)
    assert read_log(tmp_path / "log", 1024) == ""


def test_a_long_log_keeps_its_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"H" * 4096 + b"x" * 100_000 + b"T" * 4096)
    text = read_log(path, 8192)
    assert text.startswith("H" * 4096) and text.endswith("T" * 4096)
    assert "100000 bytes of output cut" in text


def test_the_slot_folder_survives_the_cleaning_of_tmp(slot: Path) -> None:
    # The batch's work folder usually lies below /tmp, which the zygote empties
    # between children: the slot's own folder is bound there and must stay.
    worker = _worker(slot)
    try:
        argv, log = _child_argv(slot, "first")
        marker = slot / "keep-me"
        marker.write_text("x")
        child = worker.fork(argv, {"PATH": "/usr/bin:/bin"}, sandbox.Limits(), log)
        threading.Event().wait(0.5)
        child.stop()
        assert marker.exists()
    finally:
        worker.shutdown()


def test_the_zygote_refuses_to_run_outside_bubblewrap(tmp_path: Path) -> None:
    # Its sweep kills every process it can signal: outside a sandbox that would be the
    # user's whole session.
    import subprocess

    done = subprocess.run(sandbox.child_python(["--folder", str(tmp_path)],
                                               module="grader.run.warm_worker_process"),
                          input=b"", capture_output=True, timeout=120, check=False)
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "error": "grader.run.warm_worker_process runs only inside bubblewrap's PID namespace"}
