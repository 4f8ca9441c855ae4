"""Task 9 checks (grader/tasks/comparison.py): thin comparisons lose the right points."""

from __future__ import annotations

import pytest
import torch

from grader.settings import DEFAULT_SETTINGS
from grader.tasks import comparison as task
from tests.harness.hostile import HOSTILE_CLASSES, params

# The variants call Captum as students do; its notes on inputs and ReLU hooks are noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")

FULL = {"algorithms": 4.0, "outputs": 4.0, "figure": 2.0}
SIZE = DEFAULT_SETTINGS.comparison_size

# Five one-pass algorithms (a valid solution, cheap enough for many variants); the wrong
# variants below edit its result or the figure.
FAST = '''
from captum.attr import Deconvolution


def compare_attributions(model, inputs, target, *, n_steps=50, seed=0):
    cam = LayerGradCam(model, model.layer4).attribute(inputs, target=target)
    cam = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:])).expand_as(inputs)
    result = {
        "Saliency": Saliency(model).attribute(inputs, target=target),
        "InputXGradient": InputXGradient(model).attribute(inputs, target=target),
        "GuidedBackprop": GuidedBackprop(model).attribute(inputs, target=target),
        "Deconvolution": Deconvolution(model).attribute(inputs, target=target),
        "GradCAM": cam,
    }
    return {name: value.detach().clone() for name, value in result.items()}
'''


def _then(body: str) -> str:
    """FAST, then compare_attributions redefined to edit its ``result``."""
    return (FAST + "\n\n_fast = compare_attributions\n\n\n"
            "def compare_attributions(model, inputs, target, **kwargs):\n"
            "    result = _fast(model, inputs, target, **kwargs)\n" + body)


def _plot_then(body: str) -> str:
    """FAST, then plot_comparison redefined to edit the reference's figure ``fig``."""
    return (FAST + "\n\n_plot = plot_comparison\n\n\n"
            "def plot_comparison(attributions, image):\n"
            "    fig = _plot(attributions, image)\n" + body)


# Each wrong implementation: (source appended to comparison.py,
# {failing check: words in its message}, {failing check: expected fraction}).
WRONG = {
    "four_algorithms": (
        _then("    del result['GradCAM']\n    return result\n"),
        {"algorithms": "4 distinct algorithms"},
        {"algorithms": 4 / 5},
    ),
    "one_map_five_names": (
        _then("    return {name: result['Saliency'].clone() for name in result}\n"),
        {"algorithms": "'InputXGradient' repeats 'Saliency'"},
        {"algorithms": 1 / 5},
    ),
    "scaled_copies": (
        _then("    return {name: result['InputXGradient'] * -(i + 1)\n"
              "            for i, name in enumerate(result)}\n"),
        {"algorithms": "1 distinct algorithms"},
        {"algorithms": 1 / 5},
    ),
    "numpy_maps": (
        _then("    return {name: value.numpy() for name, value in result.items()}\n"),
        {"outputs": "numpy array"},
        {"outputs": 0.0},
    ),
    "channel_summed_maps": (
        # (H, W) maps: not shaped like the input; the plot is still graded on the
        # grader's own maps.
        _then("    return {name: value[0].sum(0) for name, value in result.items()}\n"),
        {"outputs": f"has shape ({SIZE}, {SIZE})"},
        {"outputs": 0.0},
    ),
    "figure_without_titles": (
        _plot_then("    for ax in fig.axes:\n        ax.set_title('')\n    return fig\n"),
        {"figure": "title it with the algorithm's name"},
        {"figure": 0.0},
    ),
    "figure_missing_panels": (
        _plot_then("    for ax in fig.axes[3:]:\n        fig.delaxes(ax)\n    return fig\n"),
        # Axes 0 is the original image: two algorithm panels are left.
        {"figure": "'GuidedBackprop', 'Deconvolution', 'GradCAM'"},
        {"figure": 2 / 5},
    ),
}

