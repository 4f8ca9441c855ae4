"""Fixtures for testing the grader itself: reference records and graded variants of the reference."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from grader.checking import CheckContext
from grader.grading import check_task, probe_task
from grader.implementation import load_implementation
from grader.inputs import FIXTURES_DIR
from grader.probing import ProbeContext
from grader.records import Record
from grader.reference_records import (
    ReferenceRecords,
    ReferenceUnavailable,
    load_reference_records,
)
from grader.results import TaskResult
from grader.settings import DEFAULT_SETTINGS
from grader.tasks import TASK_NAMES
from grader.weights import ResolvedWeights

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "reference"


class _LazyReference(dict):
    """Reference records, probed per task on first use when the full set is not cached."""

    def __init__(self, weights: ResolvedWeights, scratch: Path) -> None:
        super().__init__()
        self._ctx = ProbeContext(impl=load_implementation("reference"), weights=weights,
                                 settings=DEFAULT_SETTINGS, fixtures_dir=FIXTURES_DIR,
                                 scratch=scratch)

    def __missing__(self, task: str) -> Record:
        record = probe_task(task, self._ctx)
        broken = {"import_error", "probe_error"} & set(record.data)
        if broken:
            raise RuntimeError(f"the reference failed the {task} probe: {record.data}")
        self[task] = record
        return record


@pytest.fixture(scope="session")
def reference_records(
    resolved_weights: ResolvedWeights, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Record]:
    """The reference's records keyed by task: from the on-disk cache when complete,
    else probed per task on first use."""
    try:
        bundle: ReferenceRecords = load_reference_records(
            resolved_weights, DEFAULT_SETTINGS, allow_probe=False
        )
        return bundle.records
    except ReferenceUnavailable:
        return _LazyReference(resolved_weights, tmp_path_factory.mktemp("reference-scratch"))


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
    reference_records: dict[str, Record],
    check_context: CheckContext,
    tmp_path: Path,
) -> GradeFn:
    """``grade_impl(path_or_name, tasks=None)``: probe and check in this process."""

    def grade(spec: str | Path, tasks: Iterable[str] | None = None) -> GradedVariant:
        impl = load_implementation(spec)
        scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=DEFAULT_SETTINGS,
                           fixtures_dir=FIXTURES_DIR, scratch=scratch)
        results, records = {}, {}
        for task in tasks or TASK_NAMES:
            records[task] = probe_task(task, ctx)
            results[task] = check_task(task, records[task], reference_records[task],
                                       check_context)
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
    """``grade_variant(overrides, tasks=None)``: grade a modified copy of the reference."""

    def grade(overrides: dict[str, str], tasks: Iterable[str] | None = None) -> GradedVariant:
        return grade_impl(make_variant(overrides), tasks=tasks)

    return grade
