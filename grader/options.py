"""Every option of ``lab3`` and of the pytest plugin, defined once.

The model is pytest-benchmark's ``add_display_options(addoption, prefix="benchmark-")``:
an option is added through a function taking ``addoption``, which is either argparse's
``parser.add_argument`` / ``group.add_argument`` (the ``lab3`` command line,
:mod:`grader.cli`) or pytest's ``group.addoption`` (:mod:`grader.pytest_plugin`, whose
options take the prefix ``lab3-`` and keep their unprefixed flags as aliases)::

    add_option(group.addoption, "weights", prefix="lab3-", dest_prefix="lab3_")
    # --lab3-weights / --weights (dest lab3_weights)

    add_option(grade.add_argument, "timeout", default=300.0)
    # --timeout SECONDS (dest timeout), help "... (default: 300)"

:data:`OPTIONS` holds the definitions (:class:`Option`: flags, dest, metavar, validator,
default, help); the ``parse_*`` validators raise :class:`argparse.ArgumentTypeError`
with what was expected. Importing this module imports nothing heavy (``lab3 --help``
stays fast): the validators import torch or the grader's modules when an option is parsed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OPTIONS", "Option", "add_option", "option_flags", "parse_course",
    "parse_impl_spec", "parse_jobs", "parse_memory", "parse_sandbox", "parse_seconds",
    "parse_task_list", "parse_weights_spec",
]

_UNSET: Any = object()


# --- validators (argparse / pytest ``type=``) -----------------------------------------------

def parse_weights_spec(value: str) -> str:
    """Type of ``--weights`` (:func:`grader.refdata.weights.parse_weights_spec`, imported when an
    option is parsed: it imports torch)."""
    from grader.refdata.weights import parse_weights_spec as parse

    return parse(value)


def parse_jobs(value: str) -> int:
    """Type of ``-j``: a whole number of parallel workers, at least 1."""
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-j {value!r}: expected a whole number >= 1") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"-j {value}: expected a whole number >= 1")
    return jobs


def parse_seconds(value: str) -> float:
    """Type of the time limits: a positive, finite number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value}: expected a positive, finite number of seconds")
    return seconds


def parse_memory(value: str) -> int:
    """Type of ``--memory``: megabytes per process and per submission, at least 4096."""
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
    """Type of ``--sandbox``: one of :data:`grader.run.sandbox.SANDBOX_MODES`."""
    from grader.run.sandbox import SANDBOX_MODES

    if value not in SANDBOX_MODES:
        raise argparse.ArgumentTypeError(
            f"--sandbox {value!r}: expected one of {', '.join(SANDBOX_MODES)}")
    return value


