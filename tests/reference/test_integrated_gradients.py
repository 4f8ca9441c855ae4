"""Task 6 reference: ``integrated_gradients`` (Captum's IntegratedGradients).

Properties first, as Captum's own tests do: completeness, batched == unbatched,
then shapes and side effects. 64x64 inputs keep every call cheap.
"""

from __future__ import annotations

import copy

import pytest
import torch

from reference.integrated_gradients import integrated_gradients

SIZE = 64


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def target(trusted_model, inputs) -> int:
    with torch.no_grad():
        return int(trusted_model(inputs).argmax())


def logit(model, x, target):
    with torch.no_grad():
        return model(x)[:, target]


# The trapezoid rule converges slowest on a ReLU network's piecewise integrand, and Captum's
# trapezoid weights sum to 1 - 1/n: 256 steps keep that bias (0.4%) well inside 1%.
@pytest.mark.parametrize(
    ("method", "n_steps"), [("gausslegendre", 64), ("riemann_middle", 64), ("riemann_trapezoid", 256)]
)
def test_completeness(trusted_model, inputs, target, method, n_steps):
    _, delta = integrated_gradients(trusted_model, inputs, target, n_steps=n_steps, method=method)
    gap = logit(trusted_model, inputs, target) - logit(trusted_model, 0 * inputs, target)
    assert delta.abs().item() < 0.01 * gap.abs().item()


def test_delta_is_sum_minus_logit_gap(trusted_model, inputs, target):
    baselines = 0.5 * torch.ones_like(inputs)
    attributions, delta = integrated_gradients(
        trusted_model, inputs, target, baselines=baselines, n_steps=8
    )
    gap = logit(trusted_model, inputs, target) - logit(trusted_model, baselines, target)
    torch.testing.assert_close(delta, attributions.sum(dim=(1, 2, 3)) - gap, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("internal_batch_size", [1, 3, 5])
def test_batched_equals_unbatched(trusted_model, inputs, target, internal_batch_size):
    whole, whole_delta = integrated_gradients(trusted_model, inputs, target, n_steps=8)
    batched, batched_delta = integrated_gradients(
        trusted_model, inputs, target, n_steps=8, internal_batch_size=internal_batch_size
    )
    torch.testing.assert_close(batched, whole, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(batched_delta, whole_delta, atol=1e-5, rtol=1e-4)


def test_rows_of_a_batch_are_independent(trusted_model, inputs, target):
    pair = torch.cat([inputs, inputs.flip(-1)])
    both, delta = integrated_gradients(trusted_model, pair, target, n_steps=8)
    second, _ = integrated_gradients(trusted_model, pair[1:], target, n_steps=8)
    assert delta.shape == (2,)
    torch.testing.assert_close(both[1:], second, atol=1e-6, rtol=1e-4)


def test_shapes_and_dtype(trusted_model, inputs, target):
    attributions, delta = integrated_gradients(trusted_model, inputs, target, n_steps=4)
    assert (attributions.shape, attributions.dtype) == (inputs.shape, torch.float32)
    assert delta.shape == (1,)
    assert not attributions.requires_grad


def test_no_baselines_means_zeros(trusted_model, inputs, target):
    default, _ = integrated_gradients(trusted_model, inputs, target, n_steps=4)
    zeros, _ = integrated_gradients(
        trusted_model, inputs, target, baselines=torch.zeros_like(inputs), n_steps=4
    )
    torch.testing.assert_close(default, zeros, atol=0, rtol=0)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_works_inside_callers_no_grad(trusted_model, inputs, target, context):
    expected, _ = integrated_gradients(trusted_model, inputs, target, n_steps=4)
    with context():
        got, _ = integrated_gradients(trusted_model, inputs, target, n_steps=4)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_model_untouched(trusted_model, inputs, target, fingerprint_of, training_flags_of):
    before = (fingerprint_of(trusted_model), training_flags_of(trusted_model))
    integrated_gradients(trusted_model, inputs, target, n_steps=4)
    assert (fingerprint_of(trusted_model), training_flags_of(trusted_model)) == before
    assert all(p.grad is None for p in trusted_model.parameters())


def test_train_mode_model_runs_in_eval_and_comes_back(
    trusted_model, inputs, target, fingerprint_of, training_flags_of
):
    model = copy.deepcopy(trusted_model).train()
    before = (fingerprint_of(model), training_flags_of(model))
    got, _ = integrated_gradients(model, inputs, target, n_steps=4)
    expected, _ = integrated_gradients(trusted_model, inputs, target, n_steps=4)
    assert (fingerprint_of(model), training_flags_of(model)) == before
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    ("shape", "baseline_shape", "match"),
    [((3, SIZE, SIZE), None, "batch of images"), ((1, 3, SIZE, SIZE), (1, 3, 8, 8), "baselines")],
    ids=["no-batch-dim", "baseline-shape"],
)
def test_bad_shapes_raise(trusted_model, shape, baseline_shape, match):
    baselines = None if baseline_shape is None else torch.zeros(baseline_shape)
    with pytest.raises(ValueError, match=match):
        integrated_gradients(trusted_model, torch.zeros(shape), 0, baselines=baselines, n_steps=2)
