"""grader/options.py: each option of ``lab3`` and of the pytest plugin is defined once; the
plugin's answer to ``--lab3-NAME`` and to their old unprefixed flags; the validators' messages."""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

from grader import options, pytest_plugin
from grader.options import OPTIONS, add_option, option_flags

ROOT = Path(__file__).resolve().parents[2]
GRADER = ROOT / "grader"
# The sandboxed child's and the zygote's command lines: a protocol between the grader's own
# processes, which shares some names with the options but is no option of a user.
INTERNAL = {"child.py", "zygote.py"}
FLAGS = {flag for option in OPTIONS.values() for flag in option.flags}


def defined_flags(path: Path) -> set[str]:
    """The flags named as literals in ``add_argument`` / ``addoption`` calls of ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("add_argument", "addoption"):
            found |= {a.value for a in node.args
                      if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return found


def test_every_option_is_defined_only_in_options_py() -> None:
    for path in sorted(GRADER.rglob("*.py")):
        if path.name not in INTERNAL:
            assert not defined_flags(path) & FLAGS, path
    holders = [p.name for p in GRADER.rglob("*.py") if '"--weights"' in p.read_text()]
    assert holders == ["options.py"]


def test_each_flag_has_one_definition() -> None:
    flags = [flag for option in OPTIONS.values() for flag in option.flags]
    assert len(flags) == len(set(flags))
    for option in OPTIONS.values():
        assert option.help and "default" not in option.help, option.dest


def test_help_ends_with_the_default() -> None:
    parser = argparse.ArgumentParser()
    action = add_option(parser.add_argument, "timeout", default=300.0, note="per try")
    assert action.help == "wall-clock limit per submission; per try (default: 300)"
    assert parser.parse_args([]).timeout == 300.0
    action = add_option(parser.add_argument, "course")
    assert action.help.endswith("(default: $LAB3_COURSE_FILE, else .lab3/course.toml in the "
                                "grader's checkout when it exists)")


def test_prefixed_flags_keep_the_unprefixed_ones_as_aliases() -> None:
    assert option_flags("weights", prefix="lab3-") == ["--lab3-weights", "--weights"]
    assert option_flags("jobs", prefix="lab3-") == ["--lab3-jobs", "-j", "--jobs"]
    assert option_flags("jobs", prefix="lab3-", aliases=False) == ["--lab3-jobs"]
    assert option_flags("jobs") == ["-j", "--jobs"]


def plugin_parser() -> Parser:
    parser = Parser(_ispytest=True)  # pytest's own parser, as pytest_addoption gets it
    pytest_plugin.pytest_addoption(parser)
    return parser


@pytest.mark.parametrize("flag", ["--lab3-weights", "--weights"])
def test_plugin_accepts_prefixed_and_old_flags(flag: str) -> None:
    args = plugin_parser().parse([flag, "standin", "--impl", "student_template",
                                  "--lab3-device", "cpu", "--run-top-level"])
    assert args.lab3_weights == "standin"
    assert args.lab3_impl == "student_template" and args.lab3_device == "cpu"
    assert args.lab3_run_top_level is True


def test_plugin_defaults_are_unchanged() -> None:
    args = plugin_parser().parse([])
    assert (args.lab3_impl, args.lab3_weights, args.lab3_device, args.lab3_results,
            args.lab3_course, args.lab3_run_top_level) == (None, "auto", "cpu", None, None, False)


def test_pytest_help_lists_the_lab3_options() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--help"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in pytest_plugin.PLUGIN_OPTIONS:
        flag = OPTIONS[name].flags[-1]
        assert f"--lab3-{flag[2:]}" in run.stdout, flag
        assert f", {flag}" in run.stdout, flag


@pytest.mark.parametrize(("parse", "value", "message"), [
    (options.parse_jobs, "0", "-j 0: expected a whole number >= 1"),
    (options.parse_jobs, "two", "-j 'two': expected a whole number >= 1"),
    (options.parse_seconds, "-5", "-5: expected a positive, finite number of seconds"),
    (options.parse_seconds, "inf", "inf: expected a positive, finite number of seconds"),
    (options.parse_seconds, "soon", "'soon': expected a number of seconds"),
    (options.parse_memory, "100", "--memory 100: at least 4096 MB of address space"),
    (options.parse_memory, "lots", "--memory 'lots': expected whole megabytes"),
    (options.parse_sandbox, "docker", "--sandbox 'docker': expected one of auto"),
    (options.parse_task_list, "model,nonsense", "--tasks: unknown"),
    (options.parse_course, "/no/such/course.toml", "--course /no/such/course.toml: no such "
                                                   "file"),
    (options.parse_weights_spec, "/no/such/weights.pth", "--weights '/no/such/weights.pth': "
                                                         "expected auto, standin, pretrained"),
    (options.parse_impl_spec, "no/such/folder", "--impl 'no/such/folder': no such folder"),
])
def test_validators_reject_a_bad_value_saying_what_they_expect(parse, value: str,
                                                               message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(value)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("parse", "value", "result"), [
    (options.parse_jobs, "4", 4),
    (options.parse_seconds, "2.5", 2.5),
    (options.parse_memory, "4096", 4096),
    (options.parse_sandbox, "none", "none"),
    (options.parse_task_list, "model,graph", "model,graph"),
    (options.parse_course, "none", "none"),
    (options.parse_weights_spec, "standin", "standin"),
    (options.parse_impl_spec, "student_template", "student_template"),
])
def test_validators_accept_a_good_value(parse, value: str, result) -> None:
    assert parse(value) == result
