"""The lab3 pytest plugin: options, markers, fixtures and the score table, in one module.

``pytest`` grades ``reference/`` (CI regression); ``pytest --impl PATH`` grades
another implementation in this process (fast and friendly, not isolated: for
isolation use ``lab3 grade``). The grading logic lives in :class:`LabSession`,
kept in ``config.stash``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from grader.points import CHECKS, CheckSpec, task_spec
from grader.results import CheckResult, GradeReport, TaskResult
from grader.settings import DEFAULT_SETTINGS
from grader.weights import ResolvedWeights, activate, parse_weights_spec, resolve_weights

_REPO = Path(__file__).resolve().parent.parent
_LAB_TESTS = _REPO / "tests" / "lab"
DEFAULT_IMPL = "reference"


def default_impl() -> str:
    """What ``pytest`` grades without ``--impl``: the reference where it is installed (CI),
    else the student's ``student_template`` (a student release has no reference)."""
    import importlib.util

    return DEFAULT_IMPL if importlib.util.find_spec(DEFAULT_IMPL) else "student_template"


def pytest_configure(config: pytest.Config) -> None:
    # No window may open under test: a student's plt.show() would block the run.
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab3", "lab3 grading")
    group.addoption(
        "--impl",
        dest="lab3_impl",
        metavar="PATH",
        type=parse_impl_spec,
        default=None,
        help="implementation to grade: a package folder, a .zip or a .ipynb (default: reference)",
    )
    group.addoption(
        "--weights",
        dest="lab3_weights",
        metavar="SPEC",
        type=parse_weights_spec,
        default="auto",
        help="ResNet-34 weights: auto, standin, pretrained or a checkpoint path (default: auto)",
    )
    group.addoption(
        "--device",
        dest="lab3_device",
        metavar="DEVICE",
        default="cpu",
        help="torch device for the implementation under test (default: cpu)",
    )
    group.addoption(
        "--results",
        dest="lab3_results",
        metavar="FILE",
        default=None,
        help="write Gradescope's results.json to FILE (default: not written)",
    )


def parse_impl_spec(value: str) -> str:
    """``--impl`` type: ``reference``, ``student_template``, or an existing folder / .zip."""
    from grader.implementation import BUILTIN_PACKAGES

    if value in BUILTIN_PACKAGES or Path(value).expanduser().exists():
        return value
    raise argparse.ArgumentTypeError(
        f"--impl {value!r}: no such folder, .zip or .ipynb; pass your filled-in copy of "
        "student_template/ (a folder or a .zip of it), your lab notebook, or reference / "
        "student_template"
    )


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

    @property
    def weights(self) -> ResolvedWeights:
        if self._weights is None:
            self._weights = resolve_weights(self.weights_spec)
            activate(self._weights)
        return self._weights

    def reference(self):
        if self._reference is None:
            from grader.reference_records import ReferenceUnavailable, load_reference_records
            from grader.weights import standin_weights

            try:
                self._reference = load_reference_records(self.weights, DEFAULT_SETTINGS,
                                                         device=self.device)
            except ReferenceUnavailable:
                if self.weights.kind == "standin":
                    raise
                # A release may only carry stand-in records: compare on the stand-in.
                self.notes.append(
                    f"no reference records for {self.weights.id}; grading with the stand-in "
                    "weights instead"
                )
                self._weights = standin_weights()
                activate(self._weights)
                self._reference = load_reference_records(self.weights, DEFAULT_SETTINGS,
                                                         device=self.device)
        return self._reference

    def task_result(self, task: str) -> TaskResult:
        if task not in self._results:
            from grader.grading import check_task, probe_task
            from grader.implementation import load_implementation
            from grader.inputs import FIXTURES_DIR
            from grader.probing import ImplementationError, ProbeContext
            from grader.records import Record

            reference = self.reference()
            if self._impl is None and self._impl_error is None:
                try:
                    self._impl = load_implementation(self.impl_spec)
                    self.notes.extend(f"notebook: {n}" for n in getattr(self._impl, "notes", []))
                except ImplementationError as exc:
                    self._impl_error = str(exc)
            if self._impl_error is not None:
                record = Record(task=task, data={"import_error": self._impl_error})
            else:
                ctx = ProbeContext(impl=self._impl, weights=self.weights,
                                   settings=DEFAULT_SETTINGS, fixtures_dir=FIXTURES_DIR,
                                   scratch=self._scratch, device=self.device)
                record = probe_task(task, ctx)
            self._records[task] = record
            self._results[task] = check_task(
                task, record, reference.records.get(task), self._check_context()
            )
        return self._results[task]

    def _check_context(self):
        from grader.checking import CheckContext

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
        from grader.grading import library_versions

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
        result = lab_session(request.config).check_result(check)
        if not result.passed:
            pytest.fail(f"{spec.title} [{check.name}]: {result.message}", pytrace=False)

    test_check.__name__ = f"test_{task}"
    test_check.__doc__ = f"{spec.title}: the checks of grader/tasks/{task}.py."
    return test_check


def _is_lab_test(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(_LAB_TESTS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not _is_lab_test(item):
            item.add_marker(pytest.mark.harness)
    if config.getoption("lab3_impl") is None:
        return
    # With --impl the run is about that implementation: the harness's own tests are noise.
    deselected = [i for i in items if not _is_lab_test(i)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if _is_lab_test(i)]


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
    from grader.points import RELEASE_HIDDEN_POINTS, TOTAL_POINTS

    if RELEASE_HIDDEN_POINTS:
        tr.write_line(
            f"This table shows the {TOTAL_POINTS - RELEASE_HIDDEN_POINTS:g} points you can check "
            f"here; further checks worth {RELEASE_HIDDEN_POINTS:g} points run when your "
            "submission is graded."
        )
    results = config.getoption("lab3_results")
    if results:
        Path(results).write_text(json.dumps(report.to_gradescope(), indent=2))
        tr.write_line(f"results.json written to {results}")
