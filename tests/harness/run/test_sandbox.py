"""The child's isolation: resource limits, identity, bubblewrap's view, safe read-back.

Most tests start a tiny Python script (no torch) under :func:`grader.run.sandbox.start`,
so they cost milliseconds; the two that look through a real submission's eyes
grade one task with ``lab3 grade``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.cli import main
from grader.probe.records import Record
from grader.run import processes, sandbox, uids
from grader.run.processes import OutputCapture
from grader.run.readback import read_child_record

REPO = Path(__file__).resolve().parents[3]
BWRAP_PROBLEM = sandbox.bwrap_problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"{BWRAP_PROBLEM}")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch folder the unprivileged child can reach (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="lab3-sandbox-test-"))
    folder.chmod(0o711)
    (folder / "work").mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _identity(mode: str = "none") -> uids.Identity:
    reachable = uids.readable_by_others(uids.python_paths())
    uid = uids.UidPool().take() if uids.is_root() else 0
    return uids.identity_for(mode, uid=uid, python_reachable=reachable)


def _start(scratch: Path, script: str, limits: sandbox.Limits, identity: uids.Identity):
    uids.give_to(scratch / "work", identity)
    spec = sandbox.ChildSpec(argv=[sys.executable, "-I", "-c", script], scratch=scratch,
                             readonly=(), hidden=(), env={"PATH": "/usr/bin:/bin"},
                             cwd=scratch / "work")
    return sandbox.start(spec, mode="none", limits=limits, identity=identity)


def _run(scratch: Path, script: str, limits: sandbox.Limits) -> tuple[int, str]:
    identity = _identity()
    proc = _start(scratch, script, limits, identity)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        processes.kill_tree(proc, identity)
    return proc.returncode, out.decode(errors="replace")


def test_memory_limit_turns_a_huge_allocation_into_memory_error(scratch: Path) -> None:
    code, out = _run(scratch, "b = bytearray(3 * 2**30)", sandbox.Limits(memory_mb=1024))
    assert code != 0 and "MemoryError" in out


def test_no_core_files_and_a_file_size_limit(scratch: Path) -> None:
    script = ("import resource, signal\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "print(resource.getrlimit(resource.RLIMIT_CORE))\n"
              "open('big', 'wb').write(b'x' * (3 * 2**20))\n")
    code, out = _run(scratch, script, sandbox.Limits(file_size_mb=1))
    assert "(0, 0)" in out
    assert code != 0 and "File too large" in out


@pytest.mark.skipif(uids.is_root() and not _identity().dedicated,
                    reason="running as root without a way to drop privileges here")
def test_process_limit_stops_a_fork_bomb(scratch: Path) -> None:
    script = ("import os, time\n"
              "n = 0\n"
              "for _ in range(300):\n"
              "    try:\n"
              "        pid = os.fork()\n"
              "    except OSError:\n"
              "        break\n"
              "    if pid == 0:\n"
              "        time.sleep(60)\n"
              "        os._exit(0)\n"
              "    n += 1\n"
              "print('forked', n, flush=True)\n")
    identity = _identity()
    proc = _start(scratch, script, sandbox.Limits(processes=16), identity)
    try:
        line = proc.stdout.readline().decode()  # the sleepers keep the pipe open
    finally:
        processes.kill_tree(proc, identity)
        proc.wait(timeout=10)
    assert int(line.split()[1]) < 16


@pytest.mark.skipif(not _identity().dedicated, reason="needs root (a dedicated sandbox uid)")
def test_kill_tree_reaches_processes_that_left_the_group(scratch: Path) -> None:
    identity = _identity()
    script = ("import os, time\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    os.setsid()\n"
              "    time.sleep(120)\n"
              "    os._exit(0)\n"
              "print(pid, flush=True)\n"
              "time.sleep(120)\n")
    proc = _start(scratch, script, sandbox.Limits(), identity)
    escaped = int(proc.stdout.readline())
    assert processes.uid_processes(identity.uid)
    processes.kill_tree(proc, identity)
    proc.wait(timeout=10)
    assert escaped not in processes.uid_processes(identity.uid)
    assert processes.uid_processes(identity.uid) == []


def test_output_is_capped(scratch: Path) -> None:
    script = "import sys\nfor _ in range(5000): sys.stdout.write('x' * 1023 + '\\n')\n"
    proc = _start(scratch, script, sandbox.Limits(), _identity())
    capture = OutputCapture(proc.stdout, 16 * 1024)
    capture.start()
    proc.wait(timeout=60)
    capture.join(timeout=10)
    assert capture.total == 5000 * 1024
    text = capture.text()
    assert len(text) < 20 * 1024 and "bytes of output cut" in text


@pytest.mark.skipif(not uids.is_root(), reason="uid pool only used as root")
def test_uid_pool_gives_fresh_uids() -> None:
    pool = uids.UidPool()
    taken = [pool.take() for _ in range(5)]
    assert len(set(taken)) == 5
    assert all(u >= uids.uid_base() for u in taken)


def test_kill_uid_refuses_system_uids() -> None:
    with pytest.raises(ValueError, match="system uid"):
        processes.kill_uid(0)


def test_describe_signal() -> None:
    assert processes.describe_signal(-9) == "killed by SIGKILL"
    assert processes.describe_signal(3) == "exit code 3"


def test_bwrap_required_but_missing_is_a_sandbox_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="not installed"):
        sandbox.resolve_mode("bwrap")
    mode, warning = sandbox.resolve_mode("auto")
    assert mode == "none" and "--sandbox none" in warning


def test_bwrap_command_shows_only_what_the_child_needs(tmp_path: Path) -> None:
    readonly = tmp_path / "ro"
    (readonly / "secret").mkdir(parents=True)
    weights = readonly / "weights.pth"
    weights.write_bytes(b"w")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = sandbox.ChildSpec(argv=["python"], scratch=scratch, readonly=(weights, readonly),
                             hidden=(REPO / "reference", readonly / "secret"), env={},
                             cwd=scratch)
    cmd = sandbox.bwrap_command(spec)
    pairs = {(cmd[i], cmd[i + 1]) for i in range(len(cmd) - 1)}
    assert ("--ro-bind", str(REPO / "grader")) in pairs
    assert ("--ro-bind", str(readonly)) in pairs
    assert not any(p[1].startswith(str(REPO / "reference")) for p in pairs)
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--bind"] == [str(scratch)]
    assert ("--tmpfs", str(readonly / "secret")) in pairs  # masked inside a bound folder
    assert "--die-with-parent" in cmd
    assert "--unshare-net" in cmd or "--unshare-all" in cmd


# --------------------------------------------------------------------------- read-back


def _record_dirs(tmp_path: Path) -> tuple[Path, Path]:
    records, readback = tmp_path / "records", tmp_path / "readback"
    records.mkdir()
    readback.mkdir()
    return records, readback


def test_read_back_a_valid_record(tmp_path: Path) -> None:
    records, readback = _record_dirs(tmp_path)
    Record(task="model", data={"calls": {"x": {"ok": True}}}).save(records)
    record = read_child_record(records, readback, "model")
    assert record.data == {"calls": {"x": {"ok": True}}}


def test_read_back_refuses_a_symlink_to_someone_elses_record(tmp_path: Path) -> None:
    records, readback = _record_dirs(tmp_path)
    elsewhere = tmp_path / "reference-records"
    Record(task="model", data={"calls": {}}).save(elsewhere)
    (records / "model.json").symlink_to(elsewhere / "model.json")
    record = read_child_record(records, readback, "model")
    assert "not a regular file" in record.data["record_error"]


def test_read_back_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    records, readback = _record_dirs(tmp_path)
    os.mkfifo(records / "model.json")
    start = time.monotonic()
    record = read_child_record(records, readback, "model")
    assert "not a regular file" in record.data["record_error"]
    assert time.monotonic() - start < 5


def test_read_back_refuses_an_oversized_record(tmp_path: Path) -> None:
    records, readback = _record_dirs(tmp_path)
    from grader.probe.records import MAX_JSON_BYTES

    (records / "model.json").write_bytes(b" " * (MAX_JSON_BYTES + 1))
    record = read_child_record(records, readback, "model")
    assert "over the cap" in record.data["record_error"]


# --------------------------------------------------------------------------- a submission's view

SPY = '''
def load_model(device="cpu"):
    import os, socket
    facts = [f"uid={os.getuid()}"]
    for path in [REFERENCE, CACHE, OUT, "/etc/shadow"]:
        try:
            os.listdir(path) if os.path.isdir(path) else open(path).read(1)
            facts.append(f"read {path}: yes")
        except OSError as exc:
            facts.append(f"read {path}: {type(exc).__name__}")
    for path in [PROJECT + "/spy-was-here", OUT + "/spy-was-here", "spy-was-here"]:
        try:
            open(path, "w").write("x")
            facts.append(f"write {path}: yes")
        except OSError as exc:
            facts.append(f"write {path}: {type(exc).__name__}")
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2)
        facts.append("network: yes")
    except OSError as exc:
        facts.append(f"network: {type(exc).__name__}")
    raise RuntimeError(" | ".join(facts))
'''


def _spy(tmp_path: Path, mode: str) -> str:
    from grader.refdata.weights import cache_dir

    out = tmp_path / "out"
    folder = tmp_path / "spy"
    shutil.copytree(REPO / "student_template", folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    constants = (f"REFERENCE = {str(REPO / 'reference' / 'model.py')!r}\n"
                 f"CACHE = {str(cache_dir())!r}\nOUT = {str(out)!r}\nPROJECT = {str(REPO)!r}\n")
    with (folder / "model.py").open("a") as f:
        f.write("\n" + constants + SPY)
    assert main(["grade", str(folder), "--out", str(out), "--tasks", "model", "--sandbox", mode,
                 "--quiet"]) == 0
    import json

    results = json.loads((out / "spy" / "results.json").read_text())
    return results["tests"][0]["output"]


@needs_bwrap
def test_bwrap_child_sees_no_reference_no_cache_no_network(tmp_path: Path) -> None:
    from grader.refdata.weights import cache_dir

    facts = _spy(tmp_path, "bwrap")
    reference = REPO / "reference" / "model.py"
    assert f"read {reference}: FileNotFoundError" in facts
    assert f"read {cache_dir()}: FileNotFoundError" in facts
    assert f"read {tmp_path / 'out'}: FileNotFoundError" in facts
    assert "network: OSError" in facts
    assert f"write {REPO}/spy-was-here: yes" not in facts
    assert "write spy-was-here: yes" in facts  # its own scratch copy stays writable
    assert not (REPO / "spy-was-here").exists()
    if uids.is_root():
        assert "uid=0 " not in facts + " "


@pytest.mark.skipif(not (uids.is_root() and _identity().dedicated),
                    reason="needs root and a way to drop privileges")
def test_without_bwrap_the_child_still_runs_unprivileged(tmp_path: Path) -> None:
    facts = _spy(tmp_path, "none")
    assert not facts.startswith("uid=0 ")
    assert f"write {REPO}/spy-was-here: PermissionError" in facts
    assert f"write {tmp_path / 'out'}/spy-was-here: PermissionError" in facts
    assert not (REPO / "spy-was-here").exists()
