"""Conceptual answers (Tasks 5 and 7): collected for manual grading, worth 0 points here.

Probe
    Reads the submission's ``answers.md`` (``ctx.impl.answers_text()``; ``None``
    when absent) and splits it at the ``## `` headings of the grader's own copy of
    ``student_template/answers.md`` (shipped with the grader; ``reference/`` is
    never needed). A student heading matches a template heading when their text
    before the first ``:`` agrees (``"## Task 5.1: ..."`` matches however the rest
    is worded), else when the whole heading agrees (case and spacing ignored).
    Recorded: ``data["answers"]`` = {template heading: answer text (capped)},
    which the report shows the instructor, and the headings that matched nothing.

    The notebook's answer prompt (:data:`ANSWER_PROMPT`) is not part of an answer:
    a line holding only the prompt is dropped, so an untouched answer cell is empty.

Check ``answered``
    Passed when every question's answer has at least :data:`MIN_WORDS` words
    (HTML comments do not count); the message names the unanswered headings. It
    is worth 0 points either way: the answers are graded by hand.
"""

from __future__ import annotations

import re

from grader.check.checking import CheckContext, CheckFailed, Outcome, passed
from grader.paths import TEMPLATE_ANSWERS
from grader.probe.probing import ProbeContext, new_record
from grader.probe.records import Record

MIN_WORDS = 20
MAX_ANSWER_CHARS = 20_000
# What the generated notebook's answer cells hold until the student writes
# (grader/distribute/notebook_writer.py).
ANSWER_PROMPT = "_Your answer here._"
_HEADING = re.compile(r"^##(?!#)\s*(.*?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WORD = re.compile(r"\w+")


def template_headings() -> list[str]:
    """The ``## `` headings of the template's answers.md, in order."""
    text = _template_text()
    return [m.group(1) for line in text.splitlines() if (m := _HEADING.match(line))]


def _template_text() -> str:
    if TEMPLATE_ANSWERS.is_file():
        return TEMPLATE_ANSWERS.read_text(encoding="utf-8")
    # Installed as a package (no source tree): the template ships as package data.
    from importlib.resources import files

    return files("student_template").joinpath("answers.md").read_text(encoding="utf-8")


def _key(heading: str) -> str:
    return " ".join(heading.split()).casefold()


def _short_key(heading: str) -> str:
    return _key(heading.split(":", 1)[0])


def split_answers(text: str, headings: list[str]) -> tuple[dict[str, str], list[str]]:
    """{template heading: answer text} and the student's headings that matched none."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((match.group(1), []))
        elif sections and line.strip() != ANSWER_PROMPT:
            sections[-1][1].append(line)
    by_full = {_key(h): h for h in headings}
    by_short = {_short_key(h): h for h in headings}
    answers = dict.fromkeys(headings, "")
    unmatched = []
    for heading, lines in sections:
        target = by_full.get(_key(heading)) or by_short.get(_short_key(heading))
        if target is None:
            unmatched.append(heading[:200])
            continue
        body = "\n".join(lines).strip()
        answers[target] = (answers[target] + "\n\n" + body).strip()[:MAX_ANSWER_CHARS]
    return answers, unmatched[:50]


def word_count(answer: str) -> int:
    return len(_WORD.findall(_COMMENT.sub(" ", answer)))


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    record = new_record("answers")
    headings = template_headings()
    record.data["headings"] = headings
    text = ctx.impl.answers_text()
    if text is None:
        record.data["missing"] = True
        record.data["answers"] = dict.fromkeys(headings, "")
        return record
    answers, unmatched = split_answers(str(text), headings)
    record.data["answers"] = answers
    record.data["unmatched_headings"] = unmatched
    return record


# --------------------------------------------------------------------------- check


def check_answered(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    headings = template_headings()  # the grader's copy, not what the record claims
    if student.data.get("missing"):
        raise CheckFailed("answers.md is missing; copy student_template/answers.md and answer "
                          "each question under its heading")
    answers = student.data.get("answers")
    answers = answers if isinstance(answers, dict) else {}
    short = [h for h in headings
             if not isinstance(answers.get(h), str) or word_count(answers[h]) < MIN_WORDS]
    if short:
        extra = student.data.get("unmatched_headings") or []
        hint = (f" (headings not in the template: {', '.join(map(repr, extra[:3]))}; keep the "
                "template's headings)") if extra else ""
        raise CheckFailed(f"unanswered (fewer than {MIN_WORDS} words): "
                          f"{'; '.join(short)}{hint}")
    return passed(f"all {len(headings)} questions answered; graded by hand")


CHECKS = {"answered": check_answered}
