"""Task 8 reference: ``noise_tunnel`` (NoiseTunnel around IntegratedGradients)."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import NoiseTunnel

from reference import noise_tunnel as noise_tunnel_module
from reference.integrated_gradients import integrated_gradients
from reference.noise_tunnel import NT_TYPES, noise_tunnel, noise_tunnel_all

SIZE = 64
STEPS = 4


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_stdevs_zero_smoothgrad_equals_ig(trusted_model, inputs):
    smoothed = noise_tunnel(trusted_model, inputs, 3, stdevs=0, nt_samples=2, n_steps=STEPS)
    plain, _ = integrated_gradients(trusted_model, inputs, 3, n_steps=STEPS)
    torch.testing.assert_close(smoothed, plain, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_same_seed_same_result(trusted_model, inputs, nt_type):
    first = noise_tunnel(trusted_model, inputs, 3, nt_type=nt_type, nt_samples=2, n_steps=STEPS)
    again = noise_tunnel(trusted_model, inputs, 3, nt_type=nt_type, nt_samples=2, n_steps=STEPS)
    torch.testing.assert_close(first, again, atol=0, rtol=0)


def test_other_seed_other_noise(trusted_model, inputs):
    first = noise_tunnel(trusted_model, inputs, 3, nt_samples=2, n_steps=STEPS, seed=0)
    other = noise_tunnel(trusted_model, inputs, 3, nt_samples=2, n_steps=STEPS, seed=1)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("nt_samples", [2, 3])
def test_model_sees_nt_samples_times_n_steps_rows(spy, inputs, nt_samples):
    noise_tunnel(spy, inputs, 3, nt_samples=nt_samples, n_steps=STEPS)
    assert sum(call.shape[0] for call in spy.calls) == nt_samples * STEPS


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_finite_float32_shaped_like_inputs(trusted_model, inputs, nt_type):
    got = noise_tunnel(trusted_model, inputs, 3, nt_type=nt_type, nt_samples=2, n_steps=STEPS)
    assert (got.shape, got.dtype) == (inputs.shape, torch.float32)
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("nt_type", ["smoothgrad_sq", "vargrad"])
def test_squared_types_are_nonnegative(trusted_model, inputs, nt_type):
    got = noise_tunnel(trusted_model, inputs, 3, nt_type=nt_type, nt_samples=3, n_steps=STEPS)
    assert got.min() >= -1e-7


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_all_types_at_once_match_one_by_one(trusted_model, inputs, nt_type):
    together = noise_tunnel_all(trusted_model, inputs, 3, nt_samples=2, n_steps=STEPS)
    alone = noise_tunnel(trusted_model, inputs, 3, nt_type=nt_type, nt_samples=2, n_steps=STEPS)
    torch.testing.assert_close(together[nt_type], alone, atol=1e-7, rtol=1e-5)


def test_all_types_at_once_cost_one_run(spy, inputs):
    noise_tunnel_all(spy, inputs, 3, nt_samples=2, n_steps=STEPS)
    assert sum(call.shape[0] for call in spy.calls) == 2 * STEPS


def test_all_types_fall_back_without_captums_moments(trusted_model, inputs, monkeypatch):
    expected = noise_tunnel_all(trusted_model, inputs, 3, nt_samples=2, n_steps=STEPS)
    monkeypatch.setattr(
        noise_tunnel_module._MomentsNoiseTunnel,
        "_compute_smoothing",
        staticmethod(NoiseTunnel._compute_smoothing),
    )
    got = noise_tunnel_all(trusted_model, inputs, 3, nt_samples=2, n_steps=STEPS)
    for nt_type in NT_TYPES:
        torch.testing.assert_close(got[nt_type], expected[nt_type], atol=1e-7, rtol=1e-5)


def test_seed_leaves_global_rng_alone(trusted_model, inputs):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    noise_tunnel(trusted_model, inputs, 3, nt_samples=2, n_steps=2, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nt_type": "smoothgrad_cubed"}, "nt_type 'smoothgrad_cubed' is not supported"),
        ({"nt_samples": 0}, "nt_samples"),
        ({"stdevs": -0.1}, "stdevs"),
    ],
    ids=["nt_type", "nt_samples", "stdevs"],
)
def test_bad_arguments_raise(trusted_model, inputs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        noise_tunnel(trusted_model, inputs, 3, n_steps=2, **kwargs)


def test_model_untouched(trusted_model, inputs, fingerprint_of, training_flags_of):
    model = copy.deepcopy(trusted_model).train()
    before = (fingerprint_of(model), training_flags_of(model))
    noise_tunnel(model, inputs, 3, nt_samples=2, n_steps=2)
    assert (fingerprint_of(model), training_flags_of(model)) == before
    assert all(p.grad is None for p in model.parameters())
