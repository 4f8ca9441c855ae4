"""Task 8 checks (grader/tasks/noise_tunnel.py): wrong NoiseTunnels lose the right points,
on the practice variant and on a graded one."""

from __future__ import annotations

import pytest
import torch

from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS
from grader.tasks.noise_tunnel import NOISY, SAMPLES, call_arguments, probe_parameters
from tests.harness.hostile import HOSTILE_CLASSES, params

TASK = "noise_tunnel"
FULL = {c.name: c.points for c in checks_of(TASK)}  # full marks, check by check


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


# The plain solution a student writes from Captum's tutorial; the variants edit it.
STUDENT = '''
from captum.attr import Saliency


def noise_tunnel(model, inputs, target, *, nt_type="smoothgrad", nt_samples=10, stdevs=0.2,
                 baselines=None, n_steps=50, seed=0):
    if seed is not None:
        torch.manual_seed(seed)
    nt = NoiseTunnel(IntegratedGradients(model))
    return nt.attribute(inputs, nt_type=nt_type, nt_samples=nt_samples, stdevs=stdevs,
                        baselines=baselines, target=target, n_steps=n_steps)
'''


def _student_with(old: str, new: str) -> str:
    assert old in STUDENT, old
    return STUDENT.replace(old, new)


# Honest rewrites: the same noise and the same algorithm, full marks.
HONEST = {
    "tutorial": STUDENT,
    # Samples in passes of one IG step each: the same rows, more passes.
    "small_batches": _student_with("n_steps=n_steps)", "n_steps=n_steps,\n"
                                   "                        internal_batch_size=nt_samples)"),
    "float64": _student_with(
        "    nt = NoiseTunnel(IntegratedGradients(model))\n"
        "    return nt.attribute(inputs,",
        "    nt = NoiseTunnel(IntegratedGradients(model.double()))\n"
        "    baselines = None if baselines is None else baselines.double()\n"
        "    return nt.attribute(inputs.double(),",
    ).replace("n_steps=n_steps)", "n_steps=n_steps).float()"),
}

GATED = {"nt_samples": "not scored until"}
# Each wrong implementation: (source appended to noise_tunnel.py,
# {check that loses points: words in its message}). Checks not named keep full points.
WRONG = {
    "nt_samples_fixed": (
        _student_with("nt_samples=nt_samples,", "nt_samples=2,"),
        # The smoothgrad call (2 samples) still agrees, so the rows are scored.
        {"nt_samples": "instead of a fixed number", "agreement": "differs"},
    ),
    "seed_ignored": (
        _student_with("        torch.manual_seed(seed)\n", "        pass\n"),
        {"agreement": "torch.manual_seed(seed)", **GATED},
    ),
    "seed_hard_coded": (
        _student_with("torch.manual_seed(seed)", "torch.manual_seed(0)"),
        {"agreement": "differs", **GATED},
    ),
    "extra_random_draw": (
        _student_with("torch.manual_seed(seed)\n",
                      "torch.manual_seed(seed)\n    torch.randn(1)  # e.g. a random baseline\n"),
        {"agreement": "drawing no other random numbers", **GATED},
    ),
    "saliency_inside": (
        _student_with("IntegratedGradients(model))", "Saliency(model))").replace(
            "baselines=baselines, target=target, n_steps=n_steps)", "target=target)"),
        {"agreement": "differs", "zero_noise": "wrap IntegratedGradients(model)", **GATED},
    ),
    "stdevs_ignored": (
        _student_with("stdevs=stdevs,", "stdevs=0.2,"),
        {"agreement": "differs", "zero_noise": "pass stdevs on", **GATED},
    ),
    "nt_type_ignored": (
        _student_with("nt_type=nt_type,", "nt_type='smoothgrad',"),
        {"agreement": "differs"},
    ),
    "n_steps_ignored": (
        _student_with("n_steps=n_steps)", "n_steps=50)"),
        {"agreement": "differs", "zero_noise": "n_steps you are given", **GATED},
    ),
    "baselines_ignored": (
        _student_with("baselines=baselines,", ""),
        {"agreement": "differs", "zero_noise": "baselines", **GATED},
    ),
    "argmax_target": (
        _student_with("target=target,", "target=int(model(inputs).argmax()),"),
        {"agreement": "differs", "zero_noise": "target", **GATED},
    ),
    # Plain IG, no tunnel: the stdevs=0 map is right, nothing else.
    "no_tunnel": (
        _student_with("    nt = NoiseTunnel(IntegratedGradients(model))\n"
                      "    return nt.attribute(inputs, nt_type=nt_type, nt_samples=nt_samples, "
                      "stdevs=stdevs,\n",
                      "    return IntegratedGradients(model).attribute(inputs,\n"),
        {"agreement": "differs", **GATED},
    ),
    # No algorithm behind it: noise shaped like the input.
    "random_map": (
        "\n\ndef noise_tunnel(model, inputs, target, **kwargs):\n"
        "    return torch.randn_like(inputs)\n",
        {"agreement": "differs", "zero_noise": "differs", **GATED},
    ),
}

