"""Task 8: NoiseTunnel around Integrated Gradients.

Probe
    The variant's photo crop at ``image_size`` (ImageNet-normalised). The trusted model
    ranks the classes before any student call; the variant's stream
    (``settings.rng("noise_tunnel")``, :func:`probe_parameters`) picks two targets of rank
    2-10, two step counts, two seeds, two stdevs, a constant baseline and a blur. Four
    calls of ``noise_tunnel``, each on a fresh copy of the trusted model:

    ``"smoothgrad"``: ``nt_type="smoothgrad"``, ``nt_samples=2``, ``stdevs=stdevs``,
    ``seed=seed``; ``"smoothgrad_sq"``: ``nt_samples=1``, ``stdevs=alt_stdevs``,
    ``seed=alt_seed``; ``"vargrad"``: ``nt_samples=3``, ``stdevs=stdevs``,
    ``seed=alt_seed``; all three with ``target``, ``n_steps=steps`` and the constant
    baseline. ``"zero_noise"``: ``"smoothgrad"``, ``nt_samples=1``, ``stdevs=0.0``, the other
    target, ``n_steps=alt_steps``, the blurred input as baseline, ``seed=seed``.

    The probe never seeds the generator for the student: before each call it sets the
    global generator to a decoy seed of the variant (so a student who ignores ``seed``
    draws other noise, deterministically) inside ``torch.random.fork_rng`` (the grader's
    own generator is left as it was). The probe's forward pre-hook on the model's root
    module counts the rows of every forward pass. Recorded: the input, the baselines, the
    arguments, the four results and their rows.

Checks
    ``agreement`` (the main value check): ``"smoothgrad"``, ``"smoothgrad_sq"`` and
    ``"vargrad"`` each equal the reference's (same seed, so the same noise) up to float
    noise (relative L2 error at most ``MAP_RTOL``, as in Task 6:
    :func:`grader.tasks.integrated_gradients.agree`); a third of the points each.
    ``zero_noise``: ``"zero_noise"`` equals the reference's (the same way), which is the
    reference's plain Integrated Gradients (``NoiseTunnel`` with ``stdevs=0`` averages
    identical IG maps; the harness tests hold the reference to that). ``nt_samples`` pays
    only when at least one ``agreement`` call agrees: the rows of the 2- and 3-sample calls
    over the rows of the 1-sample call match the reference's ratios (2, 3), or the rows they
    ran beyond it match the reference's, within 10%: the ratio holds whatever one sample
    costs, the difference whatever else the student runs (a prediction); a hard-coded or
    ignored ``nt_samples`` gives ratio 1 and no extra rows.

Why each value separates right from wrong (measured on the stand-in weights at 64 px, on
the practice variant and the tests' graded one; errors are relative L2 errors of the map,
allowed 2e-2; the mistakes, with each one's whole score, are in
tests/harness/tasks/test_noise_tunnel_checks.py): the same algorithm with the same seed differs
by <1e-6 (up to 6e-3 where a ReLU kink flips one gradient, as in Task 6; the
practice variant's stdevs=0 call is such a case for float64 and one-step batches), and
    - ``seed`` ignored (the decoy's noise), another seed or an extra random draw: >0.45;
    - ``stdevs`` ignored (Captum's or the template's 0.2, or one stdev for every call):
      the two stdevs (0.05-0.15 and 0.25-0.4) never hold 0.2 and differ by >0.1: >0.3, and
      the stdevs=0 call is noisy;
    - ``nt_type`` ignored: smoothgrad, its square and the variance differ in kind (signs,
      scale): >20 for two of the three calls;
    - ``nt_samples`` fixed (2): other noise averages in the 1- and 3-sample calls (>0.35,
      agreement) and ratio 1 (nt_samples);
    - ``n_steps`` ignored (50): >0.2; ``baselines`` ignored (zeros): >0.7;
    - the argmax (or one target for every call) instead of ``target``: >0.9;
    - another base method (Saliency) in the tunnel: >0.8, with and without noise.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.check.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    passed,
    require_call,
    require_tensor,
    share,
)
from grader.probe.inputs import probe_inputs
from grader.probe.probing import ProbeContext, call, new_record, put_tensor
from grader.probe.records import Record
from grader.settings import ProbeSettings
from grader.tasks.integrated_gradients import ForwardRows, agree, blurred

POINTER = "Task 8: noise_tunnel in noise_tunnel.py"
# The rows ratio may drift by this fraction (a few extra plain forward passes).
ROWS_TOLERANCE = 0.1

# The variant's draws: targets of rank 2-10, few IG steps (the tunnel, not IG's precision,
# is under test; far from Captum's 50), two stdevs on either side of 0.2, seeds far from
# the small numbers a student might hard-code, a constant baseline and a blur.
TARGET_RANKS = (2, 10)
STEPS = (3, 4)
ALT_STEPS = (5, 6)
STDEVS = (0.05, 0.15)
ALT_STDEVS = (0.25, 0.4)
CONST = (0.5, 1.0)
BLURS = (7, 9, 11)
SEEDS = (1000, 2**31)
NOISY = ("smoothgrad", "smoothgrad_sq", "vargrad")
# nt_samples of each nt_type's call: the 1-sample call is the base of the rows ratios.
SAMPLES = {"smoothgrad": 2, "smoothgrad_sq": 1, "vargrad": 3}


def probe_parameters(settings: ProbeSettings) -> dict[str, Any]:
    """The variant's arguments of the four calls (all drawn from ``settings.rng``)."""
    rng = settings.rng("noise_tunnel")
    rank, alt_rank = rng.sample(range(TARGET_RANKS[0], TARGET_RANKS[1] + 1), 2)
    seeds = rng.sample(range(*SEEDS), 3)
    return {
        "rank": rank,
        "alt_rank": alt_rank,
        "steps": rng.randint(*STEPS),
        "alt_steps": rng.randint(*ALT_STEPS),
        "stdevs": round(rng.uniform(*STDEVS), 3),
        "alt_stdevs": round(rng.uniform(*ALT_STDEVS), 3),
        "const": round(rng.choice((-1, 1)) * rng.uniform(*CONST), 3),
        "blur": rng.choice(BLURS),
        "seed": seeds[0],
        "alt_seed": seeds[1],
        "decoy_seed": seeds[2],
    }


