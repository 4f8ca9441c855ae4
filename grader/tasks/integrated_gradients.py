"""Task 6: Integrated Gradients.

Probe
    The variant's photo crop at ``image_size`` (ImageNet-normalised). The trusted model
    ranks the classes before any student call; the variant's stream
    (``settings.rng("integrated_gradients")``, :func:`probe_parameters`) picks two targets
    of rank 2-10 (never the top-1), two step counts, a constant baseline, a blur for a
    second baseline, a Riemann method and an ``internal_batch_size``. Three calls, each on
    a fresh copy of the trusted model with private copies of the tensors:

    ``"main"``: ``target`` (rank ``rank``), ``baselines`` = a constant image (``const``),
    ``n_steps=steps``, no ``method`` (the default must be Captum's ``gausslegendre``);
    ``"alt"``: the other target, ``baselines`` = the input blurred (box filter ``blur``),
    ``n_steps=alt_steps``, ``method=method``, ``internal_batch_size=batch``;
    ``"default"``: as ``"main"`` with ``baselines=None``.

    The probe's own forward pre-hook on the model counts the rows of every forward pass.
    Recorded: the input, the two baselines, the targets and arguments of each call, each
    ``(attributions, delta)`` pair and the rows per pass of each call. The checks compute F
    themselves, from the input, baselines and targets of the reference record (made by the
    same trusted probe), never from the student's delta.

Checks
    ``agreement`` (the main value check): ``"main"`` and ``"alt"`` each equal the
    reference's (same inputs and arguments) up to float noise: relative L2 error at most
    :data:`MAP_RTOL` (:func:`agree`); half the points each.
    ``completeness``: per call (half each), ``|sum(attr) - (F(x) - F(b))|`` within
    :data:`COMPLETENESS_RTOL` of ``|F(x) - F(b)|`` plus the reference's own error, F being
    the target logit of the grader's model; and the map must be an IG map, not a sum spread
    over pixels: cosine similarity with the reference's at least :data:`MIN_COSINE`.
    ``output_format`` and ``default_baseline`` pay only when at least one call agrees:
    ``output_format``: ``(attributions, delta)``, the delta equal to
    ``sum(attr) - (F(x) - F(b))`` as the grader computes it (2/3), and no forward pass of
    ``"alt"`` larger than its ``internal_batch_size`` (1/3).
    ``default_baseline``: the ``baselines=None`` result equals the reference's (zeros).

Why each value separates right from wrong (measured on the stand-in weights at 64 px,
the practice variant and 16 graded ones; errors are relative L2 errors of the map; the
mistakes, with each one's whole score, are in tests/harness/test_integrated_gradients_checks.py):
    - recomputing the same algorithm (another ``internal_batch_size``, one step per pass,
      float64) changes a map by <1e-6, except where a point of the path sits at a ReLU's
      kink (3 of the first 10 variants measured, practice included): then up to a few
      hundred values move by up to 2e-2 of the map's maximum, and the map by up to 6e-3:
      inside :data:`MAP_RTOL` (2e-2), where an elementwise tolerance of 1e-3 of the
      maximum failed these honest rewrites;
    - ``n_steps`` ignored (50 steps) vs 5-8 Gauss-Legendre steps: >0.1; one step more or
      less, 50 steps or another rule (``method`` ignored) in the 10-13-step Riemann call:
      >5e-2;
    - a target of rank 2-10 instead of the argmax, or the other call's target: the maps
      differ by more than their own size (relative error >0.5), and the sum misses F's gap
      by far more than 10%;
    - zero baselines instead of the constant (|const| 0.5-1.0) or the blurred input: the
      gap F(x) - F(b) changes by 8-20% (constant) or twice (blurred), the map everywhere
      (relative error >0.85);
    - a constant map with the right sum has cosine similarity <0.03 with IG's map, the
      argmax's map <0.4, Saliency <0.4, zero baselines <0.7 (honest maps at other steps or
      rules: >0.97), so completeness pays none of them (:data:`MIN_COSINE` 0.9);
    - the reference's own completeness error is up to 23% at these step counts (measured),
      hence the allowance of 10% of the gap on top of it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_tensor,
    share,
)
from grader.inputs import probe_inputs
from grader.probing import ProbeContext, call, new_record, put_tensor
from grader.records import Record, type_name
from grader.settings import ProbeSettings

POINTER = "Task 6: integrated_gradients in integrated_gradients.py"
# The completeness error may exceed the reference's own by this fraction of |F(x) - F(b)|.
COMPLETENESS_RTOL = 0.1
# Cosine similarity with the reference's map below which a map is not Integrated
# Gradients of the given target and baseline (measured: a constant map with the right
# sum <0.03, the argmax <0.4, zero baselines <0.7; IG at other steps or rules >0.97).
MIN_COSINE = 0.9
# Agreement: ||attributions - reference|| / ||reference|| (L2 over the whole map) at most
# this. The same algorithm recomputed (float64, other batches) moves a map by <1e-6 of it,
# except where a point of the path sits at a ReLU's kink: one gradient of one step flips
# and up to a few hundred values move by up to 2e-2 of the map's maximum, 6e-3 of its
# norm (measured: 3 of 10 variants; the elementwise tolerance 1e-3 of the maximum used
# before failed those honest rewrites). One step more or less, another rule, 50 steps:
# >5e-2 of the norm.
MAP_RTOL = 2e-2
# The student's delta may differ from sum(attr) - (F(x) - F(b)) by this much (of |gap|):
# float32 sums and forward passes of another batch size differ by ~1e-6 of it.
DELTA_RTOL = 1e-3

# The variant's draws: targets of rank 2-10, step counts far from Captum's 50 and
# from each other, a constant baseline of magnitude 0.5-1 (ImageNet-normalised units),
# a box blur, a Riemann rule, and passes smaller than the alt call's rows.
TARGET_RANKS = (2, 10)
STEPS = (5, 8)
ALT_STEPS = (10, 13)
CONST = (0.5, 1.0)
BLURS = (7, 9, 11)
METHODS = ("riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")
BATCH = (3, 5)

CALLS: dict[str, str] = {
    "main": "a constant baseline, the default method",
    "alt": "the blurred input as baseline, method and internal_batch_size given",
    "default": "baselines=None",
}
VALUE_CALLS = ("main", "alt")


def probe_parameters(settings: ProbeSettings) -> dict[str, Any]:
    """The variant's arguments of the three calls (all drawn from ``settings.rng``)."""
    rng = settings.rng("integrated_gradients")
    rank, alt_rank = rng.sample(range(TARGET_RANKS[0], TARGET_RANKS[1] + 1), 2)
    return {
        "rank": rank,
        "alt_rank": alt_rank,
        "steps": rng.randint(*STEPS),
        "alt_steps": rng.randint(*ALT_STEPS),
        "const": round(rng.choice((-1, 1)) * rng.uniform(*CONST), 3),
        "blur": rng.choice(BLURS),
        "method": rng.choice(METHODS),
        "batch": rng.randint(*BATCH),
    }


