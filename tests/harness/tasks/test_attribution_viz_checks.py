"""Task 7 checks (grader/tasks/attribution_viz.py): incomplete grids lose the right points."""

from __future__ import annotations

import pytest
import torch

from grader.check.grading import check_task
from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import attribution_viz as task

FULL = {c.name: c.points for c in checks_of("attribution_viz")}  # full marks, check by check

_WRAP = (
    "_grid = visualize_attribution_grid\n\n\n"
    "def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):\n"
)

# A student's own grid that titles every cell but lets Captum draw elsewhere: without
# plt_fig_axis, visualize_image_attr makes a Figure of its own.
DRAWN_ELSEWHERE = '''
def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):
    attr, img = display_arrays(attributions, image)
    fig = Figure(figsize=(12, 15))
    axes = fig.subplots(len(methods), len(signs), squeeze=False)
    for row, method in enumerate(methods):
        for col, sign in enumerate(signs):
            axes[row][col].set_title(f"{method} / {sign}")
            if (method, sign) not in UNSUPPORTED:
                viz.visualize_image_attr(attr, img, method=method, sign=sign, use_pyplot=False)
    return fig
'''

# A grid drawn cell by cell with what `cell(method, sign, attr, img)` returns as
# (arrays handed to visualize_image_attr) under the right titles.
def _grid_with(cell: str) -> str:
    return (
        "def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):\n"
        "    attr, img = display_arrays(attributions, image)\n"
        "    fig = Figure(figsize=(12, 15))\n"
        "    axes = fig.subplots(len(methods), len(signs), squeeze=False)\n"
        "    for row, method in enumerate(methods):\n"
        "        for col, sign in enumerate(signs):\n"
        f"            {cell}\n"
        "            draw_attribution(fig, axes[row][col], a, img, method=m, sign=s,\n"
        "                             title=f'{method} / {sign}')\n"
        "    return fig\n"
    )


_SWAP = {"positive": "negative", "negative": "positive"}

# Each wrong implementation: (source appended to attribution_viz.py,
# {failing check: words in its message}, expected fraction of each failing check).
WRONG = {
    "only_heat_map": (
        _WRAP + "    return _grid(attributions, image, methods=['heat_map'], signs=signs)\n",
        {"coverage": "no cell is titled with blended_heat_map/all",
         "cells_drawn": "14 of 18"},
        {"coverage": 4 / 18, "cells_drawn": 4 / 18},
    ),
    "one_method_for_all_cells": (
        # Titled with every pair, drawn with heat_map: the titles earn nothing.
        _grid_with("a, m, s = attr, 'heat_map', sign"),
        {"coverage": "the cells titled blended_heat_map/all",
         "cells_drawn": "14 of 18"},
        {"coverage": 4 / 18, "cells_drawn": 4 / 18},
    ),
    "default_sign_only": (
        _WRAP + "    return _grid(attributions, image, methods=methods, signs=['absolute_value'])\n",
        {"coverage": "heat_map/positive", "cells_drawn": "13 of 18"},
        {"coverage": 5 / 18, "cells_drawn": 5 / 18},
    ),
    "default_sign_in_every_cell": (
        _grid_with("a, m, s = attr, method, 'absolute_value'"),
        {"coverage": "the cells titled heat_map/all", "cells_drawn": "13 of 18"},
        {"coverage": 5 / 18, "cells_drawn": 5 / 18},
    ),
    "signs_swapped": (
        # Every pair is drawn somewhere (cells_drawn), but under the other sign's title;
        # the photo cells of those signs are not vouched for by any other method.
        _grid_with(f"a, m, s = attr, method, {_SWAP!r}.get(sign, sign)"),
        {"coverage": "the cells titled heat_map/positive"},
        {"coverage": 8 / 18},
    ),
    "attributions_negated": (
        # Another map with the right titles: positive and negative trade places (drawn,
        # under the wrong titles), "all" flips, only absolute_value's titles stay right.
        _grid_with("a, m, s = -attr, method, sign"),
        {"coverage": "heat_map/all", "cells_drawn": "3 of 18"},
        {"coverage": 5 / 18, "cells_drawn": 15 / 18},
    ),
    "random_maps_with_titles": (
        _grid_with("a, m, s = np.random.default_rng(0).normal(size=attr.shape), method, sign"),
        {"coverage": "0 of 18", "cells_drawn": "18 of 18"},
        {"coverage": 0.0, "cells_drawn": 0.0},
    ),
    "no_titles": (
        _WRAP + "    fig = _grid(attributions, image, methods=methods, signs=signs)\n"
                "    for ax in fig.axes:\n"
                "        ax.set_title('')\n"
                "    return fig\n",
        {"coverage": "title its cell"},
        {"coverage": 0.0},
    ),
    "drawn_elsewhere": (
        # Stricter since issue 13: titled cells that show nothing earn no coverage.
        DRAWN_ELSEWHERE,
        {"coverage": "0 of 18", "cells_drawn": "plt_fig_axis=(fig, ax)"},
        {"coverage": 0.0, "cells_drawn": 0.0},
    ),
    "constant_cells": (
        # Stricter since issue 13: a constant image under the right title earns nothing.
        _WRAP + "    fig = _grid(attributions, image, methods=methods, signs=signs)\n"
                "    for ax in fig.axes[:4]:\n"
                "        title = ax.get_title()\n"
                "        ax.clear()\n"
                "        ax.imshow(np.ones((8, 8, 3)))\n"
                "        ax.axis('off')\n"
                "        ax.set_title(title)\n"
                "    return fig\n",
        {"coverage": "the cells titled heat_map/all", "cells_drawn": "4 of 18"},
        {"coverage": 14 / 18, "cells_drawn": 14 / 18},
    ),
}