PRELUDE = HOSTILE_CLASSES + '''

class _LyingDict(dict):
    def items(self):
        raise RuntimeError("the grader must not call me")


def compare_attributions(model, inputs, target, **kwargs):
    attr = torch.ones_like(inputs)
    return {value}
'''
# compare_attributions' hostile results: (expression, words in the outputs message or
# None when algorithms/outputs fail before looking at entries). plot_comparison still
# gets maps (the grader's), so the figure keeps its points.
HOSTILE = {
    "none": ("None", "returned builtins.NoneType"),
    "lying_object": ("_Liar()", "_Liar"),
    "dict_subclass": ("_LyingDict(a=attr)", "_LyingDict"),
    "empty_dict": ("{}", "empty dict"),
    "lying_values": ("{str(i): _Liar() for i in range(5)}", "_Liar, not a torch.Tensor"),
    "tensor_subclass": ("{str(i): attr.as_subclass(_Sub) for i in range(5)}", "_Sub"),
    "nan_maps": ("{str(i): attr * float('nan') for i in range(5)}", "NaN"),
    "sparse_maps": ("{str(i): (attr * i).to_sparse() for i in range(5)}", "sparse_coo"),
    "non_str_keys": ("{i: attr * i for i in range(1, 6)}", "key <builtins.int #0> is not a str"),
}


# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"scaled_copies", "channel_summed_maps", "figure_missing_panels"})


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["comparison"])
    checks = graded.results["comparison"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_fast_base_of_the_variants_gets_full_points(grade_variant) -> None:
    graded = grade_variant({"comparison.py": FAST}, tasks=["comparison"])
    assert graded.score("comparison") == graded.max_score("comparison"), \
        graded.results["comparison"].checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["comparison"])
    assert graded.score("comparison") == 0
    for check in graded.results["comparison"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing, fractions = WRONG[variant]
    graded = grade_variant({"comparison.py": source}, tasks=["comparison"])
    assert set(graded.failed("comparison")) == set(failing), graded.results["comparison"].checks
    for name, words in failing.items():
        check = graded.check("comparison", name)
        assert words in check.message, check
        assert check.score == pytest.approx(FULL[name] * fractions[name], abs=1e-3)
    for name in set(FULL) - set(failing):
        assert graded.check("comparison", name).score == FULL[name]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"comparison.py": PRELUDE.format(value=value)}, tasks=["comparison"])
    assert graded.check("comparison", "algorithms").score == 0
    assert graded.check("comparison", "outputs").score == 0
    assert words in graded.check("comparison", "outputs").message
    for check in graded.results["comparison"].checks:
        assert "could not be checked" not in check.message, check
    # plot_comparison is graded on maps it can draw: the student's (rebuilt) or the grader's.
    assert graded.check("comparison", "figure").passed, graded.check("comparison", "figure")


def test_plot_gets_stand_in_maps_when_compare_fails(grade_variant) -> None:
    graded = grade_variant(
        {"comparison.py": "def compare_attributions(*a, **k):\n    1 / 0\n"},
        tasks=["comparison", "attribution_viz"],
    )
    record = graded.records["comparison"]
    assert record.data["plot_given"] == "stand_in"
    assert record.data["plot_names"] == list(task.STAND_IN_NAMES)
    assert graded.check("comparison", "figure").passed
    assert "ZeroDivisionError" in graded.check("comparison", "algorithms").message
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")


@pytest.mark.slow
def test_more_than_the_cap_is_recorded_up_to_the_cap(grade_variant) -> None:
    source = _then("    return {f'Saliency {i}': result['Saliency'] * (i + 1) for i in range(40)}\n")
    graded = grade_variant({"comparison.py": source}, tasks=["comparison"])
    record = graded.records["comparison"]
    assert record.data["n_entries"] == 40
    assert len(record.data["entries"]) == task.MAX_ALGORITHMS
    assert graded.check("comparison", "algorithms").score == FULL["algorithms"] / 5


def test_same_map_ignores_scale_and_sign() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(1, 3, 8, 8, generator=generator)
    assert task._same_map(a, -3 * a)
    assert not task._same_map(a, a + 0.1 * torch.randn(1, 3, 8, 8, generator=generator))