def parse_course(value: str) -> str:
    """Type of ``--course``: a valid course file (:mod:`grader.course`), or ``none``."""
    from grader.course import CourseError, find_course

    try:
        find_course(value)
    except CourseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def parse_task_list(value: str) -> str:
    """Type of ``--tasks``: comma-separated task names of grader/points.py."""
    from grader.errors import UsageError
    from grader.run.batch import parse_tasks

    try:
        parse_tasks(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def parse_impl_spec(value: str) -> str:
    """Type of ``--impl``: ``reference``, ``student_template``, or an existing folder, .zip,
    .ipynb or .py."""
    from grader.probe.implementation import BUILTIN_PACKAGES

    if value in BUILTIN_PACKAGES or Path(value).expanduser().exists():
        return value
    raise argparse.ArgumentTypeError(
        f"--impl {value!r}: no such folder, .zip, .ipynb or .py; pass your filled-in copy of "
        "student_template/ (a folder or a .zip of it), your lab notebook, or reference / "
        "student_template"
    )


# --- definitions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option: its flags (long ones ``--name``; a short one only where unprefixed), its
    ``dest``, and what ``addoption`` gets. ``help`` says what it does without the default:
    :func:`add_option` appends ``(default: ...)``, from ``default_text`` when given (a default
    that is None or found elsewhere), else from the default itself."""

    flags: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    default: Any = None
    default_text: str | None = None


#: The definitions, by dest (the keyword argument of grade_batch an option sets).
OPTIONS: dict[str, Option] = {o.dest: o for o in (
    Option(("--impl",), "impl", metavar="PATH", type=parse_impl_spec, default_text="reference",
           help="implementation to grade: a package folder, a .zip, a .ipynb or a .py "
                "script"),
    Option(("--weights",), "weights", metavar="SPEC", type=parse_weights_spec, default="auto",
           help="ResNet-34 weights: auto, standin, pretrained or a checkpoint path"),
    Option(("--device",), "device", metavar="DEVICE", default="cpu",
           help="torch device the probes run the implementation under test on"),
    Option(("--results",), "results", metavar="FILE", default_text="not written",
           help="write Gradescope's results.json to FILE"),
    Option(("--course",), "course", metavar="FILE", type=parse_course,
           default_text="$LAB3_COURSE_FILE, else .lab3/course.toml in the grader's checkout "
                        "when it exists",
           help="course file switching checks off or reweighting them (TOML, [checks]); "
                "none: the table's own points"),
    Option(("--run-top-level",), "run_top_level", action="store_true", default=False,
           help="for scripts and notebooks written from the handout: run their top-level code "
                "with offline stand-ins for the handout's downloads; Task 1 is then graded on "
                "the model and labels it builds, and the tasks it does as top-level code get a "
                "'graded by hand' note"),
    Option(("-j", "--jobs"), "jobs", metavar="N", type=parse_jobs, default=1,
           help="submissions graded in parallel"),
    Option(("--timeout",), "timeout", metavar="SECONDS", type=parse_seconds,
           help="wall-clock limit per submission"),
    Option(("--task-timeout",), "task_timeout", metavar="SECONDS", type=parse_seconds,
           help="wall-clock limit per task; a task over it scores 0 and the others are still "
                "graded"),
    Option(("--memory",), "memory", metavar="MB", type=parse_memory,
           help="memory limit in MB: each process's address space (torch alone maps about "
                "3.6 GB of it), and all the processes of a submission together (a memory "
                "cgroup where the grader runs as root and the machine allows one, else a "
                "watchdog)"),
    Option(("--sandbox",), "sandbox_mode", metavar="auto|bwrap|none", type=parse_sandbox,
           default="auto",
           help="bubblewrap isolation: auto uses it when it works here, bwrap requires it, "
                "none runs without it, with the resource limits only"),
    Option(("--force",), "force", action="store_true", default=False,
           help="overwrite earlier output"),
    Option(("--tasks",), "tasks", metavar="LIST", type=parse_task_list, default_text="all",
           help="grade only these comma-separated tasks, e.g. model,preprocessing, for "
                "testing the grader"),
    Option(("--variant",), "variant", choices=("graded", "practice"), default="graded",
           help="graded: inputs derived from the course secret, which students never saw; "
                "practice: the published inputs of pytest --impl"),
    Option(("--secret",), "secret", metavar="FILE",
           default_text="$LAB3_COURSE_SECRET, else .lab3/course-secret in this checkout",
           help="the course secret of the graded variant, created on first use"),
    Option(("-q", "--quiet"), "quiet", action="store_true", default=False,
           help="no progress output, only the final table"),
)}


def _describe(default: Any) -> str:
    if default is False:
        return "off"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def option_flags(name: str, *, prefix: str = "", aliases: bool = True) -> list[str]:
    """The flags of option ``name`` under ``prefix``: ``--{prefix}NAME`` first, then, with
    ``aliases``, the unprefixed flags (short ones only there, as in pytest-benchmark)."""
    flags = OPTIONS[name].flags
    if not prefix:
        return list(flags)
    prefixed = [f"--{prefix}{flag[2:]}" for flag in flags if flag.startswith("--")]
    return [*prefixed, *(flags if aliases else ())]


def add_option(
    addoption: Callable[..., Any], name: str, *, prefix: str = "", dest_prefix: str = "",
    aliases: bool = True, default: Any = _UNSET, default_text: str | None = None,
    note: str | None = None, type: Any = _UNSET,
) -> Any:
    """Add option ``name`` of :data:`OPTIONS` with ``addoption`` (argparse's ``add_argument``
    or pytest's ``addoption``; both take the same keywords).

    ``prefix``: the long flags become ``--{prefix}NAME`` (``aliases``: the unprefixed flags
    still answer); ``dest_prefix`` goes before the dest. ``default``: this command's default
    (else the definition's), said in the help as ``default_text`` when given. ``note``: what
    the option means for this command, after the definition's help. ``type``: this command's
    validator instead of the definition's (None: the value as given).
    """
    option = OPTIONS[name]
    default = option.default if default is _UNSET else default
    said = default_text or option.default_text or _describe(default)
    text = option.help + (f"; {note}" if note else "") + f" (default: {said})"
    keywords: dict[str, Any] = {
        "dest": dest_prefix + option.dest, "metavar": option.metavar,
        "type": option.type if type is _UNSET else type, "action": option.action,
        "choices": option.choices, "default": default, "help": text,
    }
    keywords = {k: v for k, v in keywords.items() if v is not None or k == "default"}
    return addoption(*option_flags(name, prefix=prefix, aliases=aliases), **keywords)

