"""How long the parent takes to read a notebook, against its size (issue 14).

Run: ``pytest benchmarks/test_notebook_parse_bench.py --benchmark-only``. Each shape is
read at three sizes; ``us_per_statement`` staying flat as the size grows is what
"linear" means here (it grew with the size before: 8,000 statements inside a guarded
``def`` took 20.8 s, 40,000 would have taken minutes). Reported, never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.submission.notebook import build_package

SIZES = (2_000, 8_000, 19_000)


def _source(shape: str, n: int) -> str:
    if shape == "guarded_def":
        return "if True:\n    def load_model(device='cpu'):\n" + "".join(
            f"        print({i})\n" for i in range(n))
    if shape == "assignment_chain":
        return "x0 = 0\n" + "".join(f"x{i} = x{i - 1}\n" for i in range(1, n)) + (
            f"def load_model(device='cpu'):\n    return x{n - 1}\n")
    if shape == "reversed_chain":  # each kept unit needs the one after it: worst case of ordering
        return "".join(f"x{i} = x{i + 1}\n" for i in range(n - 1)) + f"x{n - 1} = 0\n" + (
            "def load_model(device='cpu'):\n    return x0\n")
    raise ValueError(shape)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("shape", ["guarded_def", "assignment_chain", "reversed_chain"])
def test_notebook_parse_time(benchmark, tmp_path: Path, shape: str, n: int) -> None:
    path = tmp_path / f"{shape}.ipynb"
    cell = {"cell_type": "code", "source": _source(shape, n), "metadata": {}, "outputs": [],
            "execution_count": None}
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": [cell]}), encoding="utf-8")
    build = benchmark.pedantic(build_package, args=(path,), rounds=3, iterations=1)
    assert "load_model" in build.modules["model"]
    benchmark.extra_info["statements"] = n
    benchmark.extra_info["bytes"] = path.stat().st_size
    benchmark.extra_info["us_per_statement"] = round(benchmark.stats.stats.min / n * 1e6, 2)