def call_arguments(p: dict[str, Any], target: int, alt_target: int) -> dict[str, dict[str, Any]]:
    """Keyword arguments of each call (besides model, inputs and baselines)."""
    noisy = {"target": target, "n_steps": p["steps"]}
    return {
        "smoothgrad": {**noisy, "nt_type": "smoothgrad", "nt_samples": SAMPLES["smoothgrad"],
                       "stdevs": p["stdevs"], "seed": p["seed"]},
        "smoothgrad_sq": {**noisy, "nt_type": "smoothgrad_sq",
                          "nt_samples": SAMPLES["smoothgrad_sq"], "stdevs": p["alt_stdevs"],
                          "seed": p["alt_seed"]},
        "vargrad": {**noisy, "nt_type": "vargrad", "nt_samples": SAMPLES["vargrad"],
                    "stdevs": p["stdevs"], "seed": p["alt_seed"]},
        "zero_noise": {"target": alt_target, "n_steps": p["alt_steps"], "nt_type": "smoothgrad",
                       "nt_samples": 1, "stdevs": 0.0, "seed": p["seed"]},
    }


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("noise_tunnel")
    record = new_record("noise_tunnel")
    s = ctx.settings
    p = probe_parameters(s)
    inputs, _ = probe_inputs(s.image_size, s)
    baselines = {"noisy": torch.full_like(inputs, p["const"]),
                 "zero_noise": blurred(inputs, p["blur"])}
    # One fresh model per call; the targets come from the first, before any student call.
    models = [ctx.fresh_model() for _ in range(4)]
    with torch.inference_mode():
        ranking = models[0](inputs.to(ctx.device))[0].argsort(descending=True)
    calls = call_arguments(p, int(ranking[p["rank"] - 1]), int(ranking[p["alt_rank"] - 1]))
    record.data.update(parameters=p, arguments=calls, top1=int(ranking[0]))
    record.tensors["inputs"] = inputs.clone()
    for key, tensor in baselines.items():
        record.tensors[f"{key}_baselines"] = tensor.clone()
    rows: dict[str, int] = {}
    cuda = [torch.device(ctx.device).index or 0] if torch.device(ctx.device).type == "cuda" else []
    for key, arguments in calls.items():
        model = models.pop(0)
        given = baselines["zero_noise" if key == "zero_noise" else "noisy"]
        arguments = dict(arguments)
        counter = ForwardRows(model)
        # Not the student's seed: a student who ignores `seed` draws the decoy's noise.
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(p["decoy_seed"])
            try:
                result = call(record, key, mod.noise_tunnel, model,
                              inputs.to(ctx.device, copy=True), arguments.pop("target"),
                              baselines=given.to(ctx.device, copy=True), **arguments)
            finally:
                counter.remove()
        rows[key] = counter.rows
        put_tensor(record, key, result)
        del model, result
    record.data["rows"] = rows
    return record


