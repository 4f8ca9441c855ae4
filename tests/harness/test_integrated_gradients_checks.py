"""Task 6 checks (grader/tasks/integrated_gradients.py): wrong IG loses the right points,
on the practice variant and on a graded one."""

from __future__ import annotations

import pytest
import torch

from grader.settings import DEFAULT_SETTINGS
from grader.tasks.integrated_gradients import MAP_RTOL, agree, probe_parameters
from tests.harness.hostile import HOSTILE_CLASSES, params

# Variants call Captum as students do; its note on inputs without requires_grad is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")

TASK = "integrated_gradients"
FULL = {"output_format": 3.0, "completeness": 5.0, "agreement": 6.0, "default_baseline": 2.0}
SECONDARY = {"output_format", "default_baseline"}


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


def _student(body: str, prelude: str = "") -> str:
    """A whole integrated_gradients written from the Captum tutorial, ``body`` its last lines."""
    return (
        "from captum.attr import IntegratedGradients, Saliency\n" + prelude + "\n\n"
        "def integrated_gradients(model, inputs, target, *, baselines=None, n_steps=50,\n"
        "                         method='gausslegendre', internal_batch_size=None):\n"
        "    model.eval()\n"
        "    ig = IntegratedGradients(model)\n"
        + body
    )


TUTORIAL = _student(
    "    attributions, delta = ig.attribute(inputs, baselines, target=target, n_steps=n_steps,\n"
    "                                       method=method,\n"
    "                                       internal_batch_size=internal_batch_size,\n"
    "                                       return_convergence_delta=True)\n"
    "    return attributions, delta\n")


def _tutorial_with(old: str, new: str) -> str:
    assert old in TUTORIAL, old
    return TUTORIAL.replace(old, new)


# Honest rewrites: numerically the same algorithm, full marks.
HONEST = {
    "tutorial": TUTORIAL,
    # One integration point per forward pass: never more rows than internal_batch_size.
    "one_step_per_pass": _tutorial_with("internal_batch_size=internal_batch_size",
                                        "internal_batch_size=inputs.shape[0]"),
    "float64": _student(
        "    model = model.double()\n"
        "    ig = IntegratedGradients(model)\n"
        "    b = None if baselines is None else baselines.double()\n"
        "    attr, delta = ig.attribute(inputs.double(), b, target=target, n_steps=n_steps,\n"
        "                               method=method, internal_batch_size=internal_batch_size,\n"
        "                               return_convergence_delta=True)\n"
        "    return attr.float(), delta.float()\n"),
    "explicit_zeros": _tutorial_with(
        "    attributions, delta",
        "    if baselines is None:\n"
        "        baselines = torch.zeros_like(inputs)\n"
        "    attributions, delta"),
}

# Each wrong implementation: (source appended to integrated_gradients.py,
# {check that loses points: words in its message}). Checks not named keep full points.
GATED = {"output_format": "not scored until", "default_baseline": "not scored until"}
WRONG = {
    "argmax_target": (
        _tutorial_with("target=target,", "target=int(model(inputs).argmax()),"),
        {"agreement": "target is not always the top-1", "completeness": "target class", **GATED},
    ),
    "target_plus_one": (
        _tutorial_with("target=target,", "target=target + 1,"),
        {"agreement": "differs from the reference", "completeness": "F(x) - F(baseline)",
         **GATED},
    ),
    "baselines_ignored": (
        _tutorial_with("ig.attribute(inputs, baselines,", "ig.attribute(inputs, None,"),
        {"agreement": "differs", "completeness": "baselines you are given", **GATED},
    ),
    "n_steps_ignored": (
        _tutorial_with("n_steps=n_steps,", "n_steps=50,"),
        {"agreement": "differs", **GATED},
    ),
    "method_ignored": (
        _tutorial_with("method=method,", "method='gausslegendre',"),
        {"agreement": "method is 'gausslegendre' unless given"},
    ),
    "saliency": (
        _student("    attr = Saliency(model).attribute(inputs, target=target, abs=False)\n"
                 "    return attr, torch.zeros(inputs.shape[0])\n"),
        {"agreement": "differs", "completeness": "IntegratedGradients(model)", **GATED},
    ),
    # What a student reports about itself: the right sum, spread evenly over the pixels.
    "constant_map_right_sum": (
        _student("    b = torch.zeros_like(inputs) if baselines is None else baselines\n"
                 "    with torch.no_grad():\n"
                 "        gap = model(inputs)[:, target] - model(b)[:, target]\n"
                 "    attr = gap.reshape(-1, 1, 1, 1) * torch.ones_like(inputs) / inputs[0].numel()\n"
                 "    return attr, torch.zeros(inputs.shape[0])\n"),
        {"agreement": "differs", "completeness": "not an Integrated Gradients map", **GATED},
    ),
    "default_baseline_ones": (
        _tutorial_with("    attributions, delta",
                       "    if baselines is None:\n"
                       "        baselines = torch.ones_like(inputs)\n"
                       "    attributions, delta"),
        {"default_baseline": "baselines=None must mean an all-zero baseline"},
    ),
    "internal_batch_size_ignored": (
        _tutorial_with("internal_batch_size=internal_batch_size,", ""),
        {"output_format": "pass internal_batch_size on"},
    ),
    "no_delta": (
        _tutorial_with("return attributions, delta", "return attributions"),
        {"output_format": "(attributions, delta)"},
    ),
    "made_up_delta": (
        _tutorial_with("return attributions, delta", "return attributions, delta * 0"),
        {"output_format": "return the delta Captum computes"},
    ),
}

