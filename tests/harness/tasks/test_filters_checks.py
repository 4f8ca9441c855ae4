"""Task 5 checks (grader/tasks/filters.py): wrong filter visualisations lose the right points."""

from __future__ import annotations

import pytest
import torch

from grader.check.grading import check_task
from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import filters as task
from tests.harness.hostile import HOSTILE_CLASSES, params

FULL = {c.name: c.points for c in checks_of("filters")}  # full marks, check by check
# Checks that pay only for a call whose activation_level passes.
SECONDARY = ("output_format", "hooks_removed", "model_untouched")

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


def _grid_override(body: str) -> str:
    return ("def plot_filter_grid(model, layers=DEFAULT_LAYERS, filters=DEFAULT_FILTERS, *,\n"
            "                     iterations=50, lr=0.1, image_size=224, seed=0):\n" + body)


# A grid written from scratch: pyplot, one row per FILTER, uint8 images, its own titles.
HONEST_GRID = _grid_override(
    "    import matplotlib.pyplot as plt\n"
    "    fig, axes = plt.subplots(len(filters), len(layers), figsize=(9, 9))\n"
    "    for j, layer in enumerate(layers):\n"
    "        module = model.get_submodule(layer)\n"
    "        for i, number in enumerate(filters):\n"
    "            img = visualize_filter(model, module, number, iterations, lr,\n"
    "                                   image_size=image_size, seed=seed)\n"
    "            axes[i, j].imshow((img * 255).astype(np.uint8))\n"
    "            axes[i, j].set_title(f'Filter {number} ({layer})')\n"
    "            axes[i, j].axis('off')\n"
    "    fig.tight_layout()\n"
    "    return fig\n"
)

# The handout's loop written differently: its own generator for the seed, zero_grad to
# None, an extra pass measuring the final activation, the mean over the channel's map.
HONEST_GENERATOR = FAST.replace(
    "    if seed is not None:\n        torch.manual_seed(seed)\n", "").replace(
    "    image = torch.randn(1, 3, image_size, image_size, requires_grad=True)\n",
    "    g = torch.Generator()\n"
    "    if seed is not None:\n"
    "        g.manual_seed(seed)\n"
    "    image = torch.randn(1, 3, image_size, image_size, generator=g).requires_grad_()\n",
).replace("        optimizer.zero_grad()\n", "        optimizer.zero_grad(set_to_none=True)\n"
).replace(
    "    handle.remove() # Clean up the hook\n",
    "    with torch.no_grad():\n"
    "        try:\n"
    "            model(image)\n"
    "        except _Stop:\n"
    "            pass\n"
    "    print('final activation', float(activation[0, filter_index].mean()))\n"
    "    handle.remove() # Clean up the hook\n",
) + HONEST_GRID

HONEST = {
    "handout": HANDOUT,
    "generator_and_final_pass": HONEST_GENERATOR,
}


# Each wrong implementation: (source appended to filters.py, {failing check: words in
# message}). Checked on the graded test variant; the catalog's point is the set of checks
# each loses, everything else keeps its points.
_MAIN_LOST = {"output_format": "pays only", "hooks_removed": "pays only",
              "model_untouched": "pays only"}
