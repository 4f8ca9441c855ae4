"""Task 9 reference: ``compare_attributions`` and ``plot_comparison``."""

from __future__ import annotations

import copy
import itertools

import captum.attr
import numpy as np
import pytest
import torch

from reference.comparison import ALGORITHMS, compare_attributions, plot_comparison

SIZE = 64
STEPS = 4


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def results(trusted_model, inputs) -> dict[str, torch.Tensor]:
    return compare_attributions(trusted_model, inputs, 3, n_steps=STEPS, seed=0)


def test_at_least_five_captum_algorithms(results):
    assert list(results) == list(ALGORITHMS)
    assert len(results) >= 5
    assert all(hasattr(captum.attr, name) for name in results)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_float32_finite_shaped_like_inputs(results, inputs, name):
    got = results[name]
    assert (got.shape, got.dtype) == (inputs.shape, torch.float32)
    assert torch.isfinite(got).all()
    assert got.abs().sum() > 0


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(ALGORITHMS, 2)))
def test_algorithms_differ(results, a, b):
    assert not torch.allclose(results[a], results[b], atol=1e-6)


def test_same_seed_same_results(trusted_model, inputs, results):
    again = compare_attributions(trusted_model, inputs, 3, n_steps=STEPS, seed=0)
    for name in ALGORITHMS:
        torch.testing.assert_close(again[name], results[name], atol=0, rtol=0)


def test_other_seed_changes_gradient_shap(trusted_model, inputs, results):
    other = compare_attributions(trusted_model, inputs, 3, n_steps=STEPS, seed=1)
    assert not torch.allclose(other["GradientShap"], results["GradientShap"])


def test_seed_leaves_global_rngs_alone(trusted_model, inputs):
    torch.manual_seed(11)
    np.random.seed(11)
    expected = (torch.rand(2), np.random.rand(2))
    torch.manual_seed(11)
    np.random.seed(11)
    compare_attributions(trusted_model, inputs, 3, n_steps=2, seed=0)
    torch.testing.assert_close(torch.rand(2), expected[0])
    np.testing.assert_array_equal(np.random.rand(2), expected[1])


def test_model_untouched(trusted_model, inputs, fingerprint_of, training_flags_of):
    model = copy.deepcopy(trusted_model).train()
    before = (fingerprint_of(model), training_flags_of(model))
    compare_attributions(model, inputs, 3, n_steps=2, seed=0)
    assert (fingerprint_of(model), training_flags_of(model)) == before
    assert all(p.grad is None for p in model.parameters())
    assert not any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in model.modules()
    )


def test_plot_has_image_and_one_titled_panel_per_algorithm(results):
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    fig = plot_comparison(results, image)
    assert [ax.get_title() for ax in fig.axes] == ["Original image", *results]
    assert all(ax.get_images() for ax in fig.axes)


def test_plot_draws_an_all_zero_map(results):
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    fig = plot_comparison({"Saliency": torch.zeros(1, 3, SIZE, SIZE)}, image)
    assert [ax.get_title() for ax in fig.axes] == ["Original image", "Saliency"]
    assert fig.axes[1].get_images()
