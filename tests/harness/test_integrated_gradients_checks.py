"""Task 6 checks (grader/tasks/integrated_gradients.py): wrong IG loses the right points."""

from __future__ import annotations

import pytest

from tests.harness.hostile import HOSTILE_CLASSES, params

# Variants call Captum as students do; its note on inputs without requires_grad is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")

FULL = {"output_format": 3.0, "completeness": 5.0, "agreement": 6.0, "default_baseline": 2.0}


def _wrap(body: str) -> str:
    """Redefine integrated_gradients around the reference's (kept as ``_ig``)."""
    return (
        "_ig = integrated_gradients\n\n\n"
        "def integrated_gradients(model, inputs, target, *, baselines=None, n_steps=50,\n"
        "                         method='gausslegendre', internal_batch_size=None):\n"
        + body
    )


# Each wrong implementation: (source appended to integrated_gradients.py,
# {failing check: words in its message}).
WRONG = {
    "ones_baseline": (
        _wrap("    return _ig(model, inputs, target, baselines=torch.ones_like(inputs),\n"
              "               n_steps=n_steps)\n"),
        {"completeness": "F(x) - F(baseline)", "agreement": "differs from the reference"},
    ),
    "random_baseline": (
        _wrap("    return _ig(model, inputs, target, baselines=torch.rand_like(inputs),\n"
              "               n_steps=n_steps)\n"),
        # The default call draws other noise than the zeros call, so it differs too.
        {"completeness": "baselines you are given", "agreement": "differs",
         "default_baseline": "all-zero baseline"},
    ),
    "wrong_target": (
        _wrap("    return _ig(model, inputs, target + 1, baselines=baselines, n_steps=n_steps)\n"),
        {"completeness": "target class", "agreement": "differs"},
    ),
    "plain_gradients": (
        "from captum.attr import Saliency\n\n"
        + _wrap("    attr = Saliency(model).attribute(inputs, target=target, abs=False)\n"
                "    return attr, torch.zeros(inputs.shape[0])\n"),
        {"completeness": "IntegratedGradients(model)", "agreement": "differs"},
    ),
    "n_steps_ignored": (
        _wrap("    return _ig(model, inputs, target, baselines=baselines)\n"),
        {"agreement": "n_steps=16"},
    ),
    "riemann_trapezoid": (
        _wrap("    return _ig(model, inputs, target, baselines=baselines, n_steps=n_steps,\n"
              "               method='riemann_trapezoid')\n"),
        {"agreement": "'gausslegendre'"},
    ),
    "default_baseline_ones": (
        _wrap("    if baselines is None:\n"
              "        baselines = torch.ones_like(inputs)\n"
              "    return _ig(model, inputs, target, baselines=baselines, n_steps=n_steps)\n"),
        {"default_baseline": "baselines=None must mean an all-zero baseline"},
    ),
    "no_delta": (
        _wrap("    return _ig(model, inputs, target, baselines=baselines, n_steps=n_steps)[0]\n"),
        {"output_format": "(attributions, delta)"},
    ),
}

PRELUDE = HOSTILE_CLASSES + '''

def integrated_gradients(model, inputs, target, **kwargs):
    attr = torch.zeros_like(inputs)
    delta = torch.zeros(inputs.shape[0])
    return {value}
'''
# Hostile return values: (expression, words in the output_format message). None of them
# may crash a probe or a check, and all give 0 points.
HOSTILE = {
    "none": ("None", "returned builtins.NoneType"),
    "lying_eq": ("(_Liar(), _Liar())", "_Liar"),
    "lying_object": ("_Liar()", "_Liar"),
    "tensor_subclass": ("(attr.as_subclass(_Sub), delta)", "_Sub"),
    "nan": ("(torch.full_like(inputs, float('nan')), delta)", "NaN"),
    "wrong_shape": ("(attr[0], delta)", "shape (3, 64, 64)"),
    "tuple_of_three": ("(attr, delta, delta)", "of length 3"),
    "meta_tensor": ("(attr.to('meta'), delta)", "meta, not a dense tensor"),
}


# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"random_baseline", "plain_gradients", "riemann_trapezoid", "default_baseline_ones"})


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["integrated_gradients"])
    checks = graded.results["integrated_gradients"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["integrated_gradients"])
    assert graded.score("integrated_gradients") == 0
    for check in graded.results["integrated_gradients"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"integrated_gradients.py": source},
                           tasks=["integrated_gradients"])
    assert set(graded.failed("integrated_gradients")) == set(failing), \
        graded.results["integrated_gradients"].checks
    for name, words in failing.items():
        check = graded.check("integrated_gradients", name)
        assert words in check.message, check
    for name in set(FULL) - set(failing):
        assert graded.check("integrated_gradients", name).score == FULL[name]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"integrated_gradients.py": PRELUDE.format(value=value)},
                           tasks=["integrated_gradients"])
    assert graded.score("integrated_gradients") == 0
    assert words in graded.check("integrated_gradients", "output_format").message
    for check in graded.results["integrated_gradients"].checks:
        assert "could not be checked" not in check.message, check


def test_other_tasks_keep_their_points(grade_variant) -> None:
    """A broken Task 6 costs nothing in Tasks 7-8 (they never call integrated_gradients)."""
    graded = grade_variant(
        {"integrated_gradients.py": "def integrated_gradients(*a, **k):\n    1 / 0\n"},
        tasks=["integrated_gradients", "attribution_viz", "noise_tunnel"],
    )
    assert graded.score("integrated_gradients") == 0
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")
    assert graded.score("noise_tunnel") == graded.max_score("noise_tunnel")
