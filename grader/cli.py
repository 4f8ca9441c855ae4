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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.check.results import format_points
from grader.outputs.terminal import printable

BATCH_SOURCE = Path(__file__).resolve().parent / "run" / "batch.py"


def parse_weights_spec(value: str) -> str:
    """argparse type of ``--weights`` (:func:`grader.refdata.weights.parse_weights_spec`, imported
    when an option is parsed: it imports torch)."""
    from grader.refdata.weights import parse_weights_spec as parse

    return parse(value)


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


def parse_jobs(value: str) -> int:
    """argparse type of ``-j``: a whole number of parallel workers, at least 1."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-j {value!r}: expected a whole number >= 1") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"-j {value}: expected a whole number >= 1")
    return jobs


def parse_seconds(value: str) -> float:
    """argparse type of the time limits: a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value}: expected a positive, finite number of seconds")
    return seconds


def parse_memory(value: str) -> int:
    """argparse type of ``--memory``: megabytes of address space per child, at least 4096."""
    try:
        mb = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--memory {value!r}: expected whole megabytes") from None
    if mb < 4096:
        raise argparse.ArgumentTypeError(
            f"--memory {mb}: at least 4096 MB of address space (importing torch and the "
            "libraries already maps about 3.6 GB, of which under 1 GB is resident)")
    return mb


def parse_sandbox(value: str) -> str:
    from grader.run.sandbox import SANDBOX_MODES

    if value not in SANDBOX_MODES:
        raise argparse.ArgumentTypeError(
            f"--sandbox {value!r}: expected one of {', '.join(SANDBOX_MODES)}")
    return value


def parse_course(value: str) -> str:
    """argparse type of ``--course``: a valid course file (:mod:`grader.course`), or ``none``."""
    from grader.course import CourseError, find_course

    try:
        find_course(value)
    except CourseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


COURSE_HELP = ("course file switching checks off or reweighting them (TOML, [checks]); none: "
               "the table's own points (default: $LAB3_COURSE_FILE, else .lab3/course.toml in "
               "this checkout when it exists)")


