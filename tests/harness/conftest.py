"""Fixtures for testing the grader itself: reference records and graded variants of the reference."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from grader.check.checking import CheckContext
from grader.check.grading import check_task, probe_task
from grader.check.results import TaskResult
from grader.probe.implementation import load_implementation
from grader.probe.inputs import FIXTURES_DIR
from grader.probe.probing import ProbeContext
from grader.probe.records import Record
from grader.refdata.reference_records import (
    ReferenceRecords,
    ReferenceUnavailable,
    load_reference_records,
)
from grader.refdata.weights import ResolvedWeights
from grader.run.variant import SECRET_ENV, graded_settings
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import TASK_NAMES

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "reference"


class _LazyReference(dict):
    """Reference records, probed per task on first use when the full set is not cached."""

    def __init__(self, weights: ResolvedWeights, scratch: Path,
                 settings: ProbeSettings = DEFAULT_SETTINGS) -> None:
        super().__init__()
        self._ctx = ProbeContext(impl=load_implementation("reference"), weights=weights,
                                 settings=settings, fixtures_dir=FIXTURES_DIR,
                                 scratch=scratch)

    def __missing__(self, task: str) -> Record:
        record = probe_task(task, self._ctx)
        broken = {"import_error", "probe_error"} & set(record.data)
        if broken:
            raise RuntimeError(f"the reference failed the {task} probe: {record.data}")
        self[task] = record
        return record


TEST_SECRET = b"lab3 harness tests: not a course secret"


@pytest.fixture(scope="session", autouse=True)
def course_secret(tmp_path_factory: pytest.TempPathFactory):
    """Every `lab3 grade` of the tests uses a fixed test secret, never the checkout's own."""
    path = tmp_path_factory.mktemp("course") / "course-secret"
    path.write_text(TEST_SECRET.hex() + "\n")
    path.chmod(0o600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_ENV, str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def no_course_file():
    """The harness tests the points table of grader/points.py: an instructor's course file
    (.lab3/course.toml, $LAB3_COURSE_FILE) is not read; tests that want one pass it."""
    from grader.course import COURSE_ENV, NO_COURSE

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(COURSE_ENV, NO_COURSE)
        yield


@pytest.fixture(scope="session")
def graded_test_settings(course_secret: Path) -> ProbeSettings:
    """The graded variant of the tests' course secret: the inputs their `lab3 grade` probes."""
    return graded_settings(TEST_SECRET)


@pytest.fixture(scope="session")
def references_for(
    resolved_weights: ResolvedWeights, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[ProbeSettings], dict[str, Record]]:
    """``references_for(settings)``: the reference's records keyed by task for a variant,
    from the on-disk cache when complete, else probed per task on first use."""
    known: dict[ProbeSettings, dict[str, Record]] = {}

    def records(settings: ProbeSettings) -> dict[str, Record]:
        if settings not in known:
            try:
                bundle: ReferenceRecords = load_reference_records(
                    resolved_weights, settings, allow_probe=False)
                known[settings] = bundle.records
            except ReferenceUnavailable:
                known[settings] = _LazyReference(
                    resolved_weights, tmp_path_factory.mktemp("reference-scratch"), settings)
        return known[settings]

    return records


@pytest.fixture(scope="session")
def reference_records(references_for) -> dict[str, Record]:
    """The reference's records of the practice variant, keyed by task."""
    return references_for(DEFAULT_SETTINGS)


@pytest.fixture(scope="session")
def check_context(resolved_weights: ResolvedWeights) -> CheckContext:
    return CheckContext(weights=resolved_weights)


class GradedVariant:
    """The task results of one graded implementation, with its records."""

    def __init__(self, results: dict[str, TaskResult], records: dict[str, Record]) -> None:
        self.results = results
        self.records = records

    def score(self, task: str) -> float:
        return self.results[task].score

    def max_score(self, task: str) -> float:
        return self.results[task].max_score

    def check(self, task: str, name: str):
        for check in self.results[task].checks:
            if check.name == name:
                return check
        raise KeyError(f"{task}::{name}")

    def failed(self, task: str) -> list[str]:
        return [c.name for c in self.results[task].checks if not c.passed]


GradeFn = Callable[..., GradedVariant]


@pytest.fixture
def grade_impl(
    resolved_weights: ResolvedWeights,
    references_for,
    check_context: CheckContext,
    tmp_path: Path,
) -> GradeFn:
    """``grade_impl(path_or_name, tasks=None, settings=practice)``: probe and check in this
    process, on the inputs of ``settings``' variant."""

    def grade(spec: str | Path, tasks: Iterable[str] | None = None,
              settings: ProbeSettings = DEFAULT_SETTINGS) -> GradedVariant:
        impl = load_implementation(spec)
        scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=settings,
                           fixtures_dir=FIXTURES_DIR, scratch=scratch)
        reference = references_for(settings)
        results, records = {}, {}
        for task in tasks or TASK_NAMES:
            records[task] = probe_task(task, ctx)
            results[task] = check_task(task, records[task], reference[task], check_context)
        return GradedVariant(results, records)

    return grade


@pytest.fixture
def make_variant(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """``make_variant({"preprocessing.py": "source appended"})``: a copy of reference/ with
    the given source appended to the named modules (redefining a function or a constant)."""

    def make(overrides: dict[str, str], base: Path = REFERENCE_DIR) -> Path:
        folder = tmp_path / f"variant-{uuid.uuid4().hex[:8]}"
        shutil.copytree(base, folder, ignore=shutil.ignore_patterns("__pycache__"))
        for module, source in overrides.items():
            path = folder / module
            path.write_text(path.read_text() + "\n\n# --- variant override ---\n" + source)
        return folder

    return make


@pytest.fixture
def grade_variant(make_variant, grade_impl) -> GradeFn:
    """``grade_variant(overrides, tasks=None, settings=practice)``: grade a modified copy of
    the reference."""

    def grade(overrides: dict[str, str], tasks: Iterable[str] | None = None,
              settings: ProbeSettings = DEFAULT_SETTINGS) -> GradedVariant:
        return grade_impl(make_variant(overrides), tasks=tasks, settings=settings)

    return grade
