"""The hostile-and-broken submissions corpus (``fixtures/submissions/``) through ``lab3 grade``.

One batch (``-j 2``, the sandbox on: bubblewrap where it works) grades every case, each
built from its overlay by ``fixtures/submissions/build.py``; the tests then read the
outputs: every case's expected checks and feedback; that the honest cases next to
hostile ones keep their exact points; that no process of a submission outlives the
batch; that nothing outside the submissions' scratch folders was written; that every
case has its row in summary.csv (links, unpackable zips, notebooks over a bound
included), answers.csv only the grader's questions with every cell neutralised and
quoted, every feedback page its control characters escaped, and that no System V segment
outlives the batch. A second, smaller batch grades the cases that do not depend on the
file-system sandbox with ``--sandbox none``; a third is killed midway and resumed. No
test asserts a duration: a hang would show as the batch never ending (the per-task limit
is 20 s here).

Points are stated in checks, never typed (issue 16): an expected.json's ``"tasks"`` says,
per task, ``"full"`` (every check earns its points in grader/points.py), ``"zero"``, or
``{"fail": [checks earning 0], "partial": {check: fraction of its points}}`` (every other
check its full points); each check's score is asserted, and the task's as their sum, so
moving a point in the table touches no corpus file. ``"at_most"`` (``{task: [checks]}``:
only these may earn points) is kept for the attacks whose outcome depends on the machine
(memory, processes, signals: what the allocation, the fork or the kill reaches first), where
an exact expectation would pass on one machine and fail on another.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from grader.cli import main
from grader.points import checks_of
from grader.run import processes, sandbox, uids
from tests.harness.table import check_points, expected_check_points, task_points

REPO = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("corpus_build",
                                               REPO / "fixtures" / "submissions" / "build.py")
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus  # dataclasses look their module up there
_spec.loader.exec_module(corpus)

CASES = {case.name: case for case in corpus.cases()}
TASKS: tuple[str, ...] = corpus.TASKS
TASK_TIMEOUT = 20
MEMORY_MB = 6144  # below the 8 GB default: the memory case maps (never touches) this much
BWRAP = sandbox.bwrap_problem() is None
MODE = "bwrap" if BWRAP else "none"


def _dedicated_uid() -> bool:
    reachable = uids.readable_by_others(uids.python_paths())
    identity = uids.identity_for("none", uid=uids.uid_base(), python_reachable=reachable)
    return uids.is_root() and identity.dedicated


# Cases that signal, fork or daemonize are only safe where a submission cannot reach the
# test's own processes: in bwrap's PID namespace, or as a dedicated uid (root runs).
ISOLATED = BWRAP or _dedicated_uid()
ISOLATED_NONE = _dedicated_uid()
# The --sandbox none batch: every case whose outcome does not depend on the file-system
# sandbox (the "except the file-system and network cases"), on every corpus task.
NONE_TASKS = TASKS
NONE_CASES = tuple(name for name, case in CASES.items() if "filesystem" not in case.flags)
# What an expected.json may hold (fixtures/submissions/build.py says what each means). No
# "points": each task's points are stated in checks ("tasks", "at_most") and computed from
# the table, so that moving a point in grader/points.py touches no corpus file.
KEYS = {"description", "base", "delete", "links", "archive", "flags", "tasks", "at_most",
        "mentions", "same_points_as", "status", "problems", "log", "feedback_html",
        "answers_csv"}
ORPHAN_MARK = "31337"  # the orphan case's daemon runs `sleep 31337`
PWNED = Path("/tmp/lab3-corpus-pwned.txt")  # what write_outside writes to its /tmp


def skip_reason(case: corpus.Case, mode: str) -> str | None:
    if "isolation" in case.flags and not (ISOLATED if mode == "bwrap" else ISOLATED_NONE):
        return "forks/signals: only run where submissions cannot reach this process"
    if "filesystem" in case.flags and mode != "bwrap":
        return "file-system case: protected only by bubblewrap"
    if "no_cuda" in case.flags and torch.cuda.is_available():
        return "expects a machine without CUDA"
    return None


# --------------------------------------------------------------------------- helpers


@dataclass
class CorpusRun:
    code: int
    out: Path
    tasks: tuple[str, ...]
    names: list[str]
    survivors: list[str]
    before: dict[str, tuple[int, int]]
    after: dict[str, tuple[int, int]]

    def entry(self, name: str) -> dict[str, Any]:
        return json.loads((self.out / name / "report.json").read_text())

    def checks(self, name: str, task: str) -> dict[str, dict[str, Any]]:
        for result in self.entry(name)["report"]["tasks"]:
            if result["task"] == task:
                return {c["name"]: c for c in result["checks"]}
        raise KeyError(task)

    def check_scores(self, name: str, task: str) -> dict[str, float]:
        """Each check of ``task`` in the case's report.json, with the score it earned."""
        return {check: c["score"] for check, c in self.checks(name, task).items()}

    def answers_rows(self) -> list[list[str]]:
        with (self.out / "answers.csv").open(newline="", encoding="utf-8") as f:
            return list(csv.reader(f))

    def feedback(self, name: str, task: str) -> str:
        """Everything the student is told about ``task``: check messages and problems."""
        entry = self.entry(name)
        parts = [c["message"] for c in self.checks(name, task).values()]
        parts.append(json.dumps(entry["tasks"][task]))
        return " | ".join(parts)


