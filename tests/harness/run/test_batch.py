"""``lab3 grade`` end to end: real submissions graded in sandboxed children, checked in the parent.

One batch (module fixture, ``-j 2``) grades a dozen small submissions built here
from ``reference/`` and ``student_template/`` by appending source to their
modules; each test then reads one fact of the outputs. Only the cheap tasks are
graded (``--tasks model,preprocessing,answers``): the point is the machinery
(isolation, timeouts, crashes, outputs, resume), and the same checks grade every
task. The full reference through ``lab3 grade`` is in the slow test at the end.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.cli import main
from grader.points import CHECKS, checks_of, total_points
from tests.harness.table import check_points, task_points

REPO = Path(__file__).resolve().parents[3]
TASKS = ("model", "preprocessing", "answers")
TASK_TIMEOUT = 10  # per task; the looping submission must not cost more


def build(root: Path, name: str, overrides: dict[str, str], base: str = "reference") -> Path:
    """A copy of ``base``/ named ``name`` with source appended to modules (``.md`` and new
    files written as given)."""
    folder = root / name
    shutil.copytree(REPO / base, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for module, source in overrides.items():
        path = folder / module
        if module.endswith(".md") or not path.exists():
            path.write_text(source)
        else:
            path.write_text(path.read_text() + "\n\n# --- submission override ---\n" + source)
    return folder


REWRITTEN = {
    # Correct, but not written like the reference: string weights, train(False),
    # labels via get_weight, keyword arguments and a tuple crop size.
    "model.py": (
        "def load_model(device='cpu'):\n"
        "    net = models.resnet34(weights='IMAGENET1K_V1')\n"
        "    net.train(False)\n"
        "    return net.to(device)\n\n\n"
        "def load_labels(path=None):\n"
        "    if path is not None:\n"
        "        return _labels_from_json(path)\n"
        "    meta = models.get_weight('ResNet34_Weights.IMAGENET1K_V1').meta\n"
        "    return {i: name for i, name in enumerate(meta['categories'])}\n"
    ),
    "preprocessing.py": (
        "transform = transforms.Compose([\n"
        "    transforms.Resize(size=256),\n"
        "    transforms.CenterCrop(size=(224, 224)),\n"
        "    transforms.ToTensor(),\n"
        "    transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),\n"
        "])\n"
    ),
}
WRONG_STD = ("transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),"
             " transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, [0.5, 0.5, 0.5])])\n")
SCRIPT = '<script>alert("pwned")</script>'


def _answers_with_script() -> str:
    text = (REPO / "student_template" / "answers.md").read_text()
    return text.replace("## Task 5.1", f"{SCRIPT}\n\n## Task 5.1", 1) + f"\n{SCRIPT} & more\n"


SUBMISSIONS: dict[str, tuple[str, dict[str, str]]] = {
    "rewritten": ("student_template", REWRITTEN),
    "partial": ("reference", {"preprocessing.py": WRONG_STD}),
    "syntax": ("reference", {"preprocessing.py": "def broken(:\n    pass\n"}),
    "exit_at_import": ("reference", {"model.py": "import sys\nsys.exit(0)\n"}),
    "os_exit": ("reference", {"preprocessing.py": (
        "def preprocess_image(img):\n    import os\n    os._exit(0)\n")}),
    "loop": ("reference", {"model.py": "def load_labels(path=None):\n    while True:\n"
                                       "        pass\n"}),
    # Files named like the grader's and torch's modules next to the student's code: the
    # child never has its working directory on sys.path, so they are never imported.
    "shadow": ("reference", {"torch.py": "raise SystemExit('shadowed torch')\n",
                             "grader.py": "raise SystemExit('shadowed grader')\n",
                             "sitecustomize.py": "raise SystemExit('shadowed site')\n"}),
    "xss": ("reference", {
        "model.py": f"def load_model(device='cpu'):\n    raise RuntimeError('{SCRIPT}')\n",
        "answers.md": _answers_with_script(),
    }),
    # A later task's code overwrites the record of a task already probed (here: Task 2's
    # call empties Task 1's record files); the parent took Task 1's record before Task 2 ran.
    "rewrites_earlier_record": ("reference", {"preprocessing.py": (
        "_honest_preprocess_image = preprocess_image\n\n\n"
        "def preprocess_image(img):\n"
        "    import pathlib\n"
        "    for found in (pathlib.Path.cwd().parent / 'records').glob('model.*'):\n"
        "        try:\n"
        "            found.write_text('{}')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return _honest_preprocess_image(img)\n")}),
}
# Expected points per task; None: some but not all points (asserted separately).
MODEL, PREPROCESSING = task_points("model"), task_points("preprocessing")
LABELS = check_points("model", "labels")
EXPECTED: dict[str, dict[str, float | None]] = {
    "reference": {"model": MODEL, "preprocessing": PREPROCESSING},
    "student_template": {"model": 0, "preprocessing": 0},
    "rewritten": {"model": MODEL, "preprocessing": PREPROCESSING},
    "rewritten_zip": {"model": MODEL, "preprocessing": PREPROCESSING},
    "partial": {"model": MODEL, "preprocessing": None},
    "syntax": {"model": MODEL, "preprocessing": 0},
    "exit_at_import": {"model": 0, "preprocessing": PREPROCESSING},
    "os_exit": {"model": MODEL, "preprocessing": 0},
    # load_labels loops: the task's time limit cuts it, load_model's checks still count.
    "loop": {"model": MODEL - LABELS, "preprocessing": PREPROCESSING},
    "shadow": {"model": MODEL, "preprocessing": PREPROCESSING},
    "xss": {"model": LABELS, "preprocessing": PREPROCESSING},  # labels still work
    "rewrites_earlier_record": {"model": MODEL, "preprocessing": PREPROCESSING},
    "garbage": {"model": 0, "preprocessing": 0},
    "empty": {"model": 0, "preprocessing": 0},
}


@dataclass
class BatchRun:
    code: int
    out: Path
    folders: dict[str, Path]

    def entry(self, name: str) -> dict[str, Any]:
        return json.loads((self.out / name / "report.json").read_text())

    def results(self, name: str) -> dict[str, Any]:
        return json.loads((self.out / name / "results.json").read_text())

    def checks(self, name: str, task: str) -> dict[str, dict[str, Any]]:
        for result in self.entry(name)["report"]["tasks"]:
            if result["task"] == task:
                return {c["name"]: c for c in result["checks"]}
        raise KeyError(task)

    def messages(self, name: str, task: str) -> str:
        return " | ".join(c["message"] for c in self.checks(name, task).values())


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> BatchRun:
    root = tmp_path_factory.mktemp("submissions")
    folders = {name: build(root, name, overrides, base)
               for name, (base, overrides) in SUBMISSIONS.items()}
    # A zip holding the rewritten submission inside a student_template/ folder.
    zipped = root / "rewritten_zip.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted(folders["rewritten"].rglob("*")):
            archive.write(path, "student_template/" + path.relative_to(folders["rewritten"])
                          .as_posix())
    garbage = root / "garbage.zip"
    garbage.write_bytes(b"this is not a zip file")
    empty = root / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("I forgot to add my code")
    out = tmp_path_factory.mktemp("grades")
    specs = ["reference", "student_template", *map(str, folders.values()), str(zipped),
             str(garbage), str(empty), str(root / "no_such_student")]
    code = main(["grade", *specs, "--out", str(out), "--tasks", ",".join(TASKS), "-j", "2",
                 "--task-timeout", str(TASK_TIMEOUT), "--quiet"])
    return BatchRun(code, out, folders)


def test_batch_exits_0_although_one_submission_is_missing(batch: BatchRun) -> None:
    assert batch.code == 0


def test_a_missing_submission_still_gets_its_row_and_results(batch: BatchRun) -> None:
    # Issue 14: every SUBMISSION passed ends with one row and a results.json, 0 and the reason.
    results = batch.results("no_such_student")
    assert results["score"] == 0 and "no such folder or zip" in results["output"]
    with (batch.out / "summary.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["submission"] == "no_such_student"]
    assert len(rows) == 1 and rows[0]["total"] == "0"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_points_per_task(batch: BatchRun, name: str) -> None:
    tasks = batch.entry(name)["tasks"]
    for task, expected in EXPECTED[name].items():
        got, possible = tasks[task]["score"], tasks[task]["max_score"]
        if expected is None:
            assert 0 <= got < possible, f"{name} {task}: {got}/{possible}"
        else:
            assert got == expected, f"{name} {task}: {got}, expected {expected}: " \
                                    f"{batch.messages(name, task)}"


def test_reference_gets_every_point(batch: BatchRun) -> None:
    entry = batch.entry("reference")
    assert entry["score"] == entry["max_score"] == task_points(*TASKS)
    assert entry["problems"] == []


def test_template_gets_0_with_a_message_for_every_check(batch: BatchRun) -> None:
    for task in ("model", "preprocessing"):
        for name, check in batch.checks("student_template", task).items():
            assert check["score"] == 0, name
            assert "not implemented yet" in check["message"], (name, check["message"])
    assert "unanswered" in batch.messages("student_template", "answers")


@pytest.mark.parametrize("check", [c for c in CHECKS if c.task in TASKS], ids=lambda c: c.id)
def test_reference_and_template_on_each_check_of_the_table(batch: BatchRun, check) -> None:
    assert batch.checks("reference", check.task)[check.name]["score"] == check.points
    assert batch.checks("student_template", check.task)[check.name]["score"] == 0


def test_partly_correct_loses_only_what_it_gets_wrong(batch: BatchRun) -> None:
    failed = [n for n, c in batch.checks("partial", "preprocessing").items() if not c["passed"]]
    assert "pipeline_structure" in failed and "output_photos" in failed
    assert "0.229" in batch.messages("partial", "preprocessing")  # says what the std should be


@pytest.mark.parametrize(("name", "task", "needle"), [
    ("syntax", "preprocessing", "SyntaxError"),
    ("exit_at_import", "model", "SystemExit"),
    ("os_exit", "preprocessing", "ended during this task"),
    ("loop", "model", f"time limit of {TASK_TIMEOUT} s"),
    ("garbage", "model", "not a valid zip"),
    ("empty", "preprocessing", "none of model.py"),
], ids=["syntax-error", "sys-exit-at-import", "os-exit", "infinite-loop", "bad-zip",
        "no-modules"])
def test_failure_is_explained(batch: BatchRun, name: str, task: str, needle: str) -> None:
    assert needle in batch.messages(name, task)


@pytest.mark.parametrize(("name", "problem"), [
    ("loop", "model: timed out"), ("os_exit", "preprocessing: crashed"),
], ids=["timeout", "crash"])
def test_timeouts_and_crashes_are_listed(batch: BatchRun, name: str, problem: str) -> None:
    assert problem in batch.entry(name)["problems"]
    assert problem in batch.results(name)["output"]


@pytest.mark.parametrize("name", ["garbage", "empty"], ids=["bad-zip", "no-modules"])
def test_ungradable_submission_is_a_0_not_a_batch_crash(batch: BatchRun, name: str) -> None:
    entry = batch.entry(name)
    assert entry["status"] == "ungradable"
    assert entry["score"] == 0


def _assert_gradescope_shape(results: dict[str, Any]) -> None:
    assert isinstance(results["score"], int | float)
    assert isinstance(results["max_score"], int | float)
    assert isinstance(results["execution_time"], int | float)
    assert isinstance(results["output"], str)
    assert results["tests"]
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    assert abs(sum(t["score"] for t in results["tests"]) - results["score"]) < 1e-6
    assert {"weights", "versions"} <= set(results["extra_data"])


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_results_json_has_gradescopes_shape(batch: BatchRun, name: str) -> None:
    _assert_gradescope_shape(batch.results(name))


def test_results_json_keeps_the_graded_inputs_from_students(
    batch: BatchRun, graded_test_settings
) -> None:
    # results.json reaches students, who may submit again: only the variant's name is in it.
    assert batch.results("reference")["extra_data"]["settings"] == {
        "variant": graded_test_settings.variant}
    assert batch.entry("reference")["report"]["settings"] == graded_test_settings.to_dict()


def test_hidden_checks_are_after_published(batch: BatchRun) -> None:
    hidden = {f"{c.task}::{c.name}" for t in TASKS for c in checks_of(t) if c.hidden}
    assert hidden, "the points table has no hidden check among the graded tasks"
    for test in batch.results("reference")["tests"]:
        expected = "after_published" if test["name"].split()[-1] in hidden else "visible"
        assert test["visibility"] == expected, test["name"]


def test_summary_csv_has_one_column_per_task(batch: BatchRun) -> None:
    with (batch.out / "summary.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["submission", *TASKS, "total", "max_score", "status", "problems",
                       "source", "sha256"]
    by_name = {row[0]: row for row in rows[1:]}
    assert set(by_name) == {*EXPECTED, "no_such_student"}  # every SUBMISSION passed has a row
    assert by_name["partial"][-2] == str(batch.folders["partial"].resolve())
    assert len(by_name["partial"][-1]) == 64
    assert by_name["reference"][1:5] == ["10", "12", "0", "22"]


def test_answers_csv_holds_the_answers_verbatim(batch: BatchRun) -> None:
    with (batch.out / "answers.csv").open() as f:
        rows = {row[0]: row for row in csv.reader(f)}
    assert any(SCRIPT in cell for cell in rows["xss"][1:])


def test_feedback_escapes_what_the_student_wrote(batch: BatchRun) -> None:
    page = (batch.out / "xss" / "feedback.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "default-src 'none'" in page  # and no script could run anyway


def test_feedback_shows_every_task(batch: BatchRun) -> None:
    page = (batch.out / "student_template" / "feedback.html").read_text()
    for task in TASKS:
        assert f'id="{task}"' in page
    assert f"0/{MODEL:g}" in page and "not implemented yet" in page


@pytest.mark.parametrize("name", ["rewritten", "partial", "syntax"])
def test_same_score_as_in_process(batch: BatchRun, grade_impl, graded_test_settings,
                                  name: str) -> None:
    in_process = grade_impl(batch.folders[name], tasks=TASKS, settings=graded_test_settings)
    for task in TASKS:
        batch_scores = {n: c["score"] for n, c in batch.checks(name, task).items()}
        pytest_scores = {c.name: c.score for c in in_process.results[task].checks}
        assert batch_scores == pytest_scores, task


def test_rerun_skips_graded_submissions(batch: BatchRun) -> None:
    results = batch.out / "reference" / "results.json"
    before = results.stat()
    code = main(["grade", "reference", "--out", str(batch.out), "--tasks", ",".join(TASKS), "-q"])
    assert code == 0
    after = results.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_force_regrades(batch: BatchRun) -> None:
    results = batch.out / "student_template" / "results.json"
    before = results.stat()
    code = main(["grade", "student_template", "--out", str(batch.out), "--tasks", "model",
                 "--force", "-q"])
    assert code == 0
    assert results.stat().st_mtime_ns != before.st_mtime_ns
    assert json.loads(results.read_text())["max_score"] == MODEL


def test_python_m_grader_grade(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "student_template", "--out", str(out),
         "--tasks", "model", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "student_template" in done.stdout and f"0/{MODEL:g}" in done.stdout
    _assert_gradescope_shape(json.loads((out / "student_template" / "results.json").read_text()))


@pytest.fixture(scope="module")
def full_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every task of the reference, a copy of it and the template, graded by ``lab3 grade``.

    Two references side by side at -j 2: their checks run at the same time in two
    threads of the parent (each with its own trusted model).
    """
    tmp_path = tmp_path_factory.mktemp("full")
    copy = build(tmp_path, "reference_copy", {})
    out = tmp_path / "out"
    assert main(["grade", "reference", str(copy), "student_template", "--out", str(out),
                 "-j", "2", "-q"]) == 0
    return out


