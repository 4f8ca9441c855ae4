"""Task 5: the reference ``visualize_filter`` against the handout's, same seed and steps.

Run alone and serially: ``pytest benchmarks --benchmark-only -p no:cacheprovider``.
Each group holds the two implementations for one layer, so pytest-benchmark's
table shows their ratio. Targets (reference faster by): conv1 >= 10x,
layer2.0.conv1 >= 2x. Results are asserted equal; times never are.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmarks import handout  # the handout's code, verbatim plus a seed
from reference.filters import filter_activation, visualize_filter

SIZE = 224
STEPS = 10
FILTER = 3
SEED = 0
LAYERS = ["conv1", "layer2.0.conv1"]
ROUNDS = {"handout": 5, "reference": 20}


@pytest.fixture(scope="module")
def handout_model(trusted_model):
    """A copy: the handout's loss.backward() fills the parameters' .grad."""
    return copy.deepcopy(trusted_model)


def run(impl: str, model: torch.nn.Module, layer: str, size: int = SIZE,
        steps: int = STEPS) -> np.ndarray:
    if impl == "handout":
        module = model.get_submodule(layer)
        return handout.visualize_filter(model, module, FILTER, steps, seed=SEED, image_size=size)
    return visualize_filter(model, layer, FILTER, steps, image_size=size, seed=SEED)


@pytest.fixture(scope="module")
def results(trusted_model, handout_model):
    """Each implementation's image per layer, computed once outside the timings."""
    return {
        (impl, layer): run(impl, trusted_model if impl == "reference" else handout_model, layer)
        for impl in ROUNDS
        for layer in LAYERS
    }


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("impl", list(ROUNDS))
def test_visualize_filter(benchmark, trusted_model, handout_model, results, impl, layer):
    benchmark.group = f"visualize_filter {layer} {SIZE}px x{STEPS}"
    model = trusted_model if impl == "reference" else handout_model
    got = benchmark.pedantic(
        run, args=(impl, model, layer), rounds=ROUNDS[impl], warmup_rounds=1, iterations=1
    )
    other = results[("reference" if impl == "handout" else "handout", layer)]
    np.testing.assert_allclose(got, other, atol=1e-5, rtol=0)
    achieved = [
        filter_activation(trusted_model, layer, FILTER, torch.from_numpy(img).permute(2, 0, 1)[None])
        for img in (got, other)
    ]
    assert achieved[0] == pytest.approx(achieved[1], rel=1e-5, abs=1e-6)
