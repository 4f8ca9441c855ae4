"""Shared helpers of the benchmark suites: devices, synchronised timing, throughput figures.

Throughput is reported against the machine's own dense float32 rate, measured in
the same run right after each case: the better of a 2048x2048 matmul
(:func:`matmul_gflops`) and a 3x3 convolution shaped like ResNet-34's layer1
(:func:`conv_gflops`). "GFLOP/s" then reads as a fraction of what this machine can
do at all, not as an absolute that changes with the hardware. Both are needed: on
the 2-core CI machine oneDNN's convolution reaches ~350 GFLOP/s where the matmul
reaches ~200, so a matmul-only yardstick put the model's own passes at 130-150% of
"the machine's rate".

FLOP model (ResNet-34 at 224x224): a forward pass is 3.67 GMAC = 7.34 GFLOP per
image, scaling with the pixel count. Captum's gradient methods ask autograd for the
gradient of the *input* only (``torch.autograd.grad(out, inputs)``), so the backward
pass skips the weight gradients and costs about one forward more: a
forward+backward-to-input row counts as ``GRAD_FACTOR = 2`` forwards. (A full
training backward, weights included, would be ~2 forwards; measured IG at 224 on
this 2-core CPU reaches ~90% of the matmul rate with factor 2, so factor 3 would
claim more than the machine's peak.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch

FORWARD_GFLOP_224 = 7.34  # ResNet-34: 3.67 GMAC per 224x224 image, 2 FLOP per MAC
GRAD_FACTOR = 2.0  # forward + backward to the input, in forwards (see module docstring)
MATMUL_SIZE = 2048

CUDA_REASON = "needs a CUDA GPU; torch.cuda.is_available() is False here"
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON),
    ),
]


def forward_gflop(size: int = 224) -> float:
    """GFLOP of one ResNet-34 forward pass on one ``size`` x ``size`` image."""
    return FORWARD_GFLOP_224 * (size * size) / (224 * 224)


def synchronize(device: str) -> None:
    """Wait for queued CUDA kernels, so a timer sees the work, not just its launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def synchronized(fn: Callable[..., Any], device: str) -> Callable[..., Any]:
    """``fn`` wrapped so its timing includes every kernel it launched (CUDA)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        synchronize(device)
        result = fn(*args, **kwargs)
        synchronize(device)
        return result

    return run


@cache
def matmul_gflops(device: str, size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``size`` x ``size`` matmul rate on ``device``, GFLOP/s."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    a @ b  # warm-up: library initialisation and thread pool start
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@cache
def model_on(device: str, base: torch.nn.Module) -> torch.nn.Module:
    """The trusted model on ``device`` (the model itself on CPU; one cached copy per device)."""
    if torch.device(device).type == "cpu":
        return base
    import copy

    return copy.deepcopy(base).to(device).eval()


CONV_SHAPE = (16, 256, 56, 56)  # batch, channels, height, width; 3x3 kernel, same padding


@cache
def conv_gflops(device: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 3x3 convolution rate on ``device`` (shape CONV_SHAPE), GFLOP/s."""
    n, c, h, w = CONV_SHAPE
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen).to(device)
    weight = torch.randn(c, c, 3, 3, generator=gen).to(device)
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, weight, padding=1)  # warm-up: kernel selection
        best = float("inf")
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, weight, padding=1)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * n * c * c * 9 * h * w / best / 1e9


def peak_gflops(device: str, repeats: int = 3) -> dict[str, float]:
    """The yardstick, measured now: matmul, convolution and the better of the two."""
    matmul = matmul_gflops.__wrapped__(device, repeats=repeats)
    conv = conv_gflops.__wrapped__(device, repeats=repeats)
    return {"matmul": matmul, "conv": conv, "peak": max(matmul, conv)}


def report_throughput(
    benchmark: Any, device: str, *, images: float, gflop: float | None = None
) -> None:
    """Put images/s and GFLOP/s (from the fastest round) into the benchmark's extra_info."""
    fastest = benchmark.stats.stats.min
    info = benchmark.extra_info
    info["device"] = device
    info["load_average_1min"] = round(os.getloadavg()[0], 2)
    info["images_per_s"] = round(images / fastest, 3)
    if gflop is not None:
        rate = gflop / fastest
        # Measured again right after the case, not cached: on a machine shared with
        # other jobs the yardstick must see the same load as the figure it scales.
        yardstick = peak_gflops(device)
        info["gflop"] = round(gflop, 1)
        info["gflop_per_s"] = round(rate, 1)
        info["matmul_gflop_per_s"] = round(yardstick["matmul"], 1)
        info["conv_gflop_per_s"] = round(yardstick["conv"], 1)
        info["fraction_of_peak"] = round(rate / yardstick["peak"], 3)


def pedantic(benchmark: Any, fn: Callable[..., Any], device: str, *args: Any,
             rounds: int, warmup: int = 0, **kwargs: Any) -> Any:
    """``benchmark.pedantic`` of ``fn(*args, **kwargs)``, synchronised on CUDA."""
    return benchmark.pedantic(
        synchronized(fn, device), args=args, kwargs=kwargs,
        rounds=rounds, warmup_rounds=warmup, iterations=1,
    )
