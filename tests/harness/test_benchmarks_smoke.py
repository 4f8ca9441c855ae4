"""The benchmark suites import and their workloads run, at a tiny size, without timing.

``pytest benchmarks --benchmark-only`` times these workloads at full size (224x224,
50 IG steps); here each one runs once at 32x32 with 2 steps so a broken benchmark
shows up in ``make test``, and the reference and handout versions of each workload
are asserted to compute the same thing (the premise of every ratio in the tables).
"""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest
import torch

from benchmarks import _bench
from benchmarks import test_attribution_bench as attribution
from benchmarks import test_filters_bench as filters
from benchmarks import test_inference_bench as inference
from reference.comparison import ALGORITHMS

TINY = 32
STEPS = 2
MODULES = ["handout", "_bench", "test_machine_bench", "test_inference_bench",
           "test_attribution_bench", "test_filters_bench", "test_grading_bench",
           "test_batch_bench", "test_staging_bench"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for these tiny workloads, restored afterwards.

    At 32x32 every op is a few microseconds; with 2 OpenMP threads on a busy 2-core
    machine each parallel region waits for a descheduled thread, which made this
    file 6-25x slower (12-52 s instead of 2 s, measured at load average 4-6).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.__doc__


def test_devices_list_cpu_and_cuda_skipped_without_gpu() -> None:
    ids = [param.id for param in _bench.DEVICES]
    assert ids == ["cpu", "cuda"]
    cuda_marks = [m.name for m in _bench.DEVICES[1].marks]
    assert cuda_marks == ["skipif"]


def test_matmul_rate_is_positive() -> None:
    assert _bench.matmul_gflops("cpu", size=64, repeats=1) > 0


def test_the_yardstick_is_the_better_of_matmul_and_convolution(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bench, "CONV_SHAPE", (1, 8, 8, 8))
    rates = _bench.peak_gflops("cpu", repeats=1)
    assert rates["peak"] == max(rates["matmul"], rates["conv"]) > 0


def test_preprocess_reference_equals_handout() -> None:
    paths = inference.photos()[:2]
    got = inference.preprocess_workload("reference", paths)
    expected = inference.preprocess_workload("handout", paths)
    assert got.shape == (2, 3, 224, 224)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("count", [1, 2])
def test_predict_reference_equals_handout(trusted_model, count: int) -> None:
    paths = inference.photos()[:count]
    labels = inference.load_labels()
    got = inference.predict_workload("reference", trusted_model, paths, labels)
    expected = inference.predict_workload("handout", trusted_model, paths, labels)
    inference.assert_same_predictions(got, expected)


@pytest.fixture(scope="module")
def tiny_inputs(trusted_model) -> tuple[torch.Tensor, int]:
    return attribution.inputs_on("cpu", trusted_model, size=TINY)


def test_integrated_gradients_reference_equals_handout(trusted_model, tiny_inputs) -> None:
    inputs, target = tiny_inputs
    got = attribution.ig_workload("reference", trusted_model, inputs, target, n_steps=STEPS)
    expected = attribution.ig_workload("handout", trusted_model, inputs, target, n_steps=STEPS)
    attribution.assert_close_attributions(got, expected)


def test_noise_tunnel_reference_equals_handout(trusted_model, tiny_inputs) -> None:
    inputs, target = tiny_inputs
    got = attribution.nt_workload("reference", trusted_model, inputs, target,
                                  nt_samples=2, n_steps=STEPS)
    expected = attribution.nt_workload("handout", trusted_model, inputs, target,
                                       nt_samples=2, n_steps=STEPS)
    assert set(got) == set(expected) == {"smoothgrad", "smoothgrad_sq", "vargrad"}
    for nt_type in got:
        attribution.assert_close_attributions(got[nt_type], expected[nt_type])


@pytest.mark.parametrize("name", ALGORITHMS)
def test_task9_algorithm_runs(trusted_model, tiny_inputs, name: str) -> None:
    inputs, target = tiny_inputs
    got = attribution.algorithm_workload(name, trusted_model, inputs, target, n_steps=STEPS)
    assert got.shape == inputs.shape
    assert bool(torch.isfinite(got).all())


def test_visualize_filter_reference_equals_handout(trusted_model) -> None:
    handout_model = copy.deepcopy(trusted_model)  # the handout's backward fills .grad
    got = filters.run("reference", trusted_model, "conv1", size=TINY, steps=STEPS)
    expected = filters.run("handout", handout_model, "conv1", size=TINY, steps=STEPS)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_flop_model_scales_with_pixels() -> None:
    assert _bench.forward_gflop(224) == pytest.approx(7.34)
    assert _bench.forward_gflop(112) == pytest.approx(7.34 / 4)