# The catalog: each wrong implementation's whole Task 6 score (of 16), on every variant.
# A value mistake keeps only what its maps still earn honestly (IG at 50 steps or with
# Gauss-Legendre is still complete: 5); a secondary mistake costs its own check only.
SCORES = {
    "argmax_target": 0.0,
    "target_plus_one": 0.0,
    "baselines_ignored": 0.0,
    "n_steps_ignored": 5.0,           # completeness
    "method_ignored": 13.0,           # half of agreement (the "main" call)
    "saliency": 0.0,
    "constant_map_right_sum": 0.0,
    "default_baseline_ones": 14.0,    # all but default_baseline
    "internal_batch_size_ignored": 15.0,  # a third of output_format
    "no_delta": 14.0,                 # two thirds of output_format
    "made_up_delta": 14.0,            # two thirds of output_format
}

PRELUDE = HOSTILE_CLASSES + '''

def integrated_gradients(model, inputs, target, **kwargs):
    attr = torch.zeros_like(inputs)
    delta = torch.zeros(inputs.shape[0])
    return {value}
'''
# Hostile return values: (expression, words in the agreement message). None of them
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
SLOW = frozenset({"target_plus_one", "saliency", "made_up_delta", "no_delta"})
SLOW_HONEST = frozenset({"float64", "explicit_zeros"})


def test_reference_gets_full_points(grade_impl, settings) -> None:
    graded = grade_impl("reference", tasks=[TASK], settings=settings)
    assert {c.name: c.score for c in graded.results[TASK].checks} == FULL, \
        graded.results[TASK].checks


@pytest.mark.parametrize("variant", params(HONEST, SLOW_HONEST))
def test_honest_rewrite_gets_full_points(grade_variant, settings, variant: str) -> None:
    graded = grade_variant({"integrated_gradients.py": HONEST[variant]}, tasks=[TASK],
                           settings=settings)
    assert {c.name: c.score for c in graded.results[TASK].checks} == FULL, \
        graded.results[TASK].checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=[TASK])
    assert graded.score(TASK) == 0
    for check in graded.results[TASK].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, settings, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"integrated_gradients.py": source}, tasks=[TASK], settings=settings)
    assert set(graded.failed(TASK)) == set(failing), graded.results[TASK].checks
    for name, words in failing.items():
        check = graded.check(TASK, name)
        assert words in check.message, check
    for name in set(FULL) - set(failing):
        assert graded.check(TASK, name).score == FULL[name]
    assert graded.score(TASK) == pytest.approx(SCORES[variant], abs=0.01), \
        graded.results[TASK].checks


def test_every_wrong_implementation_has_its_score() -> None:
    assert set(SCORES) == set(WRONG)


@pytest.mark.parametrize("variant", ["argmax_target", "saliency", "constant_map_right_sum"])
def test_no_integrated_gradients_no_points(grade_variant, settings, variant: str) -> None:
    """Maps of another target or method, or a sum spread over the pixels, earn nothing."""
    graded = grade_variant({"integrated_gradients.py": WRONG[variant][0]}, tasks=[TASK],
                           settings=settings)
    assert graded.score(TASK) == 0, graded.results[TASK].checks


def test_arguments_differ_from_what_an_ignoring_student_uses(graded_test_settings) -> None:
    """Every variant probes targets below the top-1, two step counts that are not Captum's
    50, a non-zero baseline and a Riemann method, and the graded ones are not the practice's."""
    practice = probe_parameters(DEFAULT_SETTINGS)
    graded = probe_parameters(graded_test_settings)
    for p in (practice, graded):
        assert 2 <= p["rank"] != p["alt_rank"] >= 2
        assert 50 not in (p["steps"], p["alt_steps"]) and p["steps"] != p["alt_steps"]
        assert p["const"] != 0 and p["method"] != "gausslegendre"
        assert p["batch"] < p["alt_steps"]
    assert practice != graded


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"integrated_gradients.py": PRELUDE.format(value=value)},
                           tasks=[TASK])
    assert graded.score(TASK) == 0
    assert words in graded.check(TASK, "agreement").message
    for check in graded.results[TASK].checks:
        assert "could not be checked" not in check.message, check


def test_other_tasks_keep_their_points(grade_variant) -> None:
    """A broken Task 6 costs nothing in Tasks 7-8 (they never call integrated_gradients)."""
    graded = grade_variant(
        {"integrated_gradients.py": "def integrated_gradients(*a, **k):\n    1 / 0\n"},
        tasks=[TASK, "attribution_viz", "noise_tunnel"],
    )
    assert graded.score(TASK) == 0
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")
    assert graded.score("noise_tunnel") == graded.max_score("noise_tunnel")


def test_agreement_forgives_a_relu_kink_not_another_map() -> None:
    """A point of the path at a ReLU's kink moves a few hundred values of an honest rewrite's
    map by up to 2e-2 of its maximum (float64, other batches; measured, see the module); a
    map of another step count or rule differs everywhere, by >5e-2 of its norm."""
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(1, 3, 64, 64, generator=generator)
    kink = reference.clone()
    kink.view(-1)[:300] += 2e-2 * reference.abs().max()
    assert agree(kink, reference, what="kink").passed
    spread = reference + 5e-2 * torch.randn(reference.shape, generator=generator)
    outcome = agree(spread, reference, what="another map")
    assert not outcome.passed and f"allowed {MAP_RTOL:g}" in outcome.message
    assert not agree(torch.full_like(reference, float("nan")), reference, what="nan").passed
