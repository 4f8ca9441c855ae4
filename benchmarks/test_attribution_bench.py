"""Tasks 6, 8 and 9 at 224x224: the reference beside the handout's Captum calls.

Run alone and serially: ``pytest benchmarks --benchmark-only -p no:cacheprovider``.
Input: the probe photo (grace_hopper) at 224x224, target = the model's top-1 class.
Results are asserted equal within float tolerance; times never are.

- Integrated Gradients, n_steps=50: reference (rows batched per pass, up to 25 at
  224, ``reference._common.rows_per_pass``) vs the handout's per-step loop
  (``internal_batch_size=1``).
- NoiseTunnel, all three nt_types: reference ``noise_tunnel_all`` (one run; the
  three types are two moments of the same samples) vs three NoiseTunnel runs. Kept
  short (nt_samples=4, n_steps=10: 40 rows per run) since the ratio, not the size,
  is the figure.
- Task 9: each of the reference's algorithms alone (no handout twin: the handout
  gives no code), with images/s and, for the gradient methods, GFLOP/s.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from benchmarks import handout
from benchmarks._bench import (
    DEVICES,
    GRAD_FACTOR,
    forward_gflop,
    model_on,
    pedantic,
    report_throughput,
)
from grader.probe.inputs import probe_inputs, top1
from reference import comparison
from reference._common import autograd_enabled, eval_mode, rows_per_pass, seeded
from reference.integrated_gradients import integrated_gradients
from reference.noise_tunnel import noise_tunnel_all

SIZE = 224
IG_STEPS = 50
NT_SAMPLES = 4
NT_STEPS = 10
NT_STDEVS = 0.2
SEED = 0
IMPLS = ["reference", "handout"]

# Rounds per case: the slow ones once (a round is seconds; the ratio is what counts).
IG_ROUNDS = {"reference": 2, "handout": 1}
NT_ROUNDS = {"reference": 1, "handout": 1}
SLOW_ALGORITHMS = {"IntegratedGradients", "GradientShap", "Occlusion"}


def ig_workload(impl: str, model: torch.nn.Module, inputs: torch.Tensor, target: int,
                n_steps: int = IG_STEPS) -> torch.Tensor:
    """IG attributions of ``inputs`` for ``target``."""
    if impl == "handout":
        return handout.integrated_gradients(model, inputs, target, n_steps=n_steps).detach()
    return integrated_gradients(model, inputs, target, n_steps=n_steps,
                                internal_batch_size=rows_per_pass(inputs))[0]


def nt_workload(impl: str, model: torch.nn.Module, inputs: torch.Tensor, target: int,
                nt_samples: int = NT_SAMPLES, n_steps: int = NT_STEPS) -> dict[str, torch.Tensor]:
    """``{nt_type: attributions}`` for the three NoiseTunnel types, same noise."""
    kwargs = {"nt_samples": nt_samples, "stdevs": NT_STDEVS, "n_steps": n_steps, "seed": SEED}
    if impl == "handout":
        with torch.random.fork_rng(devices=[]):
            return {k: v.detach() for k, v in
                    handout.noise_tunnel_each(model, inputs, target, **kwargs).items()}
    return noise_tunnel_all(model, inputs, target, **kwargs)


def algorithm_workload(name: str, model: torch.nn.Module, inputs: torch.Tensor, target: int,
                       n_steps: int = IG_STEPS) -> torch.Tensor:
    """One Task 9 algorithm exactly as ``compare_attributions`` runs it (same contexts)."""
    # ``_algorithms`` is the reference's private table of the Task 9 calls; using it
    # times each algorithm alone without copying its settings here.
    algorithm = comparison._algorithms(model, n_steps)[name]
    with autograd_enabled(), eval_mode(model), seeded(SEED, inputs.device), \
            warnings.catch_warnings():
        # As compare_attributions: Captum's notes about its temporary hooks and grads.
        warnings.simplefilter("ignore", UserWarning)
        return algorithm(inputs, target).detach()


def inputs_on(device: str, model: torch.nn.Module, size: int = SIZE) -> tuple[torch.Tensor, int]:
    """The probe photo at ``size`` on ``device`` and the model's top-1 class for it."""
    inputs = probe_inputs(size)[0].to(device)
    return inputs, top1(model, inputs)


