"""Conceptual answers (grader/tasks/answers.py): collected by heading, 0 points, "answered"."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.tasks import answers as task

HEADINGS = task.template_headings()
LONG = " ".join(["word"] * 25)


def _answers_md(bodies: dict[str, str], heading=lambda h: h) -> str:
    parts = ["# Laboratory 3 — answers", ""]
    for h in HEADINGS:
        parts += [f"## {heading(h)}", "", bodies.get(h, ""), ""]
    return "\n".join(parts)


@pytest.fixture
def grade_answers(make_variant, grade_impl):
    """Grade only the answers task of a reference copy holding ``text`` as answers.md."""

    def grade(text: str | None):
        folder: Path = make_variant({})
        if text is not None:
            (folder / "answers.md").write_text(text, encoding="utf-8")
        else:
            (folder / "answers.md").unlink(missing_ok=True)
        return grade_impl(folder, tasks=["answers"])

    return grade


def test_template_headings_are_the_four_questions() -> None:
    assert len(HEADINGS) == 4
    assert [h.split(":")[0] for h in HEADINGS] == ["Task 5.1", "Task 5.2", "Task 5.3", "Task 7"]


def test_all_answered_passes_with_zero_points(grade_answers) -> None:
    graded = grade_answers(_answers_md(dict.fromkeys(HEADINGS, LONG)))
    check = graded.check("answers", "answered")
    assert check.passed and check.max_score == 0 and check.score == 0
    assert graded.records["answers"].data["answers"] == dict.fromkeys(HEADINGS, LONG)


def test_template_lists_every_heading_as_unanswered(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["answers"])
    check = graded.check("answers", "answered")
    assert not check.passed
    for heading in HEADINGS:
        assert heading in check.message


def test_short_answer_is_named(grade_answers) -> None:
    bodies = dict.fromkeys(HEADINGS, LONG)
    bodies[HEADINGS[2]] = "Edges, then parts."
    check = grade_answers(_answers_md(bodies)).check("answers", "answered")
    assert not check.passed
    assert HEADINGS[2] in check.message and HEADINGS[0] not in check.message


def test_html_comments_do_not_count(grade_answers) -> None:
    bodies = dict.fromkeys(HEADINGS, LONG)
    bodies[HEADINGS[3]] = f"<!-- {LONG} -->"
    check = grade_answers(_answers_md(bodies)).check("answers", "answered")
    assert not check.passed and HEADINGS[3] in check.message


def test_reworded_headings_match_by_task_number(grade_answers) -> None:
    text = _answers_md(dict.fromkeys(HEADINGS, LONG),
                       heading=lambda h: h.split(":")[0] + ": my own title")
    assert grade_answers(text).check("answers", "answered").passed


def test_missing_file_says_so(grade_answers) -> None:
    check = grade_answers(None).check("answers", "answered")
    assert not check.passed and "answers.md is missing" in check.message


def test_unknown_headings_are_reported(grade_answers) -> None:
    text = "## Question one\n\n" + LONG + "\n"
    graded = grade_answers(text)
    check = graded.check("answers", "answered")
    assert not check.passed and "'Question one'" in check.message


@pytest.mark.parametrize("text", ["", "\x00\xff garbage ## not a heading", "##" * 100_000],
                         ids=["empty", "binary", "huge"])
def test_odd_files_do_not_crash(grade_answers, text: str) -> None:
    check = grade_answers(text).check("answers", "answered")
    assert not check.passed


def test_split_answers_caps_each_answer() -> None:
    answers, _ = task.split_answers(f"## {HEADINGS[0]}\n" + "x " * 50_000, HEADINGS)
    assert len(answers[HEADINGS[0]]) == task.MAX_ANSWER_CHARS


def test_answers_csv_columns_are_the_graders_headings_only(tmp_path: Path, check_context) -> None:
    # A record's keys are the submission's to choose (its process writes the record); a
    # forged key must not become a column, least of all a formula.
    from grader.check.grading import grade_records
    from grader.outputs.report import write_summary
    from grader.probe.records import Record

    forged = {HEADINGS[0]: "=HYPERLINK(\"http://evil\")", "=cmd|' /C calc'!A0": "x",
              HEADINGS[1]: "plain; with a separator"}
    report = grade_records("mallory", {"answers": Record("answers", {"answers": forged})}, {},
                           check_context, settings={}, reference_description="",
                           tasks=["answers"])
    assert set(report.answers) == {HEADINGS[0], HEADINGS[1]}
    entry = {"submission": "mallory", "tasks": {}, "score": 0, "max_score": 0,
             "status": "graded", "answers": report.answers}
    write_summary(tmp_path, [entry])
    import csv

    with (tmp_path / "answers.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["submission", *HEADINGS]
    assert rows[1][1] == "'=HYPERLINK(\"http://evil\")"
    assert rows[1][2] == "plain; with a separator"
    raw = (tmp_path / "answers.csv").read_text()
    assert raw.splitlines()[1].startswith('"mallory","\'=HYPERLINK')  # every cell quoted
