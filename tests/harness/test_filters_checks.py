"""Task 5 checks (grader/tasks/filters.py): wrong filter visualisations lose the right points."""

from __future__ import annotations

import pytest

from grader.tasks import filters as task
from tests.harness.hostile import HOSTILE_CLASSES, params

FULL = {"activation_rises": 4.0, "activation_level": 4.0, "output_format": 2.0,
        "hooks_removed": 2.0, "model_untouched": 2.0, "grid": 2.0}

# The handout's visualize_filter, adapted only where the template's signature asks:
# image_size and seed keywords, and a layer given by name (the template accepts both).
HANDOUT = '''
def postprocess_filter(img_tensor: torch.Tensor):
    """Helper function for post-processing and display."""
    img = img_tensor.squeeze(0).cpu().detach().numpy()
    img = np.transpose(img, (1, 2, 0))
    # Normalize to [0, 1] for display
    img = (img - img.min()) / (img.max() - img.min())
    return img


def visualize_filter(model, layer, filter_index: int, iterations: int = 50, lr: float = 0.1,
                     *, image_size: int = 224, seed=None) -> np.ndarray:
    """Generates an image that maximally activates a specified filter."""
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(layer, str):
        layer = model.get_submodule(layer)
    # Start with a random noise image (our canvas)
    image = torch.randn(1, 3, image_size, image_size, requires_grad=True)
    optimizer = torch.optim.Adam([image], lr=lr, weight_decay=1e-6)

    # We need to hook into the model to capture the output of our target layer
    activation = None
    def hook(model, input, output):
        nonlocal activation
        activation = output

    handle = layer.register_forward_hook(hook)

    print(f"Computing Filter #{filter_index} of layer {layer.__class__.__name__}...")
    for i in range(iterations):
        optimizer.zero_grad()
        # Forward pass to get the activation
        model(image)
        # Our "loss" is the negative of the mean activation of the chosen filter.
        # We negate it because optimizers minimize, but we want to maximize.
        loss = -torch.mean(activation[0, filter_index])
        loss.backward()
        optimizer.step()

    handle.remove() # Clean up the hook
    return postprocess_filter(image)
'''


# The same loop, but each forward pass stops at the target layer (what follows it does not
# change the loss): the wrong variants below start from this to keep the tests fast.
FAST = HANDOUT.replace(
    "        activation = output\n",
    "        activation = output\n        raise _Stop\n",
).replace(
    "        model(image)\n",
    "        try:\n            model(image)\n        except _Stop:\n            pass\n",
).replace(
    '    print(f"Computing Filter', '    # print(f"Computing Filter',
) + "\n\nclass _Stop(Exception):\n    pass\n"


def _handout_with(old: str, new: str) -> str:
    assert old in FAST, old
    return FAST.replace(old, new)


# Each wrong implementation: (source appended to filters.py, {failing check: words in message}).
WRONG = {
    "loss_sign_flipped": (
        _handout_with("loss = -torch.mean", "loss = torch.mean"),
        {"activation_rises": "optimizer.step()", "activation_level": "80%"},
    ),
    "no_optimizer_step": (
        _handout_with("        optimizer.step()\n", "        pass\n"),
        {"activation_rises": "activation went from", "activation_level": "80%"},
    ),
    "wrong_filter": (
        _handout_with("activation[0, filter_index]", "activation[0, filter_index + 1]"),
        {"activation_rises": "activation went from", "activation_level": "80%"},
    ),
    "hook_not_removed": (
        # The handout's own loop: its leftover hook only stores, it stops no later pass.
        HANDOUT.replace("    handle.remove() # Clean up the hook\n", ""),
        {"hooks_removed": "handle.remove()"},
    ),
    "left_in_train_mode": (
        _handout_with("    handle.remove() # Clean up the hook\n",
                      "    handle.remove()\n    model.train()\n"),
        # The grid then fails too: BatchNorm in training mode rejects layer4's 1x1 maps.
        {"model_untouched": "training mode", "grid": "raised ValueError"},
    ),
    "optimises_the_weights": (
        _handout_with("torch.optim.Adam([image]", "torch.optim.Adam([image, *model.parameters()]"),
        # The weights absorb part of each step, so the image falls short of the level too.
        {"model_untouched": "weights", "activation_level": "Adam([image]"},
    ),
    "raw_image_returned": (
        _handout_with("return postprocess_filter(image)",
                      "return image.detach().squeeze(0).permute(1, 2, 0).numpy()"),
        {"output_format": "[0, 1]"},
    ),
    "image_size_ignored": (
        _handout_with("torch.randn(1, 3, image_size, image_size", "torch.randn(1, 3, 32, 32"),
        {"output_format": "shape (32, 32, 3)"},
    ),
    "grid_titles_without_filter": (
        "_grid = plot_filter_grid\n"
        "def plot_filter_grid(model, layers=DEFAULT_LAYERS, filters=DEFAULT_FILTERS, **kw):\n"
        "    fig = _grid(model, layers, filters, **kw)\n"
        "    for ax in fig.axes:\n"
        "        ax.set_title(ax.get_title().split(' #')[0])\n"
        "    return fig\n",
        {"grid": "filter number"},
    ),
    "grid_of_four": (
        "_grid = plot_filter_grid\n"
        "def plot_filter_grid(model, layers=DEFAULT_LAYERS, filters=DEFAULT_FILTERS, **kw):\n"
        "    return _grid(model, list(layers)[:2], list(filters)[:2], **kw)\n",
        {"grid": "4 image cells"},
    ),
}

