"""The machine's own dense float32 rates: the yardstick of every GFLOP/s figure.

Each throughput figure in the other suites carries ``fraction_of_peak``: its
GFLOP/s divided by the better of these two rates, measured right after it.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks._bench import CONV_SHAPE, DEVICES, MATMUL_SIZE, conv_gflops, matmul_gflops, pedantic


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


@pytest.mark.parametrize("dev", DEVICES)
def test_conv3x3(benchmark, dev: str) -> None:
    n, c, h, w = CONV_SHAPE
    benchmark.group = f"machine: 3x3 conv {n}x{c}x{h}x{w} float32 [{dev}]"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen).to(dev)
    weight = torch.randn(c, c, 3, 3, generator=gen).to(dev)

    def conv() -> torch.Tensor:
        with torch.inference_mode():
            return torch.nn.functional.conv2d(x, weight, padding=1)

    pedantic(benchmark, conv, dev, rounds=10, warmup=1)
    benchmark.extra_info["gflop_per_s_fastest_round"] = round(
        2 * n * c * c * 9 * h * w / benchmark.stats.stats.min / 1e9, 1
    )
    benchmark.extra_info["conv_gflop_per_s"] = round(conv_gflops(dev), 1)
