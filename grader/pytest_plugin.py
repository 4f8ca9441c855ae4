"""The lab3 pytest plugin: options, markers, fixtures and the score table, in one module.

``pytest`` grades ``reference/`` (CI regression); ``pytest --impl PATH`` grades
another implementation in this process (fast and friendly, not isolated: for
isolation use ``lab3 grade``). The grading logic lives in :class:`LabSession`,
kept in ``config.stash``.

How it is loaded: by the ``pytest11`` entry point (``pyproject.toml``) wherever the
lab is installed, before pytest reads its command line, so ``--impl PATH`` is an
option in any directory; else by the root ``conftest.py`` (``pytest_plugins``), which
pytest skips when the entry point, registered under the same name, already loaded it.

``--impl`` without test paths runs the lab's checks (``tests/lab`` next to this
package) from any directory, with the lab's own pytest settings
(``[tool.pytest.ini_options]`` of its ``pyproject.toml``) where pytest found
another configuration file or none: see :func:`pytest_load_initial_conftests`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grader.check.results import CheckResult, GradeReport, TaskResult
from grader.options import add_option, parse_impl_spec  # noqa: F401 (its old home)
from grader.paths import PROJECT_ROOT
from grader.points import CHECKS, CheckSpec, effective_checks, task_spec
from grader.refdata.weights import ResolvedWeights, activate, resolve_weights
from grader.settings import DEFAULT_SETTINGS

_REPO = PROJECT_ROOT
_LAB_TESTS = _REPO / "tests" / "lab"
_LAB_CONFIG = _REPO / "pyproject.toml"
DEFAULT_IMPL = "reference"


def default_impl() -> str:
    """What ``pytest`` grades without ``--impl``: the reference where it is installed (CI),
    else the student's ``student_template`` (a student release has no reference)."""
    import importlib.util

    return DEFAULT_IMPL if importlib.util.find_spec(DEFAULT_IMPL) else "student_template"