def parse_task_list(value: str) -> str:
    """argparse type of ``--tasks``: comma-separated task names of grader/points.py."""
    from grader.run.batch import UsageError, parse_tasks

    try:
        parse_tasks(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
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
    group.add_argument("-j", "--jobs", dest="jobs", type=parse_jobs, metavar="N",
                       default=defaults["jobs"],
                       help=f"submissions graded in parallel (default: {defaults['jobs']})")
    group.add_argument("--timeout", dest="timeout", type=parse_seconds, metavar="SECONDS",
                       default=defaults["timeout"],
                       help=f"wall-clock limit per submission (default: {defaults['timeout']:g})")
    group.add_argument("--task-timeout", dest="task_timeout", type=parse_seconds,
                       metavar="SECONDS", default=defaults["task_timeout"],
                       help="wall-clock limit per task; a task over it scores 0 and the others "
                            f"are still graded (default: {defaults['task_timeout']:g})")
    group.add_argument("--memory", dest="memory", type=parse_memory, metavar="MB",
                       default=defaults["memory"],
                       help="address-space (virtual memory) limit per child process in MB; "
                            "torch alone maps about 3.6 GB of it "
                            f"(default: {defaults['memory']})")
    group.add_argument("--sandbox", dest="sandbox_mode", type=parse_sandbox,
                       metavar="auto|bwrap|none", default=defaults["sandbox_mode"],
                       help="bubblewrap isolation: auto uses it when it works here, bwrap "
                            "requires it, none runs without it (resource limits only) "
                            f"(default: {defaults['sandbox_mode']})")
    grade.add_argument("--weights", dest="weights", type=parse_weights_spec, metavar="SPEC",
                       default=defaults["weights"],
                       help="ResNet-34 weights: auto, standin, pretrained or a checkpoint path "
                            f"(default: {defaults['weights']})")
    grade.add_argument("--device", dest="device", metavar="DEVICE", default=defaults["device"],
                       help=f"torch device of the probes (default: {defaults['device']})")
    grade.add_argument("--force", dest="force", action="store_true",
                       help="regrade submissions that already have results.json "
                            "(default: skip them, so an interrupted batch resumes)")
    grade.add_argument("--tasks", dest="tasks", type=parse_task_list, metavar="LIST",
                       default=defaults["tasks"],
                       help="grade only these comma-separated tasks, e.g. model,preprocessing "
                            "(for testing the grader; default: all)")
    inputs = grade.add_argument_group("probe inputs")
    inputs.add_argument("--variant", dest="variant", choices=("graded", "practice"),
                        default=defaults["variant"],
                        help="graded: inputs derived from the course secret, which students "
                             "never saw; practice: the published inputs of pytest --impl "
                             f"(default: {defaults['variant']})")
    inputs.add_argument("--secret", dest="secret", metavar="FILE", default=defaults["secret"],
                        help="the course secret of the graded variant, created on first use "
                             "(default: $LAB3_COURSE_SECRET, else .lab3/course-secret in this "
                             "checkout)")
    grade.add_argument("--course", dest="course", type=parse_course, metavar="FILE",
                       default=defaults["course"], help=COURSE_HELP)
    grade.add_argument("--run-top-level", dest="run_top_level", action="store_true",
                       help="for scripts and notebooks written from the handout: run their "
                            "top-level code in the sandbox with offline stand-ins for the "
                            "handout's downloads; Task 1 is then graded on the model and labels "
                            "it builds, and the tasks it does as top-level code get a 'graded by "
                            "hand' note (give it time: --task-timeout 600; default: off)")
    grade.add_argument("-q", "--quiet", dest="quiet", action="store_true",
                       help="no progress output, only the final table (default: off)")
    grade.set_defaults(handler=_grade)

    zip_defaults = build_autograder_zip.__kwdefaults__
    gradescope = commands.add_parser(
        "gradescope", help="build a Gradescope autograder zip running the same grader",
        description="Write a Gradescope autograder zip (setup.sh, run_autograder, the grader, "
                    "the reference's records, no reference code).")
    gradescope.add_argument("zip_path", metavar="OUT.zip")
    gradescope.add_argument("--weights", dest="weights", type=parse_weights_spec, metavar="SPEC",
                            default=zip_defaults["weights"],
                            help="weights the autograder grades with (default: "
                                 f"{zip_defaults['weights']})")
    gradescope.add_argument("--secret", dest="secret", metavar="FILE", default=zip_defaults["secret"],
                            help="the course secret whose graded variant the autograder "
                                 "probes; the zip carries it (default: as for lab3 grade)")
    gradescope.add_argument("--timeout", dest="timeout", type=parse_seconds, metavar="SECONDS",
                            default=zip_defaults["timeout"],
                            help="lab3 grade --timeout on Gradescope (default: "
                                 f"{zip_defaults['timeout']:g})")
    gradescope.add_argument("--course", dest="course", type=parse_course, metavar="FILE",
                            default=zip_defaults["course"],
                            help=COURSE_HELP + "; the zip carries it")
    gradescope.set_defaults(handler=_gradescope)

    release = commands.add_parser(
        "release", help="write the student distribution (no reference code, no hidden checks)",
        description="Write the student release to OUT_DIR: student_template/, the grader without "
                    "hidden checks, tests/lab/, the photos, a student README and Makefile, and "
                    "the reference's records as plain data (stand-in weights, plus --weights "
                    "when it resolves to other weights). Needs reference/ or its cached records.")
    release.add_argument("out_dir", metavar="OUT_DIR")
    release.add_argument("--weights", dest="weights", type=parse_weights_spec, metavar="SPEC",
                         default="auto",
                         help="also ship records for these weights when they are not the "
                              "stand-in (default: auto, i.e. the real weights if present)")
    release.add_argument("--force", dest="force", action="store_true",
                         help="replace OUT_DIR when it is not empty")
    release.add_argument("--course", dest="course", type=parse_course, metavar="FILE",
                         default=None, help=COURSE_HELP + "; the release's table follows it")
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
    notebook.add_argument("--weights", dest="weights", type=parse_weights_spec, metavar="SPEC",
                          default="auto", help="weights the reference notebook runs with "
                          "(default: auto)")
    notebook.set_defaults(handler=_notebook)

    points = commands.add_parser(
        "points", help="print the points table as markdown",
        description="Print the points table of grader/points.py as a markdown table: each "
                    "task's checks, their points and what each checks (the README's table "
                    "is this output, without a course file). With a course file, its "
                    "points and the total it gives.")
    points.add_argument("--course", dest="course", type=parse_course, metavar="FILE",
                        default=None, help=COURSE_HELP)
    points.set_defaults(handler=_points)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lab3`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    return args.handler(args)


def _grade(args: argparse.Namespace) -> int:
    from grader.run.batch import GraderError, UsageError, grade_batch

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler")}
    submissions = options.pop("submissions")
    try:
        result = grade_batch(submissions, **options)
    except UsageError as exc:
        print(f"lab3 grade: error: {exc}", file=sys.stderr)
        return 2
    except GraderError as exc:
        print(f"lab3 grade: grader problem: {exc}", file=sys.stderr)
        return 1
    print(printable(result.table))
    out = Path(args.out).resolve()
    print(f"\nfeedback pages: {out}/<submission>/feedback.html; summary: {out / 'summary.csv'}; "
          f"answers: {out / 'answers.csv'} ({result.seconds:.1f} s)")
    for name, error in result.errors:
        print(printable(f"NOT GRADED {name}: {error}"), file=sys.stderr)
    return result.exit_code


def _gradescope(args: argparse.Namespace) -> int:
    from grader.course import CourseError
    from grader.outputs.gradescope import build_autograder_zip
    from grader.refdata.weights import WeightsError
    from grader.run.batch import GraderError
    from grader.run.variant import SecretError

    try:
        path = build_autograder_zip(args.zip_path, weights=args.weights, timeout=args.timeout,
                                    secret=args.secret, course=args.course)
    except (WeightsError, SecretError, CourseError) as exc:
        print(f"lab3 gradescope: error: {exc}", file=sys.stderr)
        return 2
    except GraderError as exc:
        print(f"lab3 gradescope: grader problem: {exc}", file=sys.stderr)
        return 1
    print(f"Gradescope autograder written to {path}")
    return 0


def _release(args: argparse.Namespace) -> int:
    try:
        from grader.distribute.release import ReleaseError, build_release
    except ImportError:
        print("lab3 release: error: run it in the instructor's repository (a student release "
              "cannot make another)", file=sys.stderr)
        return 2
    from grader.course import CourseError
    from grader.refdata.weights import WeightsError

    try:
        path, records = build_release(args.out_dir, weights=args.weights, force=args.force,
                                      course=args.course)
    except (WeightsError, CourseError) as exc:
        print(f"lab3 release: error: {exc}", file=sys.stderr)
        return 2
    except ReleaseError as exc:
        print(f"lab3 release: error: {exc}", file=sys.stderr)
        return 1
    print(f"student release written to {path}")
    for line in records:
        print(f"  {line}")
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from grader.submission.notebook import notebook_main

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
    from grader.course import CourseError, find_course

    try:
        course = find_course(args.course)
    except CourseError as exc:
        print(f"lab3 points: error: {exc}", file=sys.stderr)
        return 2
    print(points_markdown(course))
    return 0


if __name__ == "__main__":
    sys.exit(main())
