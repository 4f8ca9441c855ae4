"""Task 5 reference: ``visualize_filter`` and ``plot_filter_grid``.

Small settings (64x64, a few Adam steps) keep each test well under a second; the
handout's own function (``benchmarks/handout.py``, the benchmarks' baseline too) is
the oracle.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmarks.handout import optimize_filter_image
from reference.filters import (
    DEFAULT_FILTERS,
    DEFAULT_LAYERS,
    filter_activation,
    maximize_activation,
    plot_filter_grid,
    postprocess_filter,
    visualize_filter,
)

SIZE = 64
STEPS = 4
FILTER = 5
# Conv2d layers take the sliced fast path; the others the plain output hook. Not a
# BatchNorm: its output is then changed in place by ReLU(inplace=True), which the
# handout's hook sees and a forward pass stopped at the layer (rightly) does not.
LAYERS = [*DEFAULT_LAYERS, "maxpool", "layer3"]


@pytest.fixture(scope="module")
def oracle_model(trusted_model):
    """A copy for the handout's code, whose loss.backward() fills the parameters' .grad."""
    return copy.deepcopy(trusted_model)


def hooks(model: torch.nn.Module) -> dict[str, int]:
    """``{module name: number of hooks}`` for every module that has any."""
    counts = {
        name: len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for name, m in model.named_modules()
    }
    return {name: n for name, n in counts.items() if n}


@pytest.mark.parametrize("layer", LAYERS)
def test_same_image_as_handout(trusted_model, oracle_model, layer):
    expected = optimize_filter_image(
        oracle_model, oracle_model.get_submodule(layer), FILTER, STEPS, seed=0, image_size=SIZE
    )
    got = visualize_filter(trusted_model, layer, FILTER, STEPS, image_size=SIZE, seed=0)
    np.testing.assert_allclose(got, postprocess_filter(expected), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", LAYERS)
def test_same_achieved_activation_as_handout(trusted_model, oracle_model, layer):
    expected = optimize_filter_image(
        oracle_model, oracle_model.get_submodule(layer), FILTER, STEPS, seed=0, image_size=SIZE
    )
    image, _ = maximize_activation(trusted_model, layer, FILTER, STEPS, image_size=SIZE, seed=0)
    assert filter_activation(trusted_model, layer, FILTER, image) == pytest.approx(
        filter_activation(trusted_model, layer, FILTER, expected), rel=1e-5, abs=1e-6
    )


@pytest.mark.parametrize("layer", LAYERS)
def test_activation_rises(trusted_model, layer):
    image, objective = maximize_activation(trusted_model, layer, FILTER, 5, image_size=SIZE, seed=0)
    assert objective.shape == (5,)
    assert filter_activation(trusted_model, layer, FILTER, image) > objective[0].item()


def test_output_is_float32_image_in_unit_range(trusted_model):
    img = visualize_filter(trusted_model, "conv1", 0, 2, image_size=SIZE, seed=0)
    assert (img.shape, img.dtype) == ((SIZE, SIZE, 3), np.float32)
    assert (img.min(), img.max()) == (0.0, 1.0)


def test_deterministic_with_seed(trusted_model):
    first = visualize_filter(trusted_model, "layer2.0.conv1", 1, 2, image_size=SIZE, seed=7)
    again = visualize_filter(trusted_model, "layer2.0.conv1", 1, 2, image_size=SIZE, seed=7)
    other = visualize_filter(trusted_model, "layer2.0.conv1", 1, 2, image_size=SIZE, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_works_inside_callers_no_grad(trusted_model, context):
    expected = visualize_filter(trusted_model, "conv1", 2, 2, image_size=SIZE, seed=0)
    with context():
        got = visualize_filter(trusted_model, "conv1", 2, 2, image_size=SIZE, seed=0)
    np.testing.assert_array_equal(got, expected)


def test_seed_leaves_global_rng_alone(trusted_model):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    visualize_filter(trusted_model, "conv1", 0, 1, image_size=SIZE, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_module_or_dotted_name_same_result(trusted_model):
    by_name = visualize_filter(trusted_model, "layer2.0.conv1", 3, 2, image_size=SIZE, seed=0)
    by_module = visualize_filter(
        trusted_model, trusted_model.layer2[0].conv1, 3, 2, image_size=SIZE, seed=0
    )
    np.testing.assert_array_equal(by_name, by_module)


@pytest.mark.parametrize("layer", ["conv1", "layer2.0.conv1", "layer1.0.bn1"])
def test_forward_pass_stops_at_layer(trusted_model, layer):
    model = copy.deepcopy(trusted_model)
    later_calls = []
    model.layer4.register_forward_pre_hook(lambda module, args: later_calls.append(1))
    visualize_filter(model, layer, 0, 3, image_size=SIZE, seed=0)
    assert later_calls == []


@pytest.mark.parametrize("layer", LAYERS)
def test_no_hook_left(trusted_model, layer):
    visualize_filter(trusted_model, layer, 0, 1, image_size=SIZE, seed=0)
    assert hooks(trusted_model) == {}


def test_model_untouched(trusted_model, fingerprint_of, training_flags_of):
    before = (fingerprint_of(trusted_model), training_flags_of(trusted_model))
    requires_grad = [p.requires_grad for p in trusted_model.parameters()]
    visualize_filter(trusted_model, "layer2.0.conv1", 0, 2, image_size=SIZE, seed=0)
    assert (fingerprint_of(trusted_model), training_flags_of(trusted_model)) == before
    assert [p.requires_grad for p in trusted_model.parameters()] == requires_grad
    assert all(p.grad is None for p in trusted_model.parameters())


def test_train_mode_model_keeps_mode_and_statistics(trusted_model, fingerprint_of, training_flags_of):
    model = copy.deepcopy(trusted_model).train()
    model.layer1.eval()  # mixed modes must come back exactly
    before = (fingerprint_of(model), training_flags_of(model))
    visualize_filter(model, "layer2.0.conv1", 0, 2, image_size=SIZE, seed=0)
    assert (fingerprint_of(model), training_flags_of(model)) == before


@pytest.mark.parametrize(
    ("layer", "filter_index", "match"),
    [
        ("conv9", 0, "not a module of the model.*did you mean 'conv1'"),
        ("conv1", 64, "out of range.*64 filters.*from 0 to 63"),
        ("conv1", -1, "out of range"),
        ("layer4.2.conv2", 512, "out of range.*512 filters"),
        ("layer1.0.bn1", 64, "out of range"),  # the output-hook path
        (torch.nn.Conv2d(3, 4, 3), 0, "not a module of the model"),
    ],
    ids=["unknown-name", "conv1-64", "negative", "layer4-512", "bn-64", "foreign-module"],
)
def test_bad_layer_or_filter_raises(trusted_model, layer, filter_index, match):
    with pytest.raises(ValueError, match=match):
        visualize_filter(trusted_model, layer, filter_index, 2, image_size=SIZE, seed=0)


@pytest.mark.parametrize(("layer", "filter_index"), [("conv1", 64), ("layer1.0.bn1", 64)])
def test_hook_removed_after_error(trusted_model, layer, filter_index):
    with pytest.raises(ValueError):
        visualize_filter(trusted_model, layer, filter_index, 2, image_size=SIZE, seed=0)
    assert hooks(trusted_model) == {}


def test_zero_iterations_returns_start_noise(trusted_model):
    torch.manual_seed(3)
    noise = torch.randn(1, 3, SIZE, SIZE)
    got = visualize_filter(trusted_model, "conv1", 0, 0, image_size=SIZE, seed=3)
    np.testing.assert_allclose(got, postprocess_filter(noise), atol=1e-6)


def test_zero_iterations_still_checks_filter_index(trusted_model):
    with pytest.raises(ValueError, match="out of range"):
        visualize_filter(trusted_model, "layer1.0.bn1", 99, 0, image_size=SIZE, seed=0)


@pytest.fixture(scope="module")
def grid(trusted_model):
    return plot_filter_grid(trusted_model, iterations=1, image_size=32)


def test_grid_titles_name_layer_and_filter(grid):
    titles = [ax.get_title() for ax in grid.axes]
    assert titles == [f"{layer} #{f}" for layer in DEFAULT_LAYERS for f in DEFAULT_FILTERS]


def test_grid_cells_are_images_without_axis(grid):
    assert len(grid.axes) == 9
    for ax in grid.axes:
        assert not ax.axison
        (image,) = ax.get_images()
        assert image.get_array().shape == (32, 32, 3)
