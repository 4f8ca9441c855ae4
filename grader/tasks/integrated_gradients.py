"""Task 6: Integrated Gradients.

Probe
    The probe photo at ``image_size`` (ImageNet-normalised) and its target, the
    trusted model's top-1 class, computed before any student call. Two calls,
    each on a fresh copy of the trusted model and on private copies of the input,
    with ``n_steps=ig_steps`` and no ``method`` (the default must be Captum's
    ``gausslegendre``): ``baselines=zeros`` and ``baselines=None``. Recorded: the
    input and the zero baseline the probe made, the target, both
    ``(attributions, delta)`` pairs. The check computes F itself, from the input,
    baseline and target of the reference record (made by the same trusted probe).

Checks
    ``output_format``: attributions an exact float tensor shaped like the input,
    delta ``(N,)``. ``completeness``: ``|sum(attr) - (F(x) - F(0))|`` at most
    :data:`COMPLETENESS_RTOL` of ``|F(x) - F(0)|``, F being the target logit of
    the grader's own model on the recorded input and baseline. ``agreement``:
    attributions equal the reference's (same input, baseline, steps, method) to
    ``rtol`` :data:`RTOL`, ``atol`` :data:`ATOL_FRACTION` x max |reference|.
    ``default_baseline``: the ``baselines=None`` result equals the student's own
    zero-baseline result at the same tolerance (so one mistake elsewhere is not
    charged twice here).

Why 64x64 and 16 steps are enough (measured on the stand-in weights; the
mistakes are in tests/harness/test_integrated_gradients_checks.py):
    - the reference's completeness error is ~1% of F(x) - F(0), any wrong baseline
      (ones, random) or target (target + 1) or plain gradients (Saliency) is off by
      far more than the 10% allowed;
    - recomputing the same algorithm (another ``internal_batch_size``) changes
      values by ~1e-7 of their maximum; 16 vs 50 steps or ``riemann_trapezoid``
      vs ``gausslegendre`` change them by >1e-2 of their maximum, so the
      agreement tolerance (1e-3) separates them;
    - a ones or random default baseline differs from the zero-baseline result
      everywhere.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    close,
    partial,
    passed,
    require_call,
    require_tensor,
)
from grader.inputs import probe_inputs, top1
from grader.probing import ProbeContext, call, new_record, put_tensor
from grader.records import Record, type_name

POINTER = "Task 6: integrated_gradients in integrated_gradients.py"
# Measured relative completeness errors at 16 Gauss-Legendre steps are ~1%; wrong
# baselines/targets are off by tens of percent or more.
COMPLETENESS_RTOL = 0.1
# Agreement: the same algorithm recomputed differs by ~1e-7 of the map's maximum;
# 16 vs 50 steps or another integration method by >1e-2.
RTOL = 1e-3
ATOL_FRACTION = 1e-3

CALLS: dict[str, str] = {"zeros": "baselines=zeros", "default": "baselines=None"}


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("integrated_gradients")
    record = new_record("integrated_gradients")
    inputs, _ = probe_inputs(ctx.settings.image_size, ctx.settings)
    baselines = torch.zeros_like(inputs)
    # One fresh model per call; the target comes from the first, before any student call.
    models = [ctx.fresh_model() for _ in CALLS]
    target = top1(models[0], inputs.to(ctx.device))
    record.data["target"] = target
    record.data["n_steps"] = ctx.settings.ig_steps
    record.tensors["inputs"] = inputs.clone()
    record.tensors["baselines"] = baselines.clone()
    for key in CALLS:
        model = models.pop(0)
        given = baselines.to(ctx.device, copy=True) if key == "zeros" else None
        result = call(record, key, mod.integrated_gradients, model,
                      inputs.to(ctx.device, copy=True), target, baselines=given,
                      n_steps=ctx.settings.ig_steps)
        _record_pair(record, key, result)
        del model, result
    return record


def _record_pair(record: Record, key: str, result: Any) -> None:
    """Store ``(attributions, delta)``, or a bare tensor as the attributions (only
    output_format asks for the delta); anything else is described in data["returned"]."""
    returned = record.data.setdefault("returned", {})
    if type(result) is tuple and len(result) == 2:
        returned[key] = "pair"
        put_tensor(record, f"{key}_attr", result[0])
        put_tensor(record, f"{key}_delta", result[1])
    elif type(result) is torch.Tensor:
        returned[key] = "tensor"
        put_tensor(record, f"{key}_attr", result)
    else:
        returned[key] = type_name(result) + (
            f" of length {len(result)}" if type(result) is tuple else "")


# --------------------------------------------------------------------------- checks


def _attributions(record: Record, key: str, reference: Record) -> torch.Tensor:
    """The attributions of call ``key``, validated (exact float tensor, input's shape)."""
    require_call(record, key, POINTER)
    shape = tuple(reference.tensors["inputs"].shape)
    what = f"integrated_gradients(..., {CALLS[key]})"
    returned = record.data.get("returned", {}).get(key)
    if returned not in ("pair", "tensor"):
        raise CheckFailed(f"{what} returned {returned}; return (attributions, delta) as "
                          "ig.attribute(..., return_convergence_delta=True) does")
    attr = require_tensor(record, f"{key}_attr", f"{what}: attributions", shape=shape)
    if not attr.is_floating_point():
        raise CheckFailed(f"{what}: attributions have dtype {attr.dtype}; return floats")
    return attr.double()


def check_output_format(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    _attributions(student, "zeros", reference)
    n = reference.tensors["inputs"].shape[0]
    if student.data["returned"]["zeros"] == "tensor":
        return partial(0.5, "attributions are fine, but only they came back; return "
                            "(attributions, delta) from ig.attribute(..., "
                            "return_convergence_delta=True)")
    try:
        delta = require_tensor(student, "zeros_delta", "the convergence delta", shape=(n,))
    except CheckFailed as exc:
        return partial(0.5, f"attributions are fine, but {exc}; return the delta of "
                            "ig.attribute(..., return_convergence_delta=True), one per input")
    if not delta.is_floating_point():
        return partial(0.5, f"the convergence delta has dtype {delta.dtype}; return floats")
    return passed("attributions shaped like the input and a delta per input")


def _target_logit(ctx: CheckContext, images: torch.Tensor, target: int) -> torch.Tensor:
    with torch.inference_mode():
        return ctx.trusted_model()(images.float())[:, target].double()


def check_completeness(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    attr = _attributions(student, "zeros", reference)
    # The input, baseline and target of the trusted reference record: the same the
    # probe gave the student, and nothing the student's process could have altered.
    target = int(reference.data["target"])
    gap = (_target_logit(ctx, reference.tensors["inputs"], target)
           - _target_logit(ctx, reference.tensors["baselines"], target))
    total = attr.flatten(1).sum(dim=1)
    error = (total - gap).abs()
    allowed = COMPLETENESS_RTOL * gap.abs()
    if bool((error <= allowed).all()):
        return passed(f"sum of attributions {total[0]:.4g} matches F(x) - F(baseline) "
                      f"{gap[0]:.4g} (error {float(error[0] / gap.abs()[0]):.1%})")
    raise CheckFailed(
        f"sum of attributions is {total[0]:.4g} but F(x) - F(baseline) is {gap[0]:.4g} for "
        f"the target logit (error {float(error[0] / gap.abs()[0]):.0%}, allowed "
        f"{COMPLETENESS_RTOL:.0%}); attribute the target class you are given, against the "
        "baselines you are given (zeros), with IntegratedGradients(model) on the raw logits"
    )


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    attr = _attributions(student, "zeros", reference)
    expected = _attributions(reference, "zeros", reference)
    outcome = close(attr, expected, rtol=RTOL, atol=ATOL_FRACTION * float(expected.abs().max()),
                    what="attributions (baselines=zeros)")
    if outcome.passed:
        return outcome
    raise CheckFailed(
        f"{outcome.message}; use IntegratedGradients(model).attribute(inputs, "
        f"baselines=baselines, target=target, n_steps=n_steps, method=method) with the "
        f"arguments you are given (n_steps={student.data.get('n_steps')}, method "
        "'gausslegendre' by default)"
    )


def check_default_baseline(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    default = _attributions(student, "default", reference)
    try:
        zeros = _attributions(student, "zeros", reference)
    except CheckFailed:
        zeros = _attributions(reference, "zeros", reference)
    outcome = close(default, zeros, rtol=RTOL, atol=ATOL_FRACTION * float(zeros.abs().max()),
                    what="attributions with baselines=None")
    if outcome.passed:
        return passed("baselines=None gives the zero-baseline attributions")
    raise CheckFailed(
        f"{outcome.message.replace('the reference', 'your baselines=zeros result')}; "
        "baselines=None must mean an all-zero baseline (pass None on to Captum, or "
        "torch.zeros_like(inputs))"
    )


CHECKS = {
    "output_format": check_output_format,
    "completeness": check_completeness,
    "agreement": check_agreement,
    "default_baseline": check_default_baseline,
}