_GRID_LOST = {"grid": "do not show what your visualize_filter gives"}
WRONG = {
    "loss_sign_flipped": (
        _handout_with("loss = -torch.mean", "loss = torch.mean"),
        {"activation_rises": "optimizer.step()", "activation_level": "80%", **_MAIN_LOST,
         **_GRID_LOST},
    ),
    "no_optimizer_step": (
        _handout_with("        optimizer.step()\n", "        pass\n"),
        {"activation_rises": "activation went from", "activation_level": "80%",
         "iterations": "1 different images", "lr": "never changed", **_MAIN_LOST,
         **_GRID_LOST},
    ),
    "wrong_filter": (
        _handout_with("activation[0, filter_index]", "activation[0, filter_index + 1]"),
        {"activation_rises": "activation went from", "activation_level": "80%", **_MAIN_LOST,
         **_GRID_LOST},
    ),
    "filter_index_ignored": (
        _handout_with("activation[0, filter_index]", "activation[0, 0]"),
        {"activation_rises": "activation went from", "activation_level": "80%", **_MAIN_LOST,
         **_GRID_LOST},
    ),
    "hard_coded_layer": (
        _handout_with("    handle = layer.register_forward_hook(hook)\n",
                      "    handle = model.conv1.register_forward_hook(hook)\n"),
        {"activation_rises": "activation went from", "activation_level": "80%", **_MAIN_LOST,
         **_GRID_LOST},
    ),
    "iterations_ignored": (
        _handout_with("for i in range(iterations)", "for i in range(50)"),
        {"iterations": "50 different images"},
    ),
    "seed_ignored": (
        # The grid's cells then start from the global generator: only its first cell is
        # what a seeded call gives.
        _handout_with("    if seed is not None:\n        torch.manual_seed(seed)\n", ""),
        {"seed": "not the noise of seed", **_GRID_LOST},
    ),
    "seed_hard_coded": (
        # The grid's cells then do not start from the grid seed's noise either.
        _handout_with("torch.manual_seed(seed)", "torch.manual_seed(0)"),
        {"seed": "not the noise of seed", **_GRID_LOST},
    ),
    "lr_ignored": (
        # The larger drawn lr falls short of the level, and the grid's cells (2 steps at
        # 0.1 instead of the grid's large lr) raise some filters too little.
        _handout_with("Adam([image], lr=lr", "Adam([image], lr=0.1"),
        {"lr": "the first step moved the pixels", "activation_level": "80%", **_MAIN_LOST,
         **_GRID_LOST},
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
        # The weights absorb part of each step, so the image falls short of the level too
        # (the other secondary checks then pay nothing), and the grid's cells no longer
        # raise their filters of the trusted model.
        {"model_untouched": "weights", "activation_level": "Adam([image]",
         "output_format": "pays only", "hooks_removed": "pays only", **_GRID_LOST},
    ),
    "raw_image_returned": (
        _handout_with("return postprocess_filter(image)",
                      "return image.detach().squeeze(0).permute(1, 2, 0).numpy()"),
        {"output_format": "[0, 1]", **_GRID_LOST},
    ),
    "image_size_ignored": (
        _handout_with("torch.randn(1, 3, image_size, image_size", "torch.randn(1, 3, 32, 32"),
        {"output_format": "shape (32, 32, 3)", "seed": "shape"},
    ),
    "random_images": (
        "def visualize_filter(model, layer, filter_index, iterations=50, lr=0.1, *,\n"
        "                     image_size=224, seed=None):\n"
        "    return np.random.default_rng(seed).random((image_size, image_size, 3))\n",
        {name: "never ran the model" for name in ("activation_rises", "activation_level",
                                                  "seed", "iterations", "lr")}
        | _MAIN_LOST | {"grid": "never ran the model"},
    ),
    "grid_of_random_cells": (
        # The right titles over images that no visualize_filter call gave.
        _grid_override(
            "    fig = Figure()\n"
            "    axes = fig.subplots(len(layers), len(filters), squeeze=False)\n"
            "    rng = np.random.default_rng(seed)\n"
            "    for r, layer in enumerate(layers):\n"
            "        for c, number in enumerate(filters):\n"
            "            axes[r][c].imshow(rng.random((image_size, image_size, 3)))\n"
            "            axes[r][c].set_title(f'{layer} #{number}')\n"
            "    return fig\n"),
        {"grid": "9 of 9 cells do not show"},
    ),
    "grid_ignores_seed": (
        _grid_override(
            "    return _reference_grid(model, layers, filters, iterations=iterations, lr=lr,\n"
            "                           image_size=image_size, seed=None)\n"),
        {"grid": "cells do not show"},
    ),
    "grid_ignores_lr": (
        _grid_override(
            "    return _reference_grid(model, layers, filters, iterations=iterations,\n"
            "                           image_size=image_size, seed=seed)\n"),
        {"grid": "9 of 9 cells do not show"},
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
# The grid overrides keep the reference's visualize_filter; "_reference_grid" is its grid.
for _name in ("grid_ignores_seed", "grid_ignores_lr"):
    WRONG[_name] = ("_reference_grid = plot_filter_grid\n" + WRONG[_name][0], WRONG[_name][1])

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
                  "optimises_the_weights", "image_size_ignored", "grid_of_four",
                  "hard_coded_layer", "seed_hard_coded", "grid_ignores_lr",
                  "grid_titles_without_filter"})

