"""The course file (grader/course.py): checks switched off or reweighted without editing code.

Every consumer reads the points through ``grader.points.effective_checks``: the table
(``lab3 points``), the checks (results.json), pytest's table, ``lab3 grade`` and the release.
Grading here uses the cheap tasks only (``model``; the reference graded against itself).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grader import cli, course
from grader.check.checking import CheckContext
from grader.check.grading import grade_records
from grader.course import COURSE_ENV, CourseError, find_course, load_course, parse_course
from grader.points import CHECKS, SWITCHED_OFF, TOTAL_POINTS, effective_checks, total_points
from grader.run.batch import UsageError, grade_batch
from grader.settings import DEFAULT_SETTINGS

REPO = Path(__file__).resolve().parents[2]
# model::labels (2) off, model::architecture 3 -> 6: Task 1 is worth 3 + 2 + 3 + 0 + 3 more.
COURSE = '''# a course whose students wrote load_labels from the handout
[checks]
"model::labels" = 0
"model::architecture" = 6
'''
MODEL_POINTS = 2 + 3 + 6  # eval_mode, weights, architecture


def write(tmp_path: Path, text: str, name: str = "course.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "expected"), [
    ('[checks]\n"graph::conv_name" = 0\n', "unknown check 'graph::conv_name': did you mean "
                                           "'graph::conv_names'?"),
    ('[checks]\nconv_names = 0\n', "did you mean 'graph::conv_names'?"),
    ('[checks]\ngraph = 0\n', "'graph' is a task, not a check; name its checks: "
                              "graph::graph_png, graph::conv_names"),
    ('[checks]\ngraph.conv_names = 0\n', 'quote each check id with its \'::\', e.g. '
                                         '"graph::conv_names" = 0'),
    ('[checks]\n"graph::conv_names" = -1\n', "'graph::conv_names' = -1: points must be from 0"),
    ('[checks]\n"graph::conv_names" = "three"\n', 'points must be a number'),
    ('[checks]\n"graph::conv_names" = true\n', "= true: points must be a number"),
    ('[checks]\n"graph::conv_names" = nan\n', "= nan: points must be from 0"),
    ('[checks]\n"graph::conv_names" = 0\n[grading]\nx = 1\n', "unknown key 'grading': a course "
                                                            "file has one table, [checks]"),
    ('"graph::conv_names" = 0\n', "unknown key 'graph::conv_names'"),
    ('', "no [checks] table"),
    ('[checks\n', "not valid TOML"),
], ids=["typo", "bare-name", "task", "dotted-key", "negative", "string", "bool", "nan",
        "unknown-table", "no-table", "empty", "syntax"])
def test_invalid_course_files_say_what_to_change(text: str, expected: str) -> None:
    with pytest.raises(CourseError) as info:
        parse_course(text, "course.toml")
    assert expected in str(info.value)
    assert str(info.value).startswith("course.toml: ")


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(CourseError) as info:
        parse_course('[checks]\n"model::label" = 1\n"model::weights" = -2\n[x]\n')
    assert "3 problem(s)" in str(info.value)


def test_switching_off_and_reweighting_change_the_effective_table_only(tmp_path: Path) -> None:
    loaded = load_course(write(tmp_path, COURSE))
    table = {c.id: c for c in effective_checks(loaded)}
    assert table["model::labels"].points == 0 and table["model::labels"].switched_off
    assert table["model::labels"].course_note == SWITCHED_OFF
    assert table["model::architecture"].points == 6
    assert table["model::architecture"].table_points == 3
    assert not table["model::architecture"].switched_off
    assert table["model::weights"].table_points is None
    assert total_points(loaded) == TOTAL_POINTS - 2 + 3
    # The code's table is untouched; answers::answered is 0 in the table, not switched off.
    assert total_points() == TOTAL_POINTS == sum(c.points for c in CHECKS)
    assert not any(c.switched_off for c in effective_checks())


def test_checks_beyond_the_handout_are_marked() -> None:
    marked = {c.id for c in CHECKS if c.beyond_handout}
    assert {"graph::conv_names", "inference::batch", "filters::seed", "filters::grid",
            "integrated_gradients::output_format"} <= marked
    assert "model::weights" not in marked and "preprocessing::pipeline_structure" not in marked


def _grade_model(references_for, resolved_weights, loaded):
    """The reference's own model record graded against itself (full marks), under ``loaded``."""
    reference = references_for(DEFAULT_SETTINGS)
    records = {"model": reference["model"]}
    return grade_records("alice", records, records, CheckContext(weights=resolved_weights),
                         settings={}, reference_description="", tasks=["model"], course=loaded)


