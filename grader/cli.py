"""``lab3``: the instructor's command line (also ``python -m grader``).

Thin on purpose: argparse turns the command line into keyword arguments of
:func:`grader.run.batch.grade_batch` and :func:`grader.outputs.gradescope.build_autograder_zip`,
whose keyword defaults are the options' defaults (so the two never disagree):
``build_autograder_zip.__kwdefaults__``, and ``grade_batch``'s read from
``grader/run/batch.py``'s source by :func:`grade_defaults`, because importing
``grader.run.batch`` imports torch (seconds) and ``lab3 ... --help`` imports nothing heavy.

Commands::

    lab3 grade SUBMISSION... --out DIR [-j N] [--timeout S] [--task-timeout S] [--memory MB]
               [--sandbox auto|bwrap|none] [--weights auto|standin|pretrained|PATH] [--force]
               [--variant graded|practice] [--secret FILE] [--course FILE]
    lab3 gradescope OUT.zip [--weights ...] [--secret FILE] [--course FILE]
    lab3 release OUT_DIR [--weights ...] [--force] [--course FILE]
    lab3 points [--course FILE]

``--course FILE`` (else ``$LAB3_COURSE_FILE``, else ``.lab3/course.toml``; ``none``: no
course file) switches checks off or reweights them: :mod:`grader.course`.

Exit codes: 0 every submission was graded (whatever the scores; a submission
that cannot be graded at all gets 0 points with the reason), 1 the grader
itself failed (no reference records, a grader error on some submission),
2 usage errors (bad options, no submission found, bubblewrap asked for but
unusable), 130 interrupted (finished submissions are kept; rerun to resume).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.check.results import format_points
from grader.errors import Lab3Error, UsageError
from grader.options import (  # noqa: F401 (the validators' old home)
    add_option,
    parse_course,
    parse_jobs,
    parse_memory,
    parse_sandbox,
    parse_seconds,
    parse_task_list,
    parse_weights_spec,
)
from grader.outputs.terminal import printable
from grader.paths import BATCH_SOURCE


def grade_defaults() -> dict[str, Any]:
    """``grade_batch``'s keyword defaults, as ``grade_batch.__kwdefaults__`` holds them.

    Read from ``grader/run/batch.py`` with :mod:`ast` (literals, or module-level constants
    holding one) so that ``lab3 grade --help`` does not import torch; a default that is
    neither makes this import ``grader.run.batch`` instead (correct, only slower).
    """
    tree = ast.parse(BATCH_SOURCE.read_text(encoding="utf-8"))
    constants: dict[str, Any] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else getattr(node, "target", None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                constants[target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    try:
        (function,) = [n for n in tree.body
                       if isinstance(n, ast.FunctionDef) and n.name == "grade_batch"]
        return {arg.arg: constants[default.id] if isinstance(default, ast.Name)
                else ast.literal_eval(default)
                for arg, default in zip(function.args.kwonlyargs, function.args.kw_defaults,
                                        strict=True) if default is not None}
    except (ValueError, KeyError):
        from grader.run.batch import grade_batch

        return dict(grade_batch.__kwdefaults__)


def build_parser() -> argparse.ArgumentParser:
    """``lab3``'s parser; its options are :mod:`grader.options`'s definitions, with each
    command's defaults (``grade_batch``'s, ``build_autograder_zip``'s, ...)."""
    from grader.outputs.gradescope import build_autograder_zip

    defaults = grade_defaults()
    parser = argparse.ArgumentParser(
        prog="lab3", description="Laboratory 3 grading tools for instructors.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = commands.add_parser(
        "grade", help="grade submissions, each isolated in a sandboxed child process",
        description="Grade SUBMISSIONs (folders holding a filled-in student_template/, .zip "
                    "files of one, or the names reference / student_template) into DIR: "
                    "DIR/NAME/results.json (Gradescope format), DIR/NAME/feedback.html, "
                    "DIR/summary.csv and DIR/answers.csv.")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grade.add_argument("--out", required=True, metavar="DIR",
                       help="output folder (created; a rerun resumes in it)")
    group = grade.add_argument_group("isolation and limits")
    for name in ("jobs", "timeout", "task_timeout", "memory", "sandbox_mode"):
        add_option(group.add_argument, name, default=defaults[name])
    add_option(grade.add_argument, "weights", default=defaults["weights"])
    add_option(grade.add_argument, "device", default=defaults["device"])
    add_option(grade.add_argument, "force", note="regrade submissions that already have "
               "results.json", default_text="skip them, so an interrupted batch resumes")
    add_option(grade.add_argument, "tasks", default=defaults["tasks"])
    inputs = grade.add_argument_group("probe inputs")
    add_option(inputs.add_argument, "variant", default=defaults["variant"])
    add_option(inputs.add_argument, "secret", default=defaults["secret"])
    add_option(grade.add_argument, "course", default=defaults["course"])
    add_option(grade.add_argument, "run_top_level",
               note="give it time: --task-timeout 600")
    add_option(grade.add_argument, "quiet")
    grade.set_defaults(handler=_grade)

    zip_defaults = build_autograder_zip.__kwdefaults__
    gradescope = commands.add_parser(
        "gradescope", help="build a Gradescope autograder zip running the same grader",
        description="Write a Gradescope autograder zip (setup.sh, run_autograder, the grader, "
                    "the reference's records, no reference code).")
    gradescope.add_argument("zip_path", metavar="OUT.zip")
    add_option(gradescope.add_argument, "weights", default=zip_defaults["weights"],
               note="the autograder grades with them")
    add_option(gradescope.add_argument, "secret", default=zip_defaults["secret"],
               note="the zip carries it")
    add_option(gradescope.add_argument, "timeout", default=zip_defaults["timeout"],
               note="on Gradescope (the autograder's lab3 grade --timeout)")
    add_option(gradescope.add_argument, "course", default=zip_defaults["course"],
               note="the zip carries it")
    gradescope.set_defaults(handler=_gradescope)

    release = commands.add_parser(
        "release", help="write the student distribution (no reference code, no hidden checks)",
        description="Write the student release to OUT_DIR: student_template/, the grader without "
                    "hidden checks, tests/lab/, the photos, a student README and Makefile, and "
                    "the reference's records as plain data (stand-in weights, plus --weights "
                    "when it resolves to other weights). Needs reference/ or its cached records.")
    release.add_argument("out_dir", metavar="OUT_DIR")
    add_option(release.add_argument, "weights", default="auto",
               note="the release also ships records for them when they are not the stand-in",
               default_text="auto, i.e. the real weights if present")
    add_option(release.add_argument, "force", note="replace OUT_DIR when it is not empty",
               default_text="refuse a non-empty OUT_DIR")
    add_option(release.add_argument, "course", default=None,
               note="the release's table follows it")
    release.set_defaults(handler=_release)

    notebook = commands.add_parser(
        "notebook", help="write the lab's Jupyter notebooks (student; reference for instructors)",
        description="Write the student notebook generated from student_template/ and, with "
                    "--reference, the same from reference/, executed with its figures.")
    notebook.add_argument("--student", required=True, type=Path, metavar="OUT.ipynb",
                          help="where to write the student notebook")
    notebook.add_argument("--reference", type=Path, default=None, metavar="OUT.ipynb",
                          help="also write the executed reference notebook (default: not written)")
    notebook.add_argument("--no-execute", dest="execute", action="store_false",
                          help="write the reference notebook without running it (default: run it)")
    add_option(notebook.add_argument, "weights", default="auto",
               note="the reference notebook runs with them")
    notebook.set_defaults(handler=_notebook)

    points = commands.add_parser(
        "points", help="print the points table as markdown",
        description="Print the points table of grader/points.py as a markdown table: each "
                    "task's checks, their points and what each checks (the README's table "
                    "is this output, without a course file). With a course file, its "
                    "points and the total it gives.")
    add_option(points.add_argument, "course", default=None)
    points.set_defaults(handler=_points)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lab3`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except Lab3Error as exc:  # the one place errors become exit codes (grader/errors.py)
        print(printable(f"lab3 {args.command}: {exc.label}: {exc}"), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `lab3 points | head`: the reader left; Python's documented way to leave quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _grade(args: argparse.Namespace) -> int:
    from grader.run.batch import grade_batch

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler")}
    submissions = options.pop("submissions")
    result = grade_batch(submissions, **options)
    print(printable(result.table))
    out = Path(args.out).resolve()
    print(f"\nfeedback pages: {out}/<submission>/feedback.html; summary: {out / 'summary.csv'}; "
          f"answers: {out / 'answers.csv'} ({result.seconds:.1f} s)")
    for name, error in result.errors:
        print(printable(f"NOT GRADED {name}: {error}"), file=sys.stderr)
    return result.exit_code


def _gradescope(args: argparse.Namespace) -> int:
    from grader.outputs.gradescope import build_autograder_zip

    path = build_autograder_zip(args.zip_path, weights=args.weights, timeout=args.timeout,
                                secret=args.secret, course=args.course)
    print(f"Gradescope autograder written to {path}")
    return 0


def _release(args: argparse.Namespace) -> int:
    try:
        from grader.distribute.release import build_release
    except ImportError:
        raise UsageError("run it in the instructor's repository (a student release cannot "
                         "make another)") from None
    path, records = build_release(args.out_dir, weights=args.weights, force=args.force,
                                  course=args.course)
    print(f"student release written to {path}")
    for line in records:
        print(f"  {line}")
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from grader.distribute.notebook_writer import notebook_main

    return notebook_main(student=args.student, reference=args.reference,
                         execute=args.execute, weights=args.weights)


def points_markdown(course=None) -> str:
    """The points table as a markdown table, at ``course``'s points
    (:func:`grader.points.effective_checks`; None: the table of grader/points.py). The last
    column says why a check tests what the handout does not ask for."""
    from grader.points import TASKS, effective_checks, total_points

    table = effective_checks(course)
    lines = ["| Task | Check | Points | What it checks | Not asked by the handout |",
             "|---|---|---:|---|---|"]
    for task in TASKS:
        checks = [c for c in table if c.task == task.module]
        subtotal = sum(c.points for c in checks)
        lines.append(f"| **{task.title}** (`{task.module}`) | | **{format_points(subtotal)}** "
                     "| | |")
        for check in checks:
            hidden = " *(hidden: runs only in `lab3 grade`)*" if check.hidden else ""
            points = format_points(check.points)
            if check.table_points is not None:
                points += f" ({'off; ' if check.switched_off else ''}table: " \
                          f"{format_points(check.table_points)})"
            lines.append(f"| | `{check.name}` | {points} | {check.description}{hidden} | "
                         f"{check.beyond_handout}".rstrip() + " |")
    lines.append(f"| **Total** | | **{format_points(total_points(course))}** | | |")
    if course is not None:
        lines.append(f"\n{course.describe()}")
    return "\n".join(lines)


def _points(args: argparse.Namespace) -> int:
    from grader.course import find_course

    print(points_markdown(find_course(args.course)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
