"""The course file: an instructor switches checks off or reweights them without editing code.

A TOML file with one table, ``[checks]``: check ids of the points table
(``lab3 points``; ``task::name``) and the points each is worth in this course::

    [checks]
    "graph::conv_names" = 0                 # switched off: not run, 0 points
    "integrated_gradients::agreement" = 8   # reweighted (the table says 6)

Checks it does not name keep the table's points; the lab's total is the sum of the
result (:func:`grader.points.total_points`). A check at 0 is switched off: it is not
run, and every output lists it at 0/0 with :data:`grader.points.SWITCHED_OFF`
(pytest skips its test), so it can neither cost points nor show up as a problem.

Where it is found (:func:`course_path`): ``--course FILE`` (``lab3 grade``, ``points``,
``release``, ``gradescope`` and ``pytest``), else ``$LAB3_COURSE_FILE``, else
``.lab3/course.toml`` in the checkout when that file exists (beside the course secret,
ignored by git). ``none`` for the option or the variable means no course file. A file named
by the option or the variable must exist. The file is read with :mod:`tomllib` and
validated strictly (:class:`CourseError` lists every problem and what to change).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import CourseError
from grader.paths import PROJECT_ROOT
from grader.points import CHECKS, TASKS, effective_checks, total_points

DEFAULT_COURSE_PATH = PROJECT_ROOT / ".lab3" / "course.toml"
COURSE_ENV = "LAB3_COURSE_FILE"
NO_COURSE = "none"
# More than this for one check is a typo (the whole lab is 100).
MAX_CHECK_POINTS = 1000


@dataclass(frozen=True)
class Course:
    """A validated course file: ``points`` maps check ids to this course's points."""

    path: Path
    points: Mapping[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        """A digest of what the course changes (not of comments or order; None when it
        changes nothing): a rerun of ``lab3 grade`` regrades a submission graded under
        another course."""
        if not self.points:
            return None
        text = json.dumps(sorted(self.points.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line for every output: what the course file changed, and the total."""
        changed = [c for c in effective_checks(self) if c.table_points is not None]
        off = [c.id for c in changed if c.switched_off]
        weights = [f"{c.id} {c.table_points:g} -> {c.points:g}" for c in changed
                   if not c.switched_off]
        parts = ([f"switched off {', '.join(off)}"] if off else []) + \
            ([f"reweighted {'; '.join(weights)}"] if weights else [])
        return (f"course file {self.path.name} ({self.key}): "
                f"{'; '.join(parts) or 'the table unchanged'}; total {total_points(self):g}")


def course_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The course file to use: ``explicit``, else ``$LAB3_COURSE_FILE``, else the checkout's
    ``.lab3/course.toml`` when it exists; None when there is none (or ``none`` was given).

    Raises:
        CourseError: ``explicit`` or the variable names a file that does not exist.
    """
    for chosen, source in ((explicit, "--course"), (os.environ.get(COURSE_ENV), COURSE_ENV)):
        if chosen is None or str(chosen) == "":
            continue
        if str(chosen).strip().lower() == NO_COURSE:
            return None
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise CourseError(f"{source} {chosen}: no such file; name an existing course "
                              f"file, or '{NO_COURSE}' to grade with the table's own points")
        return path
    return DEFAULT_COURSE_PATH if DEFAULT_COURSE_PATH.is_file() else None


def find_course(explicit: str | os.PathLike[str] | None = None) -> Course | None:
    """The course file :func:`course_path` chooses, validated; None when there is none.

    Raises:
        CourseError: the file is missing, unreadable or invalid.
    """
    path = course_path(explicit)
    return None if path is None else load_course(path)


def load_course(path: str | os.PathLike[str]) -> Course:
    """Read and validate the course file at ``path``.

    Raises:
        CourseError: every problem found, each with what to change.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"course file {path}: cannot be read ({exc})") from exc
    return Course(path=path, points=parse_course(text, str(path)))


def parse_course(text: str, source: str = "course file") -> dict[str, float]:
    """The ``[checks]`` table of a course file's text, validated: check id -> points.

    Raises:
        CourseError: not TOML, keys other than ``[checks]``, unknown check ids (with the
            ids meant), points that are not a number from 0 to :data:`MAX_CHECK_POINTS`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{source}: not valid TOML ({exc}); a course file looks like\n"
                          f"{EXAMPLE}") from None
    problems = [f"unknown key {key!r}: a course file has one table, [checks]"
                for key in data if key != "checks"]
    checks = data.get("checks")
    if checks is None:
        problems.append("no [checks] table: add one, with a line per check to change "
                        '(e.g. "graph::conv_names" = 0)')
        checks = {}
    elif not isinstance(checks, dict):
        problems.append("checks must be a table: write [checks] on a line of its own, then "
                        'one line per check ("graph::conv_names" = 0)')
        checks = {}
    points: dict[str, float] = {}
    for key, value in checks.items():
        problem = _key_problem(key, value) or _value_problem(key, value)
        if problem:
            problems.append(problem)
        else:
            points[key] = value
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise CourseError(f"{source}: {len(problems)} problem(s):\n{listed}")
    return points


EXAMPLE = '''    [checks]
    "graph::conv_names" = 0                 # switched off
    "integrated_gradients::agreement" = 8   # reweighted'''


def _key_problem(key: str, value: object) -> str | None:
    ids = [c.id for c in CHECKS]
    if key in ids:
        return None
    if isinstance(value, dict):  # [checks.graph] or graph.conv_names = 0: a dotted key
        return (f"{key!r} is a table; quote each check id with its '::', e.g. "
                f'"{key}::{next(iter(value), "name")}" = {_show(next(iter(value.values()), 0))}')
    tasks = {t.module for t in TASKS}
    if key in tasks:
        return (f"{key!r} is a task, not a check; name its checks: "
                f"{', '.join(c.id for c in CHECKS if c.task == key)}")
    named = [c.id for c in CHECKS if c.name == key]
    close = named or difflib.get_close_matches(key, ids, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        "`lab3 points` lists the checks (ids are task::name)"
    return f"unknown check {key!r}: {hint}"


def _value_problem(key: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (f"{key!r} = {_show(value)}: points must be a number (0 switches the check "
                f"off)")
    if math.isnan(value) or value < 0 or value > MAX_CHECK_POINTS:
        return (f"{key!r} = {_show(value)}: points must be from 0 (switched off) to "
                f"{MAX_CHECK_POINTS}")
    return None


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)