def test_reweighting_changes_results_json(tmp_path: Path, references_for,
                                          resolved_weights) -> None:
    loaded = load_course(write(tmp_path, COURSE))
    plain = _grade_model(references_for, resolved_weights, None).to_gradescope()
    assert plain["max_score"] == plain["score"] == 10
    results = _grade_model(references_for, resolved_weights, loaded).to_gradescope()
    assert results["max_score"] == results["score"] == MODEL_POINTS
    tests = {t["name"].split()[-1]: t for t in results["tests"]}
    assert tests["model::architecture"]["max_score"] == tests["model::architecture"]["score"] == 6
    assert tests["model::labels"]["max_score"] == tests["model::labels"]["score"] == 0
    assert tests["model::labels"]["output"] == SWITCHED_OFF
    assert results["output"].splitlines()[0] == f"alice: {MODEL_POINTS} / {MODEL_POINTS}"
    assert loaded.describe() in results["output"]
    assert "total 101" in loaded.describe()


def test_a_switched_off_check_is_not_run(tmp_path: Path, references_for, resolved_weights,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.tasks import task_module

    def explode(*args):
        raise AssertionError("a switched-off check ran")

    monkeypatch.setitem(task_module("model").CHECKS, "labels", explode)
    loaded = load_course(write(tmp_path, COURSE))
    report = _grade_model(references_for, resolved_weights, loaded)
    labels = next(c for c in report.task("model").checks if c.name == "labels")
    assert (labels.score, labels.max_score, labels.passed) == (0, 0, True)
    assert labels.message == SWITCHED_OFF
    assert report.task("model").first_failure is None
    # Without the course file the same check runs (and here fails on the exploding check).
    report = _grade_model(references_for, resolved_weights, None)
    assert "a switched-off check ran" in report.task("model").first_failure


def test_lab3_points_follows_the_course_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, COURSE)
    assert cli.main(["points", "--course", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| | `labels` | 0 (off; table: 2) |" in out
    assert "| | `architecture` | 6 (table: 3) |" in out
    assert f"| **Task 1: pretrained ResNet-34 and labels** (`model`) | | **{MODEL_POINTS}** |" in out
    assert "| **Total** | | **101** |" in out
    assert out.rstrip().endswith("total 101")
    # Without it (the harness sets LAB3_COURSE_FILE=none): the table's own points.
    assert cli.main(["points"]) == 0
    assert f"| **Total** | | **{TOTAL_POINTS}** |" in capsys.readouterr().out


def test_lab3_refuses_an_invalid_course_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[checks]\n"graph::conv_name" = 0\n')
    for argv in (["points", "--course", str(path)],
                 ["grade", "reference", "--out", str(tmp_path / "out"), "--course", str(path)],
                 ["release", str(tmp_path / "rel"), "--course", str(path)]):
        assert cli.main(argv) == 2, argv
        assert "did you mean 'graph::conv_names'?" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "rel").exists()


def test_location_option_then_env_then_default(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    default = write(tmp_path, '[checks]\n"graph::conv_names" = 0\n', "default.toml")
    env = write(tmp_path, '[checks]\n"filters::seed" = 0\n', "env.toml")
    explicit = write(tmp_path, '[checks]\n"inference::batch" = 0\n', "explicit.toml")
    monkeypatch.setattr(course, "DEFAULT_COURSE_PATH", default)
    monkeypatch.delenv(COURSE_ENV)
    assert dict(find_course().points) == {"graph::conv_names": 0}
    monkeypatch.setenv(COURSE_ENV, str(env))
    assert dict(find_course().points) == {"filters::seed": 0}
    assert dict(find_course(str(explicit)).points) == {"inference::batch": 0}
    assert find_course("none") is None
    monkeypatch.setenv(COURSE_ENV, "none")
    assert find_course() is None
    monkeypatch.setenv(COURSE_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(CourseError, match=r"LAB3_COURSE_FILE .*missing\.toml: no such file"):
        find_course()
    monkeypatch.delenv(COURSE_ENV)
    monkeypatch.setattr(course, "DEFAULT_COURSE_PATH", tmp_path / "absent.toml")
    assert find_course() is None  # no default file: the table's own points


def test_pytest_table_follows_the_course_file(tmp_path: Path) -> None:
    path = write(tmp_path, COURSE)
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "--impl", "reference", "-k", "model", "--course", str(path), "--results", str(results)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-2000:]
    assert re.search(rf"^total\s+{MODEL_POINTS}/{MODEL_POINTS}$", out, re.M), out[-3000:]
    assert "SKIPPED" in out and SWITCHED_OFF in out and "[labels]" in out
    assert "1 skipped" in out
    assert "course file course.toml" in out and "total 101" in out
    assert json.loads(results.read_text())["max_score"] == MODEL_POINTS


def test_lab3_grade_follows_the_course_file_and_regrades_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path, COURSE)
    out = tmp_path / "grades"

    def grade(course_file: str) -> dict:
        result = grade_batch(["reference"], out=out, tasks="model", sandbox_mode="none",
                             variant="practice", quiet=True, course=course_file)
        assert result.exit_code == 0
        return json.loads((out / "reference" / "results.json").read_text())

    results = grade(str(path))
    assert results["max_score"] == results["score"] == MODEL_POINTS
    first = (out / "reference" / "results.json").stat().st_mtime_ns
    grade(str(path))  # the same course: skipped
    assert (out / "reference" / "results.json").stat().st_mtime_ns == first
    results = grade("none")  # another course (none): regraded at the table's points
    assert results["max_score"] == results["score"] == 10
    with pytest.raises(UsageError, match="points must be from 0"):
        grade_batch(["reference"], out=out, tasks="model", sandbox_mode="none",
                    variant="practice", quiet=True,
                    course=str(write(tmp_path, '[checks]\n"model::labels" = -1\n', "bad.toml")))


@pytest.mark.slow
def test_release_follows_the_course_file(tmp_path: Path) -> None:
    from grader.distribute.release import build_release

    path = write(tmp_path, COURSE + '"preprocessing::output_edge_cases" = 5\n')
    release, _ = build_release(tmp_path / "lab3", course=str(path))
    points_py = (release / "grader" / "points.py").read_text()
    assert "RELEASE_COURSE: dict[str, float] = {'model::architecture': 6, 'model::labels': 0}" \
        in points_py
    assert "RELEASE_COURSE_HIDDEN_POINTS: float | None = 5" in points_py
    assert "output_edge_cases" not in points_py  # hidden ids stay home
    # The release's own table, as the student's pytest and `lab3 points` read it.
    probe = ("from grader.points import total_points, release_hidden_points, checks_of;"
             "print(total_points(), release_hidden_points(),"
             " sum(c.points for c in checks_of('model')))")
    env = dict(os.environ, PYTHONPATH=str(release), LAB3_COURSE_FILE="none")
    shown = subprocess.run([sys.executable, "-S", "-c", probe], cwd=release, env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["103", "5", str(MODEL_POINTS)]  # 100 - 2 + 3 + (5 - 3)
    readme = (release / "README.md").read_text()
    assert "**98** points you can check here" in readme and "(of 103)" in readme