# Return values that must give 0 for output_format, with a message, and crash nothing (the
# model never runs: the activation checks say so).
PRELUDE = HOSTILE_CLASSES + '''

def visualize_filter(*args, **kwargs):
    image = np.zeros((64, 64, 3), dtype=np.float32)
    return {value}
'''
HOSTILE = {
    "none": ("None", "builtins.NoneType"),
    "lying_eq": ("_Liar()", "_Liar"),
    "tensor_subclass": ("torch.from_numpy(image).as_subclass(_Sub)", "_Sub"),
    "nan_image": ("np.full_like(image, np.nan)", "NaN"),
    "wrong_shape": ("image.transpose(2, 0, 1)", "shape (3, 64, 64)"),
}


# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"no_optimizer_step", "wrong_filter", "left_in_train_mode",
                  "optimises_the_weights", "image_size_ignored", "grid_of_four"})


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["filters"])
    assert {c.name: c.score for c in graded.results["filters"].checks} == FULL


def test_handout_code_gets_full_points(grade_variant) -> None:
    """The handout's own loop (loss.backward() leaves .grad on the weights) loses nothing."""
    graded = grade_variant({"filters.py": HANDOUT}, tasks=["filters"])
    assert {c.name: c.score for c in graded.results["filters"].checks} == FULL, \
        graded.results["filters"].checks
    facts = graded.records["filters"].data["cases"]["conv1_f3"]["model"]
    assert facts["params_with_grad"], "the handout's loop should leave .grad on the weights"


def test_fast_base_of_the_wrong_variants_gets_full_points(grade_variant) -> None:
    graded = grade_variant({"filters.py": FAST}, tasks=["filters"])
    assert graded.score("filters") == graded.max_score("filters"), graded.failed("filters")


def test_deepcopy_of_the_model_is_seen(grade_variant) -> None:
    """Optimising through a private copy of the model is still graded on its image."""
    source = _handout_with(
        "    if isinstance(layer, str):\n        layer = model.get_submodule(layer)\n",
        "    import copy\n"
        "    name = layer if isinstance(layer, str) else next(\n"
        "        n for n, m in model.named_modules() if m is layer)\n"
        "    model = copy.deepcopy(model)\n"
        "    layer = model.get_submodule(name)\n",
    )
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    assert graded.score("filters") == graded.max_score("filters"), graded.failed("filters")
    case = graded.records["filters"].data["cases"]["conv1_f3"]
    assert case["forward_calls"] > 0 and case["forward_calls_on_given_model"] == 0


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["filters"])
    assert graded.score("filters") == 0
    for check in graded.results["filters"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    assert set(graded.failed("filters")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("filters", name).message, graded.check("filters", name)
    for name in set(FULL) - set(failing):
        assert graded.check("filters", name).score == FULL[name]


def test_other_tasks_keep_their_points(grade_variant) -> None:
    """A broken Task 5 costs nothing elsewhere (attribution_viz: a cheap task)."""
    graded = grade_variant({"filters.py": "def visualize_filter(*a, **k):\n    1 / 0\n"},
                           tasks=["filters", "attribution_viz"])
    assert graded.score("filters") == 0
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"filters.py": PRELUDE.format(value=value)}, tasks=["filters"])
    check = graded.check("filters", "output_format")
    assert check.score == 0 and words in check.message, check
    for result in graded.results["filters"].checks:
        assert "could not be checked" not in result.message, result
    assert "never ran the model" in graded.check("filters", "activation_level").message


def test_layer_name_and_module_are_graded_separately(grade_variant) -> None:
    """Only the call with a name fails when the layer must be a module: half the points."""
    source = _handout_with(
        "    if isinstance(layer, str):\n        layer = model.get_submodule(layer)\n", "")
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    check = graded.check("filters", "activation_rises")
    assert check.score == FULL["activation_rises"] / 2
    assert "visualize_filter(model, 'conv1', 3)" in check.message
    assert "AttributeError" in check.message
    # The call that raised left nothing behind, and the one that returned is fine.
    assert graded.check("filters", "hooks_removed").passed
    assert graded.check("filters", "model_untouched").passed


def test_hook_left_by_a_call_that_raised_is_found(grade_variant) -> None:
    """The handout's loop without try/finally leaves its hook when the loop raises."""
    source = _handout_with("        loss = -torch.mean(activation[0, filter_index])\n",
                           "        loss = -torch.mean(activation[0, filter_index])\n"
                           "        if filter_index == 3:\n"
                           "            raise RuntimeError('out of memory')\n")
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    check = graded.check("filters", "hooks_removed")
    assert not check.passed
    assert "on conv1 after visualize_filter(model, 'conv1', 3)" in check.message


def test_grid_titles_must_hold_the_filter_number_not_a_layer_digit() -> None:
    # "layer2.0.conv1" holds the digits 0, 1, 2: the grid's filter numbers avoid them.
    for layer in task.GRID_LAYERS:
        for number in task.GRID_FILTERS:
            assert str(number) not in layer
