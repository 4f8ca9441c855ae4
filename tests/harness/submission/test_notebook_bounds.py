"""Reading a notebook in the parent is linear in its size and bounded (issue 14).

The parent never runs a submitted notebook, but it parses it, in the batch's own
process: a hostile notebook must not keep it busy for minutes nor ignore Ctrl-C.
Parse time against size is measured in benchmarks/test_notebook_parse_bench.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.errors import ParseInterrupted
from grader.probe.probing import ImplementationError
from grader.submission import cells, notebook
from grader.submission.notebook import build_package


def _write(path: Path, sources: list[str]) -> Path:
    cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": [],
              "execution_count": None} for s in sources]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": cells}), encoding="utf-8")
    return path


def test_too_many_statements_is_refused_with_the_bound(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebook, "MAX_STATEMENTS", 50)
    path = _write(tmp_path / "chain.ipynb", ["".join(f"x{i} = {i}\n" for i in range(60))])
    with pytest.raises(ImplementationError, match="over 50 top-level statements"):
        build_package(path)


def test_too_many_code_cells_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cells, "MAX_CODE_CELLS", 10)
    path = _write(tmp_path / "cells.ipynb", [f"x = {i}" for i in range(11)])
    with pytest.raises(ImplementationError, match="11 code cells"):
        build_package(path)


def test_too_much_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cells, "MAX_CODE_CHARS", 1000)
    path = _write(tmp_path / "big.ipynb", ["data = '" + "a" * 2000 + "'"])
    with pytest.raises(ImplementationError, match="characters of code"):
        build_package(path)


def test_a_parse_over_its_time_is_stopped_with_a_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "slow.ipynb", ["def load_model(device='cpu'):\n    return 1\n"])
    with pytest.raises(ImplementationError, match="took over 0 s"):
        build_package(path, seconds=0)


def test_should_stop_interrupts_the_parse(tmp_path: Path) -> None:
    path = _write(tmp_path / "stop.ipynb", ["x = 1", "y = 2"])
    with pytest.raises(ParseInterrupted):
        build_package(path, should_stop=lambda: True)


def test_definitions_inside_a_guard_are_kept_without_looking_into_bodies(tmp_path: Path) -> None:
    body = "".join(f"        print({i})\n" for i in range(200))
    path = _write(tmp_path / "guard.ipynb",
                  ["if True:\n    def load_model(device='cpu'):\n" + body])
    build = build_package(path)
    assert "def load_model" in build.modules["model"]


def test_a_guard_that_does_work_is_not_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "work.ipynb",
                  ["if True:\n    print('hi')\n    def load_model(device='cpu'):\n        return 1\n"])
    build = build_package(path)
    assert "def load_model" not in build.modules["model"]


def test_units_that_need_later_cells_keep_dependency_order(tmp_path: Path) -> None:
    # Kept units are emitted so that each follows the units it loads at import time.
    path = _write(tmp_path / "order.ipynb",
                  ["def load_model(device='cpu'):\n    return A", "A = B + 1", "B = 1"])
    source = build_package(path).modules["model"]
    assert source.index("B = 1") < source.index("A = B + 1")


def test_the_cpython_ast_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """python/cpython#106905: concurrent AST construction in 3.11 can raise a spurious
    SystemError; a batch grading two notebooks at once met it. The build is retried."""
    path = _write(tmp_path / "ok.ipynb", ["def load_model(device='cpu'):\n    return 1\n"])
    real, calls = notebook._build_package, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=33, after=38)")
        return real(*args, **kwargs)

    monkeypatch.setattr(notebook, "_build_package", flaky)
    assert "def load_model" in build_package(path).modules["model"]
    assert len(calls) == 2


def test_other_system_errors_are_not_retried(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "ok.ipynb", ["x = 1"])

    def broken(*args, **kwargs):
        raise SystemError("something else")

    monkeypatch.setattr(notebook, "_build_package", broken)
    with pytest.raises(SystemError, match="something else"):
        build_package(path)
