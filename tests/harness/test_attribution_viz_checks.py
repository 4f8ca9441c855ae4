"""Task 7 checks (grader/tasks/attribution_viz.py): incomplete grids lose the right points."""

from __future__ import annotations

import pytest

from grader.tasks import attribution_viz as task

FULL = {"coverage": 5.0, "cells_drawn": 3.0}

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

# Each wrong implementation: (source appended to attribution_viz.py,
# {failing check: words in its message}, expected fraction of each failing check).
WRONG = {
    "only_heat_map": (
        _WRAP + "    return _grid(attributions, image, methods=['heat_map'], signs=signs)\n",
        {"coverage": "missing: blended_heat_map/all"},
        {"coverage": 4 / 18},
    ),
    "default_sign_only": (
        _WRAP + "    return _grid(attributions, image, methods=methods, signs=['absolute_value'])\n",
        {"coverage": "heat_map/positive"},
        {"coverage": 5 / 18},
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
        DRAWN_ELSEWHERE,
        {"cells_drawn": "plt_fig_axis=(fig, ax)"},
        {"cells_drawn": 0.0},
    ),
    "constant_cells": (
        _WRAP + "    fig = _grid(attributions, image, methods=methods, signs=signs)\n"
                "    for ax in fig.axes[:4]:\n"
                "        title = ax.get_title()\n"
                "        ax.clear()\n"
                "        ax.imshow(np.ones((8, 8, 3)))\n"
                "        ax.axis('off')\n"
                "        ax.set_title(title)\n"
                "    return fig\n",
        {"cells_drawn": "4 of 18 cells are blank"},
        {"cells_drawn": 14 / 18},
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


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["attribution_viz"])
    checks = graded.results["attribution_viz"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["attribution_viz"])
    assert graded.score("attribution_viz") == 0
    for check in graded.results["attribution_viz"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing, fractions = WRONG[variant]
    graded = grade_variant({"attribution_viz.py": source}, tasks=["attribution_viz"])
    assert set(graded.failed("attribution_viz")) == set(failing), \
        graded.results["attribution_viz"].checks
    for name, words in failing.items():
        check = graded.check("attribution_viz", name)
        assert words in check.message, check
        assert check.score == pytest.approx(FULL[name] * fractions[name], abs=1e-3)
    for name in set(FULL) - set(failing):
        assert graded.check("attribution_viz", name).score == FULL[name]


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


def test_trusted_attributions_have_both_signs() -> None:
    summed = task.trusted_attributions(64).sum(dim=1)
    assert summed.max() > 0.3 and summed.min() < -0.3
    assert len(task.REQUIRED) == 18