def lab_ini() -> dict[str, Any]:
    """The lab's pytest settings: ``[tool.pytest.ini_options]`` (or pytest 9's native
    ``[tool.pytest]``) of the ``pyproject.toml`` next to this package; empty without one."""
    try:
        tool = tomllib.loads(_LAB_CONFIG.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    table = tool.get("pytest", {})
    return table.get("ini_options", table)


def _ini_lines(value: str | list[str] | None, *, split: bool = False) -> list[str]:
    """A TOML ini value as a list: ``addopts`` split like a shell line, others one per line."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value) if split else [v for v in value.splitlines() if v.strip()]
    return [part for v in value for part in (shlex.split(v) if split else [v])]


def _is_lab_config(path: Path | None) -> bool:
    return path is not None and path.resolve() == _LAB_CONFIG.resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """``--impl`` anywhere: the lab's tests and settings, before pytest decides its test paths.

    Called only when the entry point (or ``-p grader.pytest_plugin``) loaded this plugin;
    the ``conftest.py`` fallback gets the same test paths in :func:`pytest_configure`.

    - Where pytest read another configuration file (or none: a student's own folder), the
      lab's ``addopts`` go first on the command line (``--import-mode=importlib``,
      ``-m "not slow and not scale"``, ...), so the user's own options still win.
    - Without test paths, the lab's tests are the test path, and pytest loads their
      ``conftest.py`` files as initial conftests (one found later while collecting could
      not hold ``pytest_plugins``).
    """
    known = early_config.known_args_namespace
    if getattr(known, "lab3_impl", None) is None:
        return
    if not _is_lab_config(early_config.inipath):
        args[:] = [*_ini_lines(lab_ini().get("addopts"), split=True), *args]
    if not known.file_or_dir:
        args.append(str(lab_tests()))
    # Parsed again, as pytest does after loading plugins, so that its own initial-conftest
    # hook (trylast) sees the test path and the import mode; it had filled in confcutdir.
    reparsed = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
    if reparsed.confcutdir is None:
        reparsed.confcutdir = known.confcutdir
    early_config.known_args_namespace = reparsed


def lab_tests() -> Path:
    """The lab's tests (``tests/lab`` next to this package), or a usage error saying where
    the lab is expected."""
    if not _LAB_TESTS.is_dir():
        raise pytest.UsageError(
            f"--impl: the lab's tests are not in {_LAB_TESTS} (this grader was imported from "
            f"{_REPO}); install the lab from its folder with `pip install -e .`, or pass the "
            "test paths (e.g. path/to/lab3/tests/lab)"
        )
    return _LAB_TESTS


def _marker_name(line: str) -> str:
    return re.split(r"[:(]", line, maxsplit=1)[0].strip()


def pytest_configure(config: pytest.Config) -> None:
    # No window may open under test: a student's plt.show() would block the run.
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The lab's markers, where pytest read another configuration file: this plugin marks
    # tests `harness` in any run, which --strict-markers refuses unless registered.
    ini = lab_ini()
    registered = {_marker_name(line) for line in config.getini("markers")}
    for line in _ini_lines(ini.get("markers")):
        if _marker_name(line) not in registered:
            config.addinivalue_line("markers", line)
    if config.getoption("lab3_impl") is None:
        return
    filters = config.getini("filterwarnings")
    for line in _ini_lines(ini.get("filterwarnings")):
        if line not in filters:
            config.addinivalue_line("filterwarnings", line)
    # No test paths, and the plugin loaded by conftest.py (the lab is not installed): the
    # lab's tests, as pytest_load_initial_conftests does for the entry point.
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(lab_tests())]


#: The plugin's options (:mod:`grader.options`), as ``--lab3-NAME`` with dest ``lab3_NAME``;
#: each unprefixed flag (``--impl``, the students' short flag; ``--weights``, ...) still answers.
PLUGIN_OPTIONS = ("impl", "weights", "device", "results", "course", "run_top_level")
OPTION_PREFIX = "lab3-"
DEST_PREFIX = "lab3_"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab3", "lab3 grading")
    for name in PLUGIN_OPTIONS:
        add_option(group.addoption, name, prefix=OPTION_PREFIX, dest_prefix=DEST_PREFIX,
                   # --course is read on first use, after the harness's conftest has set
                   # its environment; a bad file is then a usage error (LabSession.course).
                   **({"type": None} if name == "course" else {}))


class LabSession:
    """Grades one implementation in this process, one task at a time, on demand."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.impl_spec = config.getoption("lab3_impl") or default_impl()
        self.weights_spec = config.getoption("lab3_weights")
        self.device = config.getoption("lab3_device")
        self._weights: ResolvedWeights | None = None
        self._reference = None
        self._impl = None
        self._impl_error: str | None = None
        self._records: dict = {}
        self._results: dict[str, TaskResult] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="lab3-pytest-"))
        self._cctx = None
        self.notes: list[str] = []
        self._course: tuple | None = None

    @property
    def course(self):
        """The course file's points (:func:`grader.course.find_course`), read on first use
        (after the harness's conftest has set its environment); a usage error when invalid."""
        if self._course is None:
            from grader.course import CourseError, find_course

            try:
                course = find_course(self.config.getoption("lab3_course"))
            except CourseError as exc:
                raise pytest.UsageError(f"--course: {exc}") from None
            if course is not None and course.points:
                self.notes.append(course.describe())
            self._course = (course,)
        return self._course[0]

    def spec(self, check: CheckSpec) -> CheckSpec:
        """``check`` at this session's points (the course file's)."""
        return next(c for c in effective_checks(self.course) if c.id == check.id)

    @property
    def weights(self) -> ResolvedWeights:
        if self._weights is None:
            self._weights = resolve_weights(self.weights_spec)
            activate(self._weights)
        return self._weights

    def reference(self):
        """The reference's records of the practice variant, by the path `lab3 grade` takes
        (:func:`grader.refdata.reference_records.reference_for`: a release may carry stand-in records
        only, and other weights then fall back to the stand-in, with a note)."""
        if self._reference is None:
            from grader.refdata.reference_records import reference_for

            weights, self._reference = reference_for(self.weights, DEFAULT_SETTINGS,
                                                     device=self.device, notes=self.notes)
            if weights != self._weights:
                self._weights = weights
                activate(weights)
        return self._reference

    def task_result(self, task: str) -> TaskResult:
        if task not in self._results:
            from grader.check.grading import check_task, probe_task
            from grader.probe.implementation import load_implementation
            from grader.probe.inputs import FIXTURES_DIR
            from grader.probe.probing import ImplementationError, ProbeContext
            from grader.probe.records import Record

            reference = self.reference()
            if self._impl is None and self._impl_error is None:
                try:
                    self._impl = load_implementation(self.impl_spec)
                    locations = getattr(self._impl, "locations", None)
                    kind = "script" if getattr(locations, "unit", "") == "line" else "notebook"
                    self.notes.extend(f"{kind}: {n}" for n in getattr(self._impl, "notes", []))
                except ImplementationError as exc:
                    self._impl_error = str(exc)
            if self._impl_error is not None:
                record = Record(task=task, data={"import_error": self._impl_error})
            else:
                from grader.probe.top_level import RUN_SECONDS

                run = RUN_SECONDS if self.config.getoption("lab3_run_top_level") else None
                ctx = ProbeContext(impl=self._impl, weights=self.weights,
                                   settings=DEFAULT_SETTINGS, fixtures_dir=FIXTURES_DIR,
                                   scratch=self._scratch, device=self.device, run_top_level=run)
                record = probe_task(task, ctx)
                adapted = record.data.get("adapted")
                if isinstance(adapted, list):  # how a handout-shaped function was called
                    title = task_spec(task).title.split(":")[0]
                    self.notes.extend(f"{title}: {n}" for n in adapted if isinstance(n, str))
            self._records[task] = record
            self._results[task] = check_task(
                task, record, reference.records.get(task), self._check_context(),
                course=self.course,
            )
        return self._results[task]

    def _check_context(self):
        from grader.check.checking import CheckContext

        # Rebuilt when reference() fell back to the stand-in weights.
        if self._cctx is None or self._cctx.weights != self.weights:
            self._cctx = CheckContext(weights=self.weights)
        return self._cctx

    def check_result(self, spec: CheckSpec) -> CheckResult:
        for check in self.task_result(spec.task).checks:
            if check.name == spec.name:
                return check
        raise KeyError(spec.id)

    def report(self) -> GradeReport | None:
        if not self._results:
            return None
        from grader.check.grading import library_versions

        name = self._impl.name if self._impl is not None else str(self.impl_spec)
        return GradeReport(
            submission=name,
            tasks=[self._results[t] for t in self._results],
            weights=self.weights.to_dict(),
            versions=library_versions(),
            settings=DEFAULT_SETTINGS.to_dict(),
            reference_records=self._reference.describe() if self._reference else "",
            notes=self.notes,
        )


