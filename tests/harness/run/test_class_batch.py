"""A class of 200 generated submissions, interrupted with SIGINT halfway and resumed.

Marked ``scale`` (minutes of CPU): not in ``make test``; run it with
``pytest -m scale tests/harness/run/test_class_batch.py``. It must end with one correct row per
submission, nothing graded twice, and no control character from a name on the terminal.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.class_batch import generate_class

REPO = Path(__file__).resolve().parents[3]
SIZE = 200

pytestmark = pytest.mark.scale


def _command(specs: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", *specs, "--out", str(out), "-j", "2",
            "--tasks", "model,answers", "--variant", "practice", "-q"]


def _graded(out: Path) -> dict[str, int]:
    return {f.name: (f / "results.json").stat().st_mtime_ns
            for f in out.iterdir() if (f / "results.json").is_file()}


def test_a_class_interrupted_halfway_resumes_to_one_correct_row_each(tmp_path: Path) -> None:
    expected = generate_class(tmp_path / "class", SIZE)
    specs = [e.spec for e in expected]
    out = tmp_path / "grades"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(_command(specs, out), cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1800
    while (not out.is_dir() or len(_graded(out)) < SIZE // 2) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err.decode()[-2000:]
    before = _graded(out)
    assert SIZE // 2 <= len(before) < SIZE

    again = subprocess.run(_command(specs, out), cwd=tmp_path, env=env, capture_output=True,
                           timeout=3600, check=False)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert b"\x1b" not in again.stdout + again.stderr
    after = _graded(out)
    assert {n: after[n] for n in before} == before  # nothing graded twice

    with (out / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SIZE
    by_source = {}
    for folder in out.iterdir():
        if (folder / "report.json").is_file():
            entry = json.loads((folder / "report.json").read_text())
            by_source[entry["source"]["path"]] = entry
    for e in expected:
        entry = by_source[str(Path(e.spec).absolute() if Path(e.spec).is_symlink()
                              else Path(e.spec).resolve())]
        assert entry["tasks"]["model"]["score"] == e.model_points, (e.spec, entry["problems"])
        if e.problem:  # in the row's problems, or in Task 1's first problem
            shown = " ".join([*entry["problems"], str(entry["tasks"]["model"].get("problem"))])
            assert e.problem in shown, (e.spec, shown)
