"""Task 8 checks (grader/tasks/noise_tunnel.py): wrong NoiseTunnels lose the right points."""

from __future__ import annotations

import pytest
import torch

from tests.harness.hostile import HOSTILE_CLASSES, params

FULL = {"agreement": 5.0, "nt_samples": 4.0, "zero_noise": 3.0}

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


# Each wrong implementation: (source appended to noise_tunnel.py,
# {failing check: words in its message}).
WRONG = {
    "nt_samples_fixed": (
        _student_with("nt_samples=nt_samples,", "nt_samples=3,"),
        {"nt_samples": "instead of a fixed number", "agreement": "differs"},
    ),
    "other_seed": (
        _student_with("torch.manual_seed(seed)", "torch.manual_seed(seed + 1)"),
        {"agreement": "torch.manual_seed(seed)"},
    ),
    "extra_random_draw": (
        _student_with("torch.manual_seed(seed)\n",
                      "torch.manual_seed(seed)\n    torch.randn(1)  # e.g. a random baseline\n"),
        {"agreement": "drawing no other random numbers"},
    ),
    "saliency_inside": (
        _student_with("IntegratedGradients(model))", "Saliency(model))").replace(
            "baselines=baselines, target=target, n_steps=n_steps)", "target=target)"),
        {"agreement": "differs", "zero_noise": "wrap IntegratedGradients(model)"},
    ),
    "stdevs_ignored": (
        _student_with("stdevs=stdevs,", "stdevs=0.2,"),
        {"agreement": "differs", "zero_noise": "pass stdevs on"},
    ),
    "nt_type_ignored": (
        _student_with("nt_type=nt_type,", "nt_type='smoothgrad_sq',"),
        {"agreement": "differs", "zero_noise": "differs"},
    ),
}

PRELUDE = HOSTILE_CLASSES + '''

def noise_tunnel(model, inputs, target, **kwargs):
    attr = torch.zeros_like(inputs)
    return {value}
'''
# (expression, words in every failing message); nt_samples fails too: the model never ran.
HOSTILE = {
    "none": ("None", "must be a torch.Tensor, got builtins.NoneType"),
    "lying_eq": ("_Liar()", "_Liar"),
    "tensor_subclass": ("attr.as_subclass(_Sub)", "_Sub"),
    "nan": ("torch.full_like(inputs, float('nan'))", "NaN"),
    "wrong_shape": ("attr[0]", "shape (3, 64, 64)"),
}


# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"extra_random_draw", "stdevs_ignored", "nt_type_ignored"})


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["noise_tunnel"])
    checks = graded.results["noise_tunnel"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_reference_zero_noise_is_plain_integrated_gradients(
    reference_records, check_context
) -> None:
    """zero_noise compares with the reference's stdevs=0 map: it must be Captum's plain IG."""
    from captum.attr import IntegratedGradients

    from grader.settings import DEFAULT_SETTINGS

    record = reference_records["noise_tunnel"]
    model = check_context.trusted_model()
    inputs = record.tensors["inputs"]
    expected = IntegratedGradients(model).attribute(
        inputs, baselines=torch.zeros_like(inputs), target=record.data["target"],
        n_steps=DEFAULT_SETTINGS.ig_steps)
    torch.testing.assert_close(record.tensors["zero_noise"], expected, rtol=1e-4,
                               atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("seeding", [
    pytest.param("seeded", id="seeded"),
    # The probe seeds before the call, so leaving the seed out changes nothing.
    pytest.param("unseeded", id="unseeded", marks=[pytest.mark.slow]),
])
def test_student_solution_gets_full_points(grade_variant, seeding: str) -> None:
    """The tutorial's code passes."""
    source = STUDENT if seeding == "seeded" else _student_with(
        "        torch.manual_seed(seed)\n", "        pass\n")
    graded = grade_variant({"noise_tunnel.py": source}, tasks=["noise_tunnel"])
    assert graded.score("noise_tunnel") == graded.max_score("noise_tunnel"), \
        graded.results["noise_tunnel"].checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["noise_tunnel"])
    assert graded.score("noise_tunnel") == 0
    for check in graded.results["noise_tunnel"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"noise_tunnel.py": source}, tasks=["noise_tunnel"])
    assert set(graded.failed("noise_tunnel")) == set(failing), \
        graded.results["noise_tunnel"].checks
    for name, words in failing.items():
        check = graded.check("noise_tunnel", name)
        assert words in check.message, check
    for name in set(FULL) - set(failing):
        assert graded.check("noise_tunnel", name).score == FULL[name]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"noise_tunnel.py": PRELUDE.format(value=value)},
                           tasks=["noise_tunnel"])
    assert graded.score("noise_tunnel") == 0
    for name in ("agreement", "zero_noise"):
        assert words in graded.check("noise_tunnel", name).message
    assert "never ran" in graded.check("noise_tunnel", "nt_samples").message
    for check in graded.results["noise_tunnel"].checks:
        assert "could not be checked" not in check.message, check


def test_other_tasks_keep_their_points(grade_variant) -> None:
    """A broken Task 8 costs nothing in Task 7."""
    graded = grade_variant({"noise_tunnel.py": "def noise_tunnel(*a, **k):\n    1 / 0\n"},
                           tasks=["noise_tunnel", "attribution_viz"])
    assert graded.score("noise_tunnel") == 0
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")


def test_predictions_besides_the_tunnel_keep_the_nt_samples_points(grade_variant) -> None:
    # Five forward passes of its own per call (checking the target, say): the rows of
    # the doubled call no longer double, but they grow by exactly the tunnel's.
    source = _student_with(
        "    nt = NoiseTunnel(",
        "    with torch.no_grad():\n"
        "        for _ in range(5):\n"
        "            model(inputs)\n"
        "    nt = NoiseTunnel(",
    )
    graded = grade_variant({"noise_tunnel.py": source}, tasks=["noise_tunnel"])
    assert {c.name: c.score for c in graded.results["noise_tunnel"].checks} == FULL