# --------------------------------------------------------------------------- checks


def _describe(reference: Record, key: str) -> str:
    args = reference.data["arguments"][key]
    baseline = ("<the input, blurred>" if key == "zero_noise" else
                f"torch.full_like(inputs, {reference.data['parameters']['const']})")
    return "noise_tunnel(model, inputs, {}, baselines={}{})".format(
        args["target"], baseline,
        "".join(f", {k}={v!r}" for k, v in args.items() if k != "target"))


def _result(record: Record, key: str, reference: Record) -> torch.Tensor:
    what = _describe(reference, key)
    require_call(record, key, POINTER)
    result = require_tensor(record, key, what, shape=tuple(reference.tensors["inputs"].shape))
    if not result.is_floating_point():
        raise CheckFailed(f"{what} has dtype {result.dtype}; return float attributions")
    return result.double()


def _compare(student: Record, reference: Record, key: str) -> Outcome:
    try:
        got = _result(student, key, reference)
    except CheckFailed as exc:
        return Outcome(0.0, str(exc))
    expected = _result(reference, key, reference)
    return agree(got, expected, what=_describe(reference, key))


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcomes = {key: _compare(student, reference, key) for key in NOISY}
    return share(outcomes, (
        "seed with torch.manual_seed(seed) right before "
        "NoiseTunnel(IntegratedGradients(model)).attribute(inputs, nt_type=nt_type, "
        "nt_samples=nt_samples, stdevs=stdevs, baselines=baselines, target=target, "
        "n_steps=n_steps), drawing no other random numbers in between, with exactly the "
        "arguments you are given"))


def check_nt_samples(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    for key in NOISY:
        require_call(student, key, POINTER)
    if not any(_compare(student, reference, key).passed for key in NOISY):
        raise CheckFailed("not scored until your attributions agree with the reference's "
                          "(see agreement)")
    rows = student.data.get("rows", {})
    ref_rows = reference.data["rows"]
    base = "smoothgrad_sq"  # the 1-sample call
    low = int(rows.get(base, 0))
    if low <= 0:
        raise CheckFailed("the model you were given never ran; attribute with that model")
    # More samples multiply the tunnel's rows (the ratio holds whatever one sample costs,
    # e.g. another base method), or add as many rows as the reference's (the difference
    # holds whatever the student runs besides the tunnel, e.g. a prediction). An ignored
    # or fixed nt_samples gives neither.
    wrong = []
    for key in ("smoothgrad", "vargrad"):
        high = int(rows.get(key, 0))
        ratio, expected_ratio = high / low, ref_rows[key] / ref_rows[base]
        extra, expected_extra = high - low, ref_rows[key] - ref_rows[base]
        if not (abs(ratio - expected_ratio) <= ROWS_TOLERANCE * expected_ratio or (
                expected_extra > 0
                and abs(extra - expected_extra) <= ROWS_TOLERANCE * expected_extra)):
            wrong.append(key)
    samples = {key: reference.data["arguments"][key]["nt_samples"] for key in NOISY}
    ran = ", ".join(f"nt_samples={samples[k]}: {int(rows.get(k, 0))}" for k in NOISY)
    if not wrong:
        return passed(f"images through the model with {ran}")
    raise CheckFailed(
        f"images through the model with {ran} (the reference: "
        + ", ".join(f"{ref_rows[k]}" for k in NOISY)
        + "); pass nt_samples on to NoiseTunnel.attribute instead of a fixed number"
    )


def check_zero_noise(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcome = _compare(student, reference, "zero_noise")
    if outcome.passed:
        return outcome
    raise CheckFailed(
        f"{outcome.message}; with stdevs=0 smoothgrad must give plain Integrated Gradients: "
        "pass stdevs on to NoiseTunnel.attribute and wrap IntegratedGradients(model) "
        "(with the target, baselines and n_steps you are given)"
    )


CHECKS = {
    "agreement": check_agreement,
    "nt_samples": check_nt_samples,
    "zero_noise": check_zero_noise,
}