# The practice variant's cases, for tests that single one out.
PRACTICE = task.cases(DEFAULT_SETTINGS)


@pytest.fixture(params=["practice", "graded"])
def settings(request: pytest.FixtureRequest) -> ProbeSettings:
    """The published practice variant and a graded one: every expectation holds on both."""
    if request.param == "practice":
        return DEFAULT_SETTINGS
    return request.getfixturevalue("graded_test_settings")


def _scores(graded) -> dict[str, float]:
    return {c.name: c.score for c in graded.results["filters"].checks}


def test_reference_gets_full_points(grade_impl, settings: ProbeSettings) -> None:
    graded = grade_impl("reference", tasks=["filters"], settings=settings)
    assert _scores(graded) == FULL, graded.results["filters"].checks


@pytest.mark.parametrize("variant", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_gets_full_points(grade_variant, settings: ProbeSettings,
                                         variant: str) -> None:
    graded = grade_variant({"filters.py": HONEST[variant]}, tasks=["filters"], settings=settings)
    assert _scores(graded) == FULL, graded.results["filters"].checks


def test_handout_loop_leaves_gradients_and_is_not_charged(grade_variant) -> None:
    """The handout's own loop (loss.backward() leaves .grad on the weights) loses nothing."""
    graded = grade_variant({"filters.py": HANDOUT}, tasks=["filters"])
    assert graded.check("filters", "model_untouched").passed
    facts = graded.records["filters"].data["cases"]["case0"]["model"]
    assert facts["params_with_grad"], "the handout's loop should leave .grad on the weights"


def test_fast_base_of_the_wrong_variants_gets_full_points(grade_variant,
                                                         graded_test_settings) -> None:
    graded = grade_variant({"filters.py": FAST}, tasks=["filters"], settings=graded_test_settings)
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
    case = graded.records["filters"].data["cases"]["case0"]
    assert case["forward_calls"] > 0 and case["forward_calls_on_given_model"] == 0


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["filters"])
    assert graded.score("filters") == 0
    for check in graded.results["filters"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, graded_test_settings,
                                               variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"filters.py": source}, tasks=["filters"],
                           settings=graded_test_settings)
    assert set(graded.failed("filters")) == set(failing), graded.results["filters"].checks
    for name, words in failing.items():
        assert words in graded.check("filters", name).message, graded.check("filters", name)
    for name in set(FULL) - set(failing):
        assert graded.check("filters", name).score == FULL[name]


def test_random_images_score_nothing(grade_variant, settings: ProbeSettings) -> None:
    graded = grade_variant({"filters.py": WRONG["random_images"][0]}, tasks=["filters"],
                           settings=settings)
    assert graded.score("filters") == 0, graded.results["filters"].checks


@pytest.mark.parametrize("parameter", ["layer", "filter", "iterations", "lr", "seed",
                                       "image_size", "decoy"])