# Honest grids written differently: each keeps full marks on both variants.
HONEST = {
    # pyplot, rows = signs, own wording, float32 arrays straight from the tensors, colour
    # bars on, unsupported cells turned off.
    "pyplot_transposed": (
        "import matplotlib.pyplot as plt\n\n\n"
        "def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):\n"
        "    attr = attributions.squeeze(0).permute(1, 2, 0).cpu().detach().numpy()\n"
        "    img = image.squeeze(0).permute(1, 2, 0).cpu().numpy()\n"
        "    fig, axes = plt.subplots(len(signs), len(methods), figsize=(20, 16))\n"
        "    for col, method in enumerate(methods):\n"
        "        for row, sign in enumerate(signs):\n"
        "            ax = axes[row, col]\n"
        "            if (method, sign) in UNSUPPORTED:\n"
        "                ax.axis('off')\n"
        "                continue\n"
        "            viz.visualize_image_attr(attr, img, method=method, sign=sign,\n"
        "                                     plt_fig_axis=(fig, ax), use_pyplot=False,\n"
        "                                     show_colorbar=True,\n"
        "                                     title=f'{method.replace(\"_\", \" \")} '\n"
        "                                           f'(sign: {sign})')\n"
        "    return fig\n"
    ),
    # One cell per supported pair in a flat list of axes, try/except around Captum.
    "flat_axes_try_except": (
        "def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):\n"
        "    attr, img = display_arrays(attributions, image)\n"
        "    fig = Figure(figsize=(16, 20))\n"
        "    axes = fig.subplots(5, 4).ravel()\n"
        "    for ax, (method, sign) in zip(axes, [(m, s) for m in methods for s in signs]):\n"
        "        try:\n"
        "            viz.visualize_image_attr(attr, img, method=method, sign=sign,\n"
        "                                     plt_fig_axis=(fig, ax), use_pyplot=False)\n"
        "        except AssertionError:\n"
        "            ax.axis('off')\n"
        "        ax.set_title(f'{method} - {sign}')\n"
        "    return fig\n"
    ),
}

PRELUDE = '''
class _Liar:
    def __eq__(self, other):
        return True

    def __getattr__(self, name):
        raise RuntimeError("the grader must not call me")


def visualize_attribution_grid(attributions, image, **kwargs):
    return {value}
'''
HOSTILE = {
    "none": ("None", "expected a matplotlib Figure"),
    "lying_eq": ("_Liar()", "_Liar"),
    "array": ("np.zeros((10, 10, 3))", "numpy.ndarray"),
    "empty_figure": ("Figure()", "no axes"),
}


@pytest.fixture(params=["practice", "graded"])
def settings(request: pytest.FixtureRequest) -> ProbeSettings:
    """The published practice variant and a graded one: every expectation holds on both."""
    if request.param == "practice":
        return DEFAULT_SETTINGS
    return request.getfixturevalue("graded_test_settings")