# The catalog: each wrong implementation's whole Task 8 score, on every variant.
# zero_noise (stdevs=0: plain IG) is the seed's and the tunnel's own business only: a
# student who ignores the seed or skips the tunnel still computes it right.
SCORES = {
    # the 2-sample call agrees (a third of agreement) and zero_noise
    "nt_samples_fixed": FULL["agreement"] / 3 + FULL["zero_noise"],
    "seed_ignored": FULL["zero_noise"],
    "seed_hard_coded": FULL["zero_noise"],
    "extra_random_draw": FULL["zero_noise"],
    "saliency_inside": 0.0,
    "stdevs_ignored": 0.0,
    # the smoothgrad call (a third of agreement), nt_samples, zero_noise
    "nt_type_ignored": FULL["agreement"] / 3 + FULL["nt_samples"] + FULL["zero_noise"],
    "n_steps_ignored": 0.0,
    "baselines_ignored": 0.0,
    "argmax_target": 0.0,
    "no_tunnel": FULL["zero_noise"],
    "random_map": 0.0,
}

PRELUDE = HOSTILE_CLASSES + '''

def noise_tunnel(model, inputs, target, **kwargs):
    attr = torch.zeros_like(inputs)
    return {value}
'''
# (expression, words in every failing value message); nt_samples fails too: never scored.
HOSTILE = {
    "none": ("None", "must be a torch.Tensor, got builtins.NoneType"),
    "lying_eq": ("_Liar()", "_Liar"),
    "tensor_subclass": ("attr.as_subclass(_Sub)", "_Sub"),
    "nan": ("torch.full_like(inputs, float('nan'))", "NaN"),
    "wrong_shape": ("attr[0]", "shape (3, 64, 64)"),
    "random_map": ("torch.randn_like(inputs)", "differs"),
}


# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"extra_random_draw", "seed_hard_coded", "stdevs_ignored", "baselines_ignored",
                  "argmax_target", "n_steps_ignored"})
SLOW_HONEST = frozenset({"float64"})


def test_reference_gets_full_points(grade_impl, settings) -> None:
    graded = grade_impl("reference", tasks=[TASK], settings=settings)
    assert {c.name: c.score for c in graded.results[TASK].checks} == FULL, \
        graded.results[TASK].checks


def test_reference_zero_noise_is_plain_integrated_gradients(
    reference_records, check_context
) -> None:
    """zero_noise compares with the reference's stdevs=0 map: it must be Captum's plain IG."""
    from captum.attr import IntegratedGradients

    record = reference_records[TASK]
    args = record.data["arguments"]["zero_noise"]
    model = check_context.trusted_model()
    inputs = record.tensors["inputs"]
    expected = IntegratedGradients(model).attribute(
        inputs, baselines=record.tensors["zero_noise_baselines"], target=args["target"],
        n_steps=args["n_steps"])
    torch.testing.assert_close(record.tensors["zero_noise"], expected, rtol=1e-4,
                               atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("variant", params(HONEST, SLOW_HONEST))
def test_honest_rewrite_gets_full_points(grade_variant, settings, variant: str) -> None:
    """The tutorial's code passes, and so do rewrites that compute the same numbers."""
    graded = grade_variant({"noise_tunnel.py": HONEST[variant]}, tasks=[TASK], settings=settings)
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
    graded = grade_variant({"noise_tunnel.py": source}, tasks=[TASK], settings=settings)
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


def test_arguments_differ_from_what_an_ignoring_student_uses(graded_test_settings) -> None:
    """Every nt_type, two seeds, two non-default stdevs, three sample counts, targets below
    the top-1 and step counts that are not Captum's 50; the graded ones are not the
    practice's."""
    practice = probe_parameters(DEFAULT_SETTINGS)
    graded = probe_parameters(graded_test_settings)
    for p in (practice, graded):
        calls = call_arguments(p, 1, 2)
        assert {calls[k]["nt_type"] for k in NOISY} == set(NOISY)
        assert len({calls[k]["seed"] for k in calls} | {p["decoy_seed"]}) == 3
        assert len({calls[k]["stdevs"] for k in calls} | {0.2}) == 4
        assert len(set(SAMPLES.values())) == 3
        assert 50 not in {calls[k]["n_steps"] for k in calls}
        assert 2 <= p["rank"] != p["alt_rank"] >= 2 and p["const"] != 0
    assert practice != graded


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"noise_tunnel.py": PRELUDE.format(value=value)}, tasks=[TASK])
    assert graded.score(TASK) == 0
    for name in ("agreement", "zero_noise"):
        assert words in graded.check(TASK, name).message
    assert "not scored until" in graded.check(TASK, "nt_samples").message
    for check in graded.results[TASK].checks:
        assert "could not be checked" not in check.message, check


def test_other_tasks_keep_their_points(grade_variant) -> None:
    """A broken Task 8 costs nothing in Task 7."""
    graded = grade_variant({"noise_tunnel.py": "def noise_tunnel(*a, **k):\n    1 / 0\n"},
                           tasks=[TASK, "attribution_viz"])
    assert graded.score(TASK) == 0
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")


def test_predictions_besides_the_tunnel_keep_the_nt_samples_points(grade_variant,
                                                                   settings) -> None:
    # Five forward passes of its own per call (checking the target, say): the rows of
    # the larger calls no longer scale, but they grow by exactly the tunnel's.
    source = _student_with(
        "    nt = NoiseTunnel(",
        "    with torch.no_grad():\n"
        "        for _ in range(5):\n"
        "            model(inputs)\n"
        "    nt = NoiseTunnel(",
    )
    graded = grade_variant({"noise_tunnel.py": source}, tasks=[TASK], settings=settings)
    assert {c.name: c.score for c in graded.results[TASK].checks} == FULL