def _watched_files() -> dict[str, tuple[int, int]]:
    """(mtime, size) of the files no submission may change: reference/, the template,
    the fixtures (other engineers edit grader/ and benchmarks/ meanwhile: not watched)."""
    found = {}
    for top in ("reference", "student_template", "fixtures"):
        for path in (REPO / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                info = path.stat()
                found[str(path.relative_to(REPO))] = (info.st_mtime_ns, info.st_size)
    return found


def _leftover_processes(names: list[str]) -> list[str]:
    """Live processes a submission may have left: the orphan case's daemon, or anything
    started in one of these cases' scratch folders (``.../00003-<case>/submission``).

    Matched by command line, not by the sandbox uids: other batches (other test runs)
    may be grading at the same time with the same uid range.
    """
    marks = [f"-{name}/".encode() for name in names]
    found = []
    for pid in processes.live_pids():
        uid, zombie = processes.uid_state(pid)
        if uid is None or zombie or pid == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.split(b"\0")[:2] == [b"sleep", ORPHAN_MARK.encode()] or any(
                mark in cmdline for mark in marks):
            shown = cmdline.replace(b"\0", b" ")[:200]
            found.append(f"pid {pid} uid {uid}: {shown!r}")
    return found


def _kill_orphans() -> None:
    """Clean up after a failed test: SIGKILL the orphan case's daemon, by pid."""
    for pid in processes.live_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[:2] == [b"sleep", ORPHAN_MARK.encode()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _grade_corpus(root: Path, names: list[str], tasks: tuple[str, ...], mode: str) -> CorpusRun:
    built = corpus.build_all(root / "submissions", [CASES[n] for n in names])
    out = root / "out"
    out.mkdir()
    (out / "sentinel.txt").write_text("written by the test")
    PWNED.unlink(missing_ok=True)
    before = _watched_files()
    try:
        code = main(["grade", *map(str, built.values()), "--out", str(out), "--tasks",
                     ",".join(tasks), "-j", "2", "--task-timeout", str(TASK_TIMEOUT),
                     "--memory", str(MEMORY_MB), "--sandbox", mode, "--quiet"])
        survivors = _leftover_processes(names)
    finally:
        _kill_orphans()
    return CorpusRun(code, out, tasks, names, survivors, before, _watched_files())


def _selected(mode: str, names: list[str] | tuple[str, ...]) -> list[str]:
    return [n for n in names if skip_reason(CASES[n], mode) is None]


def _assert_as_expected(run: CorpusRun, name: str) -> None:
    """The case's outputs against its expected.json, points per check (see :data:`KEYS`).

    ``"tasks"``: each check earns exactly what the expectation gives it from the table
    (``tests/harness/table.py``: :func:`expected_check_points`), and the task's score is
    their sum; ``"at_most"``: only the checks named may earn points (each at most its
    table's), for the few attacks whose outcome depends on the machine.
    """
    expected = CASES[name].expected
    scores = {t: r["score"] for t, r in run.entry(name)["tasks"].items()}
    for task, expectation in expected.get("tasks", {}).items():
        if task not in run.tasks:
            continue
        want = expected_check_points(task, expectation)
        got = run.check_scores(name, task)
        wrong = [f"{check}: {got.get(check)} != {points:g}" for check, points in want.items()
                 if got.get(check) is None or not math.isclose(got[check], points)]
        wrong += [f"{check}: not in the table" for check in set(got) - set(want)]
        assert not wrong, f"{name} {task} ({expectation}): {'; '.join(wrong)}: " \
                          f"{run.feedback(name, task)[:600]}"
        assert math.isclose(scores[task], sum(want.values())), \
            f"{name} {task}: task score {scores[task]} != its checks' {sum(want.values()):g}"
    for task, may_pass in expected.get("at_most", {}).items():
        if task not in run.tasks:
            continue
        table = {c.name: c.points for c in checks_of(task)}
        got = run.check_scores(name, task)
        wrong = [f"{check}: {got.get(check)} (only {sorted(may_pass)} may earn points)"
                 for check in table if check not in may_pass and got.get(check) != 0]
        wrong += [f"{check}: {got.get(check)} > {table[check]:g}" for check in may_pass
                  if got.get(check) is None or got[check] > table[check]]
        assert not wrong, f"{name} {task}: {'; '.join(wrong)}: {run.feedback(name, task)[:600]}"
        assert scores[task] <= check_points(task, *may_pass), f"{name} {task}: {scores[task]}"
    for task, needles in expected.get("mentions", {}).items():
        if task in run.tasks:
            for needle in needles:
                assert needle in run.feedback(name, task), f"{name} {task}: no {needle!r}"
    entry = run.entry(name)
    if "status" in expected:
        assert entry["status"] == expected["status"], f"{name}: {entry['status']} {entry['problems']}"
    with (run.out / "summary.csv").open(newline="", encoding="utf-8") as f:
        (row,) = [r for r in csv.DictReader(f) if r["submission"] == name]
    for needle in expected.get("problems", []):
        assert needle in row["problems"], f"{name}: no {needle!r} in {row['problems']!r}"
    if expected.get("log"):
        log = (run.out / name / "log.txt").read_text(encoding="utf-8", errors="replace")
        for needle in expected["log"]:
            assert needle in log, f"{name}: no {needle!r} in log.txt"
    if expected.get("feedback_html"):
        page = (run.out / name / "feedback.html").read_text(encoding="utf-8")
        for needle in expected["feedback_html"]:
            assert needle in page, f"{name}: no {needle!r} in feedback.html"
    if expected.get("answers_csv"):
        header, *rows = run.answers_rows()
        (answers,) = [r for r in rows if r[0] == name]
        for prefix, start in expected["answers_csv"].items():
            (column,) = [i for i, h in enumerate(header) if h.startswith(prefix)]
            assert answers[column].startswith(start), f"{name} {prefix}: {answers[column]!r}"
    same = expected.get("same_points_as")
    if same and same["case"] in run.names:
        other = {t: r["score"] for t, r in run.entry(same["case"])["tasks"].items()}
        for task in same["tasks"]:
            if task in run.tasks:
                assert scores[task] == other[task], f"{name} {task} vs {same['case']}"


# --------------------------------------------------------------------------- hardening (fast)


def test_plain_copies_only_the_first_items_of_huge_or_lying_containers() -> None:
    from grader.probe.records import MAX_ITEMS, MAX_STRING, plain

    class LyingList(list):
        def __iter__(self):
            raise RuntimeError("never iterate me")

    class LongStr(str):
        pass

    huge = ["tench"] * 2**24  # plain() used to copy all of it before cutting
    assert plain(huge) == ["tench"] * MAX_ITEMS
    assert plain(LyingList(range(MAX_ITEMS + 5))) == list(range(MAX_ITEMS))
    assert plain(tuple(range(MAX_ITEMS + 5))) == list(range(MAX_ITEMS))
    assert len(plain({str(i): i for i in range(MAX_ITEMS + 5)})) == MAX_ITEMS
    text = plain(LongStr("x" * (MAX_STRING + 5)))
    assert type(text) is str and len(text) == MAX_STRING


def test_a_missing_function_is_a_clear_error_of_its_own_call(tmp_path: Path) -> None:
    from grader.probe.implementation import load_implementation
    from grader.probe.inputs import FIXTURES_DIR
    from grader.probe.probing import ProbeContext, call, new_record
    from grader.refdata.weights import standin_weights
    from grader.settings import DEFAULT_SETTINGS

    folder = corpus.build(CASES["missing_function"], tmp_path)
    ctx = ProbeContext(impl=load_implementation(folder), weights=standin_weights(),
                       settings=DEFAULT_SETTINGS, fixtures_dir=FIXTURES_DIR, scratch=tmp_path)
    module = ctx.module("inference")
    record = new_record("inference")
    assert call(record, "predict_batch", module.predict_batch, None, [], {}) is None
    outcome = record.data["calls"]["predict_batch"]
    assert outcome["error_type"] == "AttributeError"
    assert "inference.py defines no function predict_batch()" in outcome["message"]
    assert callable(module.predict)  # what it defines is untouched


# --------------------------------------------------------------------------- the sandboxed batch


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    names = _selected(MODE, sorted(CASES))
    return _grade_corpus(tmp_path_factory.mktemp("corpus"), names, TASKS, MODE)


def test_the_corpus_has_every_kind_of_case() -> None:
    assert len(CASES) >= 25
    honest = [n for n in CASES if n.startswith(("honest_", "partial_"))]
    assert len(honest) >= 4
    for case in CASES.values():
        expected = case.expected
        assert expected["description"]
        # Points only through checks: a typed "points" (or "max_points") would have to move
        # with every point moved in grader/points.py (issue 16).
        assert "points" not in expected and "max_points" not in expected, case.name
        assert set(expected) <= KEYS, f"{case.name}: {sorted(set(expected) - KEYS)}"
        assert set(expected.get("tasks", {})) | set(expected.get("at_most", {})) <= set(TASKS)
        assert not set(expected.get("tasks", {})) & set(expected.get("at_most", {})), case.name
        for task, expectation in expected.get("tasks", {}).items():
            expected_check_points(task, expectation)  # raises on a check not in the table
        for task, may_pass in expected.get("at_most", {}).items():
            assert set(may_pass) <= {c.name for c in checks_of(task)}, f"{case.name} {task}"


@pytest.mark.slow
def test_batch_grades_every_case(run: CorpusRun) -> None:
    assert run.code == 0
    for name in run.names:
        assert (run.out / name / "results.json").is_file(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_case_is_graded_as_expected(run: CorpusRun, name: str) -> None:
    reason = skip_reason(CASES[name], MODE)
    if reason:
        pytest.skip(reason)
    _assert_as_expected(run, name)


@pytest.mark.slow
def test_honest_submissions_keep_their_points_next_to_hostile_ones(run: CorpusRun) -> None:
    # -j 2: each honest case was graded while hostile ones ran in the other worker.
    for name in ("honest_reference_copy", "honest_rewritten"):
        entry = run.entry(name)
        assert entry["score"] == entry["max_score"] == task_points(*TASKS), name
        assert entry["problems"] == []


@pytest.mark.slow
def test_no_process_of_a_submission_survives(run: CorpusRun) -> None:
    assert run.survivors == []


@pytest.mark.slow
def test_nothing_outside_the_scratch_folders_was_written(run: CorpusRun) -> None:
    assert (run.out / "sentinel.txt").read_text() == "written by the test"
    assert run.after == run.before
    assert not list(REPO.glob("**/lab3-pwned.txt"))
    assert not list(run.out.parent.glob("**/lab3-pwned.txt"))
    if MODE == "bwrap":
        assert not PWNED.exists()  # it wrote to the sandbox's own /tmp only
        assert "WROTE /tmp/lab3-corpus-pwned.txt" in run.feedback("write_outside", "model")
    for name in run.names:
        results = json.loads((run.out / name / "results.json").read_text())
        assert results["score"] <= task_points(*TASKS), name


@pytest.mark.slow
@pytest.mark.skipif(not BWRAP, reason="reading reference/ is prevented by bubblewrap only")
def test_a_submission_reads_no_reference_no_tests_no_cache(run: CorpusRun) -> None:
    feedback = run.feedback("read_secrets", "model")
    assert "spy ran: nothing readable" in feedback
    assert "READ " not in feedback


@pytest.mark.slow
def test_every_case_has_one_row_whatever_happened_to_it(run: CorpusRun) -> None:
    # Links, unpackable zips, notebooks over a bound, crashes at import: each a row of its own.
    with (run.out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = [r["submission"] for r in csv.DictReader(f)]
    assert sorted(rows) == sorted(run.names)


@pytest.mark.slow
def test_answers_csv_has_the_graders_questions_only_and_no_formula(run: CorpusRun) -> None:
    from grader.tasks.answers import template_headings

    header, *rows = run.answers_rows()
    assert header == ["submission", *template_headings()]  # no heading of a submission's
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (row[0], cell[:40])
    raw = (run.out / "answers.csv").read_text(encoding="utf-8")
    for row in rows:  # every cell quoted: no separator a spreadsheet guesses splits one
        assert f'\n"{row[0]}","' in raw, row[0]


@pytest.mark.slow
def test_no_feedback_page_holds_a_raw_control_character(run: CorpusRun) -> None:
    from grader.outputs.terminal import printable

    for name in run.names:
        page = (run.out / name / "feedback.html").read_text(encoding="utf-8")
        assert printable(page) == page, f"{name}: a control character in feedback.html"


def _segment_left(run: CorpusRun) -> bool:
    """Whether ipc_secret's System V segment (key 0x1ab3c0) is in this test's IPC namespace."""
    if "ipc_secret" not in run.names:
        pytest.skip("ipc_secret only runs where processes are isolated")
    if not Path("/proc/sysvipc/shm").is_file():
        pytest.skip("no /proc/sysvipc/shm here")
    keys = [line.split()[0] for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    return str(0x1AB3C0) in keys  # decimal there


@pytest.mark.slow
def test_no_shared_memory_segment_of_a_submission_outlives_the_batch(run: CorpusRun) -> None:
    # The case stored it (its expected log says so); the child's own IPC namespace took it away.
    assert not _segment_left(run)


@pytest.mark.slow
def test_a_print_flood_is_capped_in_the_log(run: CorpusRun) -> None:
    log = run.out / "print_flood" / "log.txt"
    assert log.stat().st_size < 1024 * 1024
    assert "bytes of output cut" in log.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not ISOLATED, reason="fork bomb only runs isolated")
def test_the_process_limit_stops_the_fork_bomb(run: CorpusRun) -> None:
    feedback = run.feedback("fork_bomb", "model")
    assert "Resource temporarily unavailable" in feedback
    assert "no limit hit" not in feedback


# --------------------------------------------------------------------------- --sandbox none


@pytest.fixture(scope="module")
def run_none(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    names = _selected("none", NONE_CASES)
    return _grade_corpus(tmp_path_factory.mktemp("corpus-none"), names, NONE_TASKS, "none")


@pytest.mark.slow
@pytest.mark.parametrize("name", NONE_CASES)
def test_case_is_graded_as_expected_without_bubblewrap(run_none: CorpusRun, name: str) -> None:
    reason = skip_reason(CASES[name], "none")
    if reason:
        pytest.skip(reason)
    assert run_none.code == 0
    _assert_as_expected(run_none, name)


@pytest.mark.slow
def test_no_shared_memory_segment_outlives_the_batch_without_bubblewrap(
        run_none: CorpusRun) -> None:
    assert not _segment_left(run_none)


@pytest.mark.slow
def test_no_process_survives_without_bubblewrap(run_none: CorpusRun) -> None:
    assert run_none.survivors == []
    assert (run_none.out / "sentinel.txt").read_text() == "written by the test"
    assert run_none.after == run_none.before


# --------------------------------------------------------------------------- kill and resume


@pytest.mark.slow
def test_a_batch_killed_midway_resumes_to_complete_valid_outputs(tmp_path: Path) -> None:
    names = ["honest_reference_copy", "template", "syntax_error", "partial_train_mode"]
    built = corpus.build_all(tmp_path / "submissions", [CASES[n] for n in names])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader", "grade", *map(str, built.values()),
               "--out", str(out), "--tasks", "model", "-j", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None and not list(out.glob("*/results.json")):
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the grader and its children, mid-batch
        proc.wait()
    first = sorted(p.parent.name for p in out.glob("*/results.json"))
    assert first, "the batch ended before any submission was graded"
    assert len(first) < len(names), "the batch finished before it was killed"
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    for name in names:
        for file in ("results.json", "report.json", "feedback.html", "log.txt"):
            assert (out / name / file).is_file(), f"{name}/{file}"
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file complete
    summary = (out / "summary.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in summary[1:]) == sorted(names)
    scores = {n: json.loads((out / n / "results.json").read_text())["score"] for n in names}
    full = task_points("model")
    assert scores == {"honest_reference_copy": full, "template": 0, "syntax_error": full,
                      "partial_train_mode": full - check_points("model", "eval_mode")}