def _check_scores(out: Path, name: str, task: str) -> dict[str, float]:
    results = json.loads((out / name / "report.json").read_text())["report"]
    (entry,) = [t for t in results["tasks"] if t["task"] == task]
    return {c["name"]: c["score"] for c in entry["checks"]}


# Generated from the points table, one test per check (ids: task::check), so a check added,
# removed or reweighted in grader/points.py is tested without editing this file.
@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_the_reference_earns_each_checks_table_points(full_batch: Path, check) -> None:
    assert _check_scores(full_batch, "reference", check.task)[check.name] == check.points


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_the_template_earns_nothing_on_any_check(full_batch: Path, check) -> None:
    assert _check_scores(full_batch, "student_template", check.task)[check.name] == 0


@pytest.mark.slow
def test_full_reference_gets_100_through_lab3_grade(full_batch: Path) -> None:
    out = full_batch
    for name in ("reference", "reference_copy"):
        results = json.loads((out / name / "results.json").read_text())
        assert results["score"] == results["max_score"] == total_points(), results["output"]
    template = json.loads((out / "student_template" / "results.json").read_text())
    assert template["score"] == 0
    assert all(t["output"] for t in template["tests"])
    page = (out / "reference" / "feedback.html").read_text()
    assert 'alt="Task 5: your grid of filter visualisations' in page
    assert 'alt="Task 5: the reference&#x27;s grid of filter visualisations' in page
    assert 'alt="Task 6: Integrated Gradients from a constant baseline' in page


@pytest.mark.slow
def test_submission_time_limit_stops_the_rest_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    # load_labels loops; load_model's calls before it finish in the first seconds of the 30.
    loop = build(tmp_path, "loop", SUBMISSIONS["loop"][1])
    out = tmp_path / "out"
    assert main(["grade", str(loop), "--out", str(out), "--tasks", "model,preprocessing",
                 "--timeout", "30", "--task-timeout", "60", "-q"]) == 0
    entry = json.loads((out / "loop" / "report.json").read_text())
    assert entry["tasks"]["model"]["score"] == MODEL - LABELS
    assert entry["tasks"]["preprocessing"]["score"] == 0
    assert "time limit of 30 s ran out during this task" in entry["tasks"]["model"]["problem"]
    assert "not run" in entry["tasks"]["preprocessing"]["problem"]