_SESSION = pytest.StashKey[LabSession]()


def lab_session(config: pytest.Config) -> LabSession:
    if _SESSION not in config.stash:
        config.stash[_SESSION] = LabSession(config)
    return config.stash[_SESSION]


def task_tests(task: str):
    """The test function for one task: one parametrized test per check of the points table.

    Used by ``tests/lab/test_<task>.py`` so each task's tests live in a file named
    like the task's module.
    """
    spec = task_spec(task)
    checks = [c for c in CHECKS if c.task == task]

    @pytest.mark.parametrize("check", checks, ids=[c.name for c in checks])
    def test_check(check: CheckSpec, request: pytest.FixtureRequest) -> None:
        session = lab_session(request.config)
        if session.spec(check).switched_off:
            pytest.skip(f"{spec.title} [{check.name}]: {session.spec(check).course_note}")
        result = session.check_result(check)
        if not result.passed:
            pytest.fail(f"{spec.title} [{check.name}]: {result.message}", pytrace=False)

    test_check.__name__ = f"test_{task}"
    test_check.__doc__ = f"{spec.title}: the checks of grader/tasks/{task}.py."
    return test_check


def _is_lab_test(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(_LAB_TESTS)


def _check_task(item: pytest.Item) -> str | None:
    """The task of a lab check (its ``check`` parameter, see :func:`task_tests`), else None."""
    callspec = getattr(item, "callspec", None)
    check = callspec.params.get("check") if callspec is not None else None
    return check.task if isinstance(check, CheckSpec) else None


def keyword_tasks(expression: str) -> set[str] | None:
    """The tasks a ``-k`` expression names when it is only task modules joined by ``or``
    (``model``, ``"model or graph"``), else None (an ordinary keyword expression)."""
    from grader.points import TASKS

    names = re.split(r"\s+or\s+", expression.strip())
    modules = {t.module for t in TASKS}
    return set(names) if all(name in modules for name in names) else None


def _deselect(config: pytest.Config, items: list[pytest.Item],
              drop: Callable[[pytest.Item], bool]) -> None:
    deselected = [i for i in items if drop(i)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if not drop(i)]


@pytest.hookimpl(tryfirst=True)  # before pytest's -m and -k, which see the harness marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not _is_lab_test(item):
            item.add_marker(pytest.mark.harness)
    # -k TASK is that task's checks only: as a substring `-k model` would also select
    # Task 5's model_untouched. Other tests still follow pytest's own -k.
    tasks = keyword_tasks(config.getoption("keyword") or "")
    if tasks is not None:
        _deselect(config, items, lambda i: _check_task(i) not in (*tasks, None))
    if config.getoption("lab3_impl") is not None:
        # With --impl the run is about that implementation: the harness's own tests are noise.
        _deselect(config, items, lambda i: not _is_lab_test(i))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU; none is available here")
    if item.get_closest_marker("pretrained"):
        weights = lab_session(item.config).weights
        if not weights.is_pretrained:
            pytest.skip(f"needs the real IMAGENET1K_V1 weights; this run uses {weights.id}")


@pytest.fixture(scope="session")
def resolved_weights(pytestconfig: pytest.Config) -> ResolvedWeights:
    """The weights of this run, activated so torchvision's IMAGENET1K_V1 loads them offline."""
    return lab_session(pytestconfig).weights


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("lab3_device")


@pytest.fixture(scope="session")
def trusted_model(resolved_weights: ResolvedWeights):
    """A torchvision ResNet-34 with the resolved weights, in eval mode. Do not modify it."""
    return resolved_weights.build_model()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        shutil.rmtree(session._scratch, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    impl = config.getoption("lab3_impl") or default_impl()
    return [f"lab3: grading --impl {impl} (weights: --weights {config.getoption('lab3_weights')})"]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    report = session.report() if session is not None else None
    if report is None:
        return
    tr = terminalreporter
    tr.section("lab3 score")
    tr.write_line(session.weights.describe())
    tr.write_line(report.reference_records)
    for note in report.notes:
        tr.write_line(note)
    tr.write_line(report.table())
    from grader.points import release_hidden_points, total_points

    hidden = release_hidden_points()
    if hidden:
        tr.write_line(
            f"This table shows the {total_points(session.course) - hidden:g} points you can "
            f"check here; further checks worth {hidden:g} points run when your "
            "submission is graded."
        )
    results = config.getoption("lab3_results")
    if results:
        Path(results).write_text(json.dumps(report.to_gradescope(), indent=2))
        tr.write_line(f"results.json written to {results}")