def agree(actual: torch.Tensor, expected: torch.Tensor, *, what: str) -> Outcome:
    """Whether a map is the reference's up to float noise: relative L2 error at most
    :data:`MAP_RTOL` (robust to the few values a ReLU kink moves, see there)."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Outcome(0.0, f"{what}: shape {tuple(actual.shape)}, expected "
                            f"{tuple(expected.shape)}")
    a, e = actual.detach().double(), expected.detach().double()
    norm = float(e.norm())
    error = float((a - e).norm()) / norm if norm > 0 else float((a - e).norm())
    largest = float((a - e).abs().max())
    if error <= MAP_RTOL:  # False for NaN
        return passed(f"{what} matches the reference (relative error {error:.1e})")
    return Outcome(0.0, f"{what} differs from the reference: relative error {error:.3g} "
                        f"(allowed {MAP_RTOL:g}; max abs diff {largest:.3g})")


def blurred(inputs: torch.Tensor, size: int) -> torch.Tensor:
    """``inputs`` under a ``size`` x ``size`` box filter (edges replicated): a baseline
    that keeps the image's colours and drops its detail."""
    pad = size // 2
    return F.avg_pool2d(F.pad(inputs, (pad, pad, pad, pad), mode="replicate"), size, stride=1)


class ForwardRows:
    """The probe's own forward pre-hook on the root module: the rows of every pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.passes: list[int] = []
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if type(x) is torch.Tensor and not x.is_nested and x.dim() >= 1:
            self.passes.append(int(x.shape[0]))

    @property
    def rows(self) -> int:
        return sum(self.passes)

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("integrated_gradients")
    record = new_record("integrated_gradients")
    p = probe_parameters(ctx.settings)
    inputs, _ = probe_inputs(ctx.settings.image_size, ctx.settings)
    baselines = {"main": torch.full_like(inputs, p["const"]), "alt": blurred(inputs, p["blur"])}
    # One fresh model per call; the targets come from the first, before any student call.
    models = [ctx.fresh_model() for _ in CALLS]
    with torch.inference_mode():
        ranking = models[0](inputs.to(ctx.device))[0].argsort(descending=True)
    target, alt_target = int(ranking[p["rank"] - 1]), int(ranking[p["alt_rank"] - 1])
    arguments: dict[str, dict[str, Any]] = {
        "main": {"target": target, "n_steps": p["steps"]},
        "alt": {"target": alt_target, "n_steps": p["alt_steps"], "method": p["method"],
                "internal_batch_size": p["batch"]},
        "default": {"target": target, "n_steps": p["steps"]},
    }
    record.data.update(parameters=p, arguments=arguments, top1=int(ranking[0]))
    record.tensors["inputs"] = inputs.clone()
    for key, tensor in baselines.items():
        record.tensors[f"{key}_baselines"] = tensor.clone()
    passes: dict[str, list[int]] = {}
    for key, kwargs in arguments.items():
        model = models.pop(0)
        given = baselines[key].to(ctx.device, copy=True) if key in baselines else None
        counter = ForwardRows(model)
        kwargs = dict(kwargs)
        try:
            result = call(record, key, mod.integrated_gradients, model,
                          inputs.to(ctx.device, copy=True), kwargs.pop("target"),
                          baselines=given, **kwargs)
        finally:
            counter.remove()
        passes[key] = counter.passes[:1000]
        _record_pair(record, key, result)
        del model, result
    record.data["passes"] = passes
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


def _describe(reference: Record, key: str) -> str:
    args = reference.data["arguments"][key]
    baseline = {"main": f"baselines=torch.full_like(inputs, {reference.data['parameters']['const']})",
                "alt": "baselines=<the input, blurred>",
                "default": "baselines=None"}[key]
    return "integrated_gradients(model, inputs, {}, {}{})".format(
        args["target"], baseline,
        "".join(f", {k}={v!r}" for k, v in args.items() if k != "target"))


def _attributions(record: Record, key: str, reference: Record) -> torch.Tensor:
    """The attributions of call ``key``, validated (exact float tensor, input's shape)."""
    require_call(record, key, POINTER)
    shape = tuple(reference.tensors["inputs"].shape)
    what = _describe(reference, key)
    returned = record.data.get("returned", {}).get(key)
    if returned not in ("pair", "tensor"):
        raise CheckFailed(f"{what} returned {returned}; return (attributions, delta) as "
                          "ig.attribute(..., return_convergence_delta=True) does")
    attr = require_tensor(record, f"{key}_attr", f"{what}: attributions", shape=shape)
    if not attr.is_floating_point():
        raise CheckFailed(f"{what}: attributions have dtype {attr.dtype}; return floats")
    return attr.double()


def _agrees(student: Record, reference: Record, key: str) -> Outcome:
    try:
        attr = _attributions(student, key, reference)
    except CheckFailed as exc:
        return Outcome(0.0, str(exc))
    expected = _attributions(reference, key, reference)
    return agree(attr, expected, what=_describe(reference, key))


def _require_agreement(student: Record, reference: Record) -> None:
    """Secondary checks pay only when at least one value call equals the reference's."""
    for key in VALUE_CALLS:
        require_call(student, key, POINTER)
    if not any(_agrees(student, reference, key).passed for key in VALUE_CALLS):
        raise CheckFailed("not scored until your attributions agree with the reference's "
                          "(see agreement)")


def _gap(ctx: CheckContext, reference: Record, key: str) -> torch.Tensor:
    """F(x) - F(b) for call ``key``, by the grader's model on the reference's tensors."""
    target = int(reference.data["arguments"][key]["target"])
    baseline = reference.tensors.get(f"{key}_baselines")
    if baseline is None:
        baseline = torch.zeros_like(reference.tensors["inputs"])
    images = torch.cat([reference.tensors["inputs"], baseline]).float()
    with torch.inference_mode():
        logits = ctx.trusted_model()(images)[:, target].double()
    n = reference.tensors["inputs"].shape[0]
    return logits[:n] - logits[n:]


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcomes = {key: _agrees(student, reference, key) for key in VALUE_CALLS}
    return share(outcomes, (
        "use IntegratedGradients(model).attribute(inputs, baselines=baselines, "
        "target=target, n_steps=n_steps, method=method, internal_batch_size="
        "internal_batch_size) with exactly the arguments you are given (the target is not "
        "always the top-1 class; method is 'gausslegendre' unless given)"))


def check_completeness(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    good, messages = 0, []
    for key in VALUE_CALLS:
        try:
            attr = _attributions(student, key, reference)
        except CheckFailed as exc:
            messages.append(str(exc))
            continue
        expected = _attributions(reference, key, reference)
        gap = _gap(ctx, reference, key)
        total = attr.flatten(1).sum(dim=1)
        error = (total - gap).abs()
        own = (expected.flatten(1).sum(dim=1) - gap).abs()
        allowed = COMPLETENESS_RTOL * gap.abs() + own
        rel = float(error[0] / gap.abs()[0])
        cosine = float(F.cosine_similarity(attr.flatten(), expected.flatten(), dim=0))
        what = _describe(reference, key)
        if not bool((error <= allowed).all()):
            messages.append(
                f"{what}: the attributions sum to {total[0]:.4g} but F(x) - F(baseline) is "
                f"{gap[0]:.4g} for the target logit (error {rel:.0%}, allowed "
                f"{float(allowed[0] / gap.abs()[0]):.0%}); attribute the target class you are "
                "given, against the baselines you are given, with IntegratedGradients(model) "
                "on the raw logits")
        elif cosine < MIN_COSINE:
            messages.append(
                f"{what}: the attributions sum to F(x) - F(baseline), but they are not an "
                f"Integrated Gradients map (cosine similarity {cosine:.2f} with the "
                "reference's); compute them with IntegratedGradients(model)")
        else:
            good += 1
            messages.append(f"{what}: sum {total[0]:.4g} matches F(x) - F(baseline) "
                            f"{gap[0]:.4g} (error {rel:.1%})")
    return partial(good / len(VALUE_CALLS), "; ".join(messages))


def check_output_format(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    _require_agreement(student, reference)
    n = reference.tensors["inputs"].shape[0]
    problems, fraction = [], 1.0
    for key in VALUE_CALLS:
        attr = _attributions(student, key, reference)
        if student.data["returned"][key] == "tensor":
            problems.append(f"{_describe(reference, key)} returned only the attributions; "
                            "return (attributions, delta) from ig.attribute(..., "
                            "return_convergence_delta=True)")
            continue
        try:
            delta = require_tensor(student, f"{key}_delta", "the convergence delta")
        except CheckFailed as exc:
            problems.append(f"{exc}; return the delta of ig.attribute(..., "
                            "return_convergence_delta=True), one per input")
            continue
        if not delta.is_floating_point() or delta.numel() != n:
            problems.append(f"the convergence delta has shape {tuple(delta.shape)} and dtype "
                            f"{delta.dtype}; return one float per input")
            continue
        gap = _gap(ctx, reference, key)
        expected = attr.flatten(1).sum(dim=1) - gap
        if not bool(((delta.double().reshape(-1) - expected).abs()
                     <= DELTA_RTOL * gap.abs() + 1e-4).all()):
            problems.append(
                f"{_describe(reference, key)}: the delta is {float(delta.reshape(-1)[0]):.4g} "
                f"but sum(attributions) - (F(x) - F(baseline)) is {float(expected[0]):.4g}; "
                "return the delta Captum computes")
    if problems:
        fraction -= 2 / 3
    rows = student.data.get("passes", {}).get("alt") or []
    batch = int(reference.data["arguments"]["alt"]["internal_batch_size"])
    if not rows or max(rows) > batch:
        fraction -= 1 / 3
        problems.append(
            f"internal_batch_size={batch} was given, but a forward pass ran "
            f"{max(rows) if rows else 0} images; pass internal_batch_size on to "
            "ig.attribute")
    if not problems:
        return passed("(attributions, delta) with the right delta, and internal_batch_size "
                      "honoured")
    return partial(fraction, "; ".join(problems))


def check_default_baseline(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    _require_agreement(student, reference)
    outcome = _agrees(student, reference, "default")
    if outcome.passed:
        return passed("baselines=None gives the zero-baseline attributions")
    raise CheckFailed(
        f"{outcome.message}; baselines=None must mean an all-zero baseline (pass None on to "
        "Captum, or torch.zeros_like(inputs))"
    )


CHECKS = {
    "output_format": check_output_format,
    "completeness": check_completeness,
    "agreement": check_agreement,
    "default_baseline": check_default_baseline,
}