def test_cases_differ_in_every_argument(parameter: str, graded_test_settings) -> None:
    """Two values of each argument within a variant, none of them the defaults a student
    could hard-code, and other values in the graded variant."""
    practice, graded = task.cases(DEFAULT_SETTINGS), task.cases(graded_test_settings)
    assert practice[0][parameter] != practice[1][parameter]
    assert [c[parameter] for c in practice] != [c[parameter] for c in graded]
    for case in practice + graded:
        assert case["lr"] != 0.1 and case["iterations"] != 50 and case["seed"] > 1000
        assert case["decoy"] != case["seed"] and case["filter"] >= 1


def test_grid_differs_between_variants(graded_test_settings) -> None:
    practice, graded = task.grid_spec(DEFAULT_SETTINGS), task.grid_spec(graded_test_settings)
    for key in ("layers", "filters", "lr", "seed"):
        assert practice[key] != graded[key], key


def test_probe_does_not_seed_the_global_generator_with_the_seed(grade_variant) -> None:
    """A call that ignores `seed` starts from the decoy's noise, never the seed's."""
    source, _ = WRONG["seed_ignored"]
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    first = graded.records["filters"].tensors["case0_first"]
    case = PRACTICE[0]
    assert not torch.allclose(first, task.seeded_noise(case["seed"], case["image_size"]))


def test_practice_answers_earn_nothing_in_the_graded_variant(
        references_for, graded_test_settings, check_context) -> None:
    """The release ships the practice reference's record: as the answer to the graded
    variant's calls (other layers, filters, seeds, lr, iterations) it earns nothing."""
    practice = references_for(DEFAULT_SETTINGS)["filters"]
    graded = references_for(graded_test_settings)["filters"]
    result = check_task("filters", practice, graded, check_context)
    scores = {c.name: c.score for c in result.checks}
    # The practice inputs replayed: never the graded seeds' noise, never the graded
    # filters' level, no grid cell. (Their step sizes and counts may match a graded
    # case by chance: the ranges are the same for every variant.)
    for name in ("activation_level", "seed", "grid", *SECONDARY):
        assert scores[name] == 0, result.checks
    assert result.score <= FULL["iterations"] + FULL["lr"] + FULL["activation_rises"] / 2


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
    """Only the call with a name fails when the layer must be a module: half the points,
    and the secondary checks pay only for the call that worked (stricter since issue 13)."""
    source = _handout_with(
        "    if isinstance(layer, str):\n        layer = model.get_submodule(layer)\n", "")
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    check = graded.check("filters", "activation_rises")
    assert check.score == FULL["activation_rises"] / 2
    assert f"visualize_filter(model, {PRACTICE[0]['layer']!r}, {PRACTICE[0]['filter']}" \
        in check.message
    assert "AttributeError" in check.message
    for name in SECONDARY:
        assert graded.check("filters", name).score == FULL[name] / 2


def test_hook_left_by_a_call_that_raised_is_found(grade_variant) -> None:
    """The handout's loop without try/finally leaves its hook when the loop raises."""
    case = PRACTICE[0]
    source = _handout_with("        loss = -torch.mean(activation[0, filter_index])\n",
                           "        loss = -torch.mean(activation[0, filter_index])\n"
                           f"        if filter_index == {case['filter']}:\n"
                           "            raise RuntimeError('out of memory')\n")
    graded = grade_variant({"filters.py": source}, tasks=["filters"])
    check = graded.check("filters", "hooks_removed")
    assert not check.passed
    assert f"on {case['layer']} after visualize_filter(model, {case['layer']!r}" in check.message


@pytest.mark.parametrize("which", ["practice", "graded"])
def test_grid_filter_numbers_are_not_layer_digits(which: str, graded_test_settings) -> None:
    # "layer2.0.conv1" holds the digits 0, 1, 2: the grid's filter numbers avoid them.
    grid = task.grid_spec(DEFAULT_SETTINGS if which == "practice" else graded_test_settings)
    for layer in grid["layers"]:
        for number in grid["filters"]:
            assert str(number) not in layer.split(".")
            assert number >= 10