def assert_close_attributions(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to the rounding of differently batched convolutions."""
    scale = float(expected.abs().max())
    torch.testing.assert_close(got.cpu(), expected.cpu(), rtol=1e-3, atol=1e-3 * scale)


@pytest.fixture(scope="module")
def expected() -> dict:
    """Each workload's result per implementation, filled by the first test that runs it."""
    return {}


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_integrated_gradients(benchmark, trusted_model, expected, impl: str, dev: str) -> None:
    benchmark.group = f"IntegratedGradients n_steps={IG_STEPS} {SIZE}px [{dev}]"
    model = model_on(dev, trusted_model)
    inputs, target = inputs_on(dev, model)
    got = pedantic(benchmark, ig_workload, dev, impl, model, inputs, target,
                   rounds=IG_ROUNDS[impl])
    key = ("ig", dev)
    if key in expected:
        assert_close_attributions(got, expected[key])
    expected[key] = got
    report_throughput(benchmark, dev, images=1,
                      gflop=IG_STEPS * GRAD_FACTOR * forward_gflop(SIZE))


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_noise_tunnel_all_types(benchmark, trusted_model, expected, impl: str, dev: str) -> None:
    benchmark.group = (f"NoiseTunnel x3 nt_types, nt_samples={NT_SAMPLES} n_steps={NT_STEPS} "
                       f"{SIZE}px [{dev}]")
    model = model_on(dev, trusted_model)
    inputs, target = inputs_on(dev, model)
    got = pedantic(benchmark, nt_workload, dev, impl, model, inputs, target,
                   rounds=NT_ROUNDS[impl])
    key = ("nt", dev)
    if key in expected:
        for nt_type, attributions in got.items():
            assert_close_attributions(attributions, expected[key][nt_type])
    expected[key] = got
    runs = 1 if impl == "reference" else 3
    rows = runs * NT_SAMPLES * NT_STEPS
    report_throughput(benchmark, dev, images=1, gflop=rows * GRAD_FACTOR * forward_gflop(SIZE))


# Forward passes (in units of one image) per algorithm at 224, for GFLOP/s.
def _algorithm_gflop(name: str, size: int = SIZE) -> float:
    side = max(1, round(size / 7))
    stride = max(1, side // 2)
    patches = ((size - side) // stride + 1) ** 2
    forwards = {
        "IntegratedGradients": IG_STEPS * GRAD_FACTOR,
        "GradientShap": IG_STEPS * GRAD_FACTOR,
        "Occlusion": patches + 1,  # forward passes only, plus the unoccluded one
        # One forward; the backward stops at layer4's output (7x7), a few percent more.
        "LayerGradCam": 1.0,
    }.get(name, GRAD_FACTOR)  # one forward + backward to the input
    return forwards * forward_gflop(size)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", comparison.ALGORITHMS)
def test_task9_algorithm(benchmark, trusted_model, name: str, dev: str) -> None:
    benchmark.group = f"Task 9 algorithms {SIZE}px, n_steps={IG_STEPS} [{dev}]"
    model = model_on(dev, trusted_model)
    inputs, target = inputs_on(dev, model)
    slow = name in SLOW_ALGORITHMS
    got = pedantic(benchmark, algorithm_workload, dev, name, model, inputs, target,
                   rounds=1 if slow else 5, warmup=0 if slow else 1)
    assert got.shape == inputs.shape and bool(torch.isfinite(got).all())
    report_throughput(benchmark, dev, images=1, gflop=_algorithm_gflop(name))