def test_reference_gets_full_points(grade_impl, settings: ProbeSettings) -> None:
    graded = grade_impl("reference", tasks=["attribution_viz"], settings=settings)
    checks = graded.results["attribution_viz"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


@pytest.mark.parametrize("variant", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_gets_full_points(grade_variant, settings: ProbeSettings,
                                         variant: str) -> None:
    graded = grade_variant({"attribution_viz.py": HONEST[variant]}, tasks=["attribution_viz"],
                           settings=settings)
    checks = graded.results["attribution_viz"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["attribution_viz"])
    assert graded.score("attribution_viz") == 0
    for check in graded.results["attribution_viz"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, graded_test_settings,
                                               variant: str) -> None:
    source, failing, fractions = WRONG[variant]
    graded = grade_variant({"attribution_viz.py": source}, tasks=["attribution_viz"],
                           settings=graded_test_settings)
    assert set(graded.failed("attribution_viz")) == set(failing), \
        graded.results["attribution_viz"].checks
    for name, words in failing.items():
        check = graded.check("attribution_viz", name)
        assert words in check.message, check
        assert check.score == pytest.approx(FULL[name] * fractions[name], abs=1e-3)
    for name in set(FULL) - set(failing):
        assert graded.check("attribution_viz", name).score == FULL[name]


def test_random_maps_with_titles_score_nothing_on_practice_inputs(grade_variant) -> None:
    source, _, _ = WRONG["random_maps_with_titles"]
    graded = grade_variant({"attribution_viz.py": source}, tasks=["attribution_viz"])
    assert graded.score("attribution_viz") == 0, graded.results["attribution_viz"].checks


def test_practice_answers_earn_nothing_in_the_graded_variant(
        references_for, graded_test_settings, check_context) -> None:
    """The release ships the practice reference's grid: shown as the answer to the graded
    variant's inputs (other maps, other photo) it covers no pair."""
    practice = references_for(DEFAULT_SETTINGS)["attribution_viz"]
    graded = references_for(graded_test_settings)["attribution_viz"]
    result = check_task("attribution_viz", practice, graded, check_context)
    assert result.score == 0, result.checks


@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"attribution_viz.py": PRELUDE.format(value=value)},
                           tasks=["attribution_viz"])
    assert graded.score("attribution_viz") == 0
    for check in graded.results["attribution_viz"].checks:
        assert words in check.message, check
        assert "could not be checked" not in check.message, check


def test_pyplot_figure_and_axes_tuple_are_accepted(grade_variant) -> None:
    """A pyplot grid returned as ``(fig, axes)`` (as plt.subplots gives) counts, and the
    probe closes it afterwards."""
    source = (
        "import matplotlib.pyplot as plt\n\n\n"
        "def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):\n"
        "    attr, img = display_arrays(attributions, image)\n"
        "    fig, axes = plt.subplots(len(methods), len(signs), figsize=(12, 15))\n"
        "    for row, method in enumerate(methods):\n"
        "        for col, sign in enumerate(signs):\n"
        "            draw_attribution(fig, axes[row][col], attr, img, method=method, sign=sign)\n"
        "    return fig, axes\n"
    )
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    graded = grade_variant({"attribution_viz.py": source}, tasks=["attribution_viz"])
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz"), \
        graded.results["attribution_viz"].checks
    assert set(plt.get_fignums()) == before


@pytest.mark.parametrize(
    ("title", "method", "sign", "expected"),
    [
        ("heat_map / all", "heat_map", "all", True),
        ("Heat map (sign: absolute value)", "heat_map", "absolute_value", True),
        ("blended_heat_map / all", "heat_map", "all", False),
        ("blended heat-map, positive", "blended_heat_map", "positive", True),
        ("masked_image / all: not supported", "masked_image", "positive", False),
        ("alpha scaling - negative", "alpha_scaling", "negative", True),
        ("original_image / small", "original_image", "all", False),
    ],
    ids=["exact", "spaces", "not_inside_blended", "hyphen", "other_sign", "alpha", "all_word"],
)
def test_title_matching(title: str, method: str, sign: str, expected: bool) -> None:
    assert task.title_matches(title, method, sign) is expected


@pytest.mark.parametrize("size", [32, 64])
def test_trusted_attributions_have_both_signs(size: int, graded_test_settings) -> None:
    for settings in (DEFAULT_SETTINGS, graded_test_settings):
        summed = task.trusted_attributions(size, settings).sum(dim=1)
        assert summed.max() > 0.3 and summed.min() < -0.3
        assert 0.4 < float((summed > 0).double().mean()) < 0.6
    assert len(task.REQUIRED) == 18


def test_trusted_attributions_come_from_the_variant(graded_test_settings) -> None:
    practice = task.trusted_attributions(64)
    assert torch.equal(practice, task.trusted_attributions(64, DEFAULT_SETTINGS))
    assert not torch.allclose(practice, task.trusted_attributions(64, graded_test_settings),
                              atol=0.1)
