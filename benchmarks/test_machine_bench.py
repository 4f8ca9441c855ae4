"""The machine's own float32 matmul rate: the yardstick of every GFLOP/s figure.

Each throughput figure in the other suites carries ``fraction_of_matmul``: its
GFLOP/s divided by this rate, measured in the same run.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks._bench import DEVICES, MATMUL_SIZE, matmul_gflops, pedantic


@pytest.mark.parametrize("dev", DEVICES)
def test_matmul(benchmark, dev: str) -> None:
    benchmark.group = f"machine: {MATMUL_SIZE}x{MATMUL_SIZE} float32 matmul [{dev}]"
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen).to(dev)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen).to(dev)
    pedantic(benchmark, torch.matmul, dev, a, b, rounds=10, warmup=1)
    benchmark.extra_info["gflop_per_s_fastest_round"] = round(
        2 * MATMUL_SIZE**3 / benchmark.stats.stats.min / 1e9, 1
    )
    benchmark.extra_info["matmul_gflop_per_s"] = round(matmul_gflops(dev), 1)
