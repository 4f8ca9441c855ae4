"""Task 6: Integrated Gradients.

Probe
    The variant's photo crop at ``image_size`` (ImageNet-normalised). The trusted model
    ranks the classes before any student call; the variant's stream
    (``settings.rng("integrated_gradients")``, :func:`probe_parameters`) picks two targets
    of rank 2-10 (never the top-1), two step counts, a constant baseline, a blur for a
    second baseline, a Riemann method and an ``internal_batch_size``. Four calls, each on
    a fresh copy of the trusted model with private copies of the tensors:

    ``"main"``: ``target`` (rank ``rank``), ``baselines`` = a constant image (``const``),
    ``n_steps=steps``, no ``method`` (the default must be Captum's ``gausslegendre``);
    ``"alt"``: the other target, ``baselines`` = the input blurred (box filter ``blur``),
    ``n_steps=alt_steps``, ``method=method``, ``internal_batch_size=batch``;
    ``"default"``: as ``"main"`` with ``baselines=None``;
    ``"steps"``: as ``"main"`` with ``n_steps=alt_steps``: the one pair of calls that
    differs in the step count alone, so a function that ignores ``n_steps`` shows itself
    (its two maps are equal; the reference's differ by 0.13-0.21, measured).

    The probe's own forward pre-hook on the model counts the rows of every forward pass.
    Recorded: the input, the two baselines, the targets and arguments of each call, each
    ``(attributions, delta)`` pair and the rows per pass of each call. The checks compute F
    themselves, from the input, baselines and targets of the reference record (made by the
    same trusted probe), never from the student's delta.

Checks
    ``agreement`` (the main value check): ``"main"`` and ``"alt"`` each equal the
    reference's (same inputs and arguments) up to float noise: relative L2 error at most
    :data:`MAP_RTOL` (:func:`agree`); half the points each. The handout names no step
    count, and a student's function may fix its own (a real one called
    ``ig.attribute(inputs, target=target, n_steps=200)``): when ``"main"`` and ``"steps"``
    are equal (within :data:`SAME_RTOL`: n_steps ignored), a call that misses the
    reference at the requested step count but is the converged integral of its inputs,
    target and baseline (:func:`converged`: Gauss-Legendre at :data:`CONVERGED_STEPS`
    steps, computed by the grader on first need and kept for the process; relative L2
    error at most :data:`CONVERGED_RTOL`) earns :data:`OWN_STEPS_SHARE` (2/3) of its half,
    with "your function integrates with its own step count; use the n_steps argument".
    Ignoring ``n_steps`` costs the other third of agreement (2 of 6 points; the handout
    asks for no step count, so the template's ``n_steps`` weighs like its other own
    parameters: ``baselines=None`` 2 points, ``internal_batch_size`` 1) and nothing else:
    completeness judges the student's own map, ``default_baseline`` and the gate of the
    secondary checks accept the converged integral too. Only a map whose cosine
    similarity with the reference's is at least :data:`MIN_COSINE` is integrated against.
    ``completeness``: per call (half each), ``|sum(attr) - (F(x) - F(b))|`` within
    :data:`COMPLETENESS_RTOL` of ``|F(x) - F(b)|`` plus the reference's own error, F being
    the target logit of the grader's model; and the map must be an IG map, not a sum spread
    over pixels: cosine similarity with the reference's at least :data:`MIN_COSINE`.
    ``output_format`` and ``default_baseline`` pay only when at least one call agrees:
    ``output_format``: ``(attributions, delta)``, the delta equal to
    ``sum(attr) - (F(x) - F(b))`` as the grader computes it (2/3), and no forward pass of
    ``"alt"`` larger than its ``internal_batch_size`` (1/3).
    ``default_baseline``: the ``baselines=None`` result equals the reference's (zeros), or,
    with n_steps ignored, the converged zero-baseline integral.

Why each value separates right from wrong (measured on the stand-in weights at 64 px,
the practice variant and 16 graded ones; errors are relative L2 errors of the map; the
mistakes, with each one's whole score, are in tests/harness/tasks/test_integrated_gradients_checks.py):
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
      hence the allowance of 10% of the gap on top of it; a map at the student's own step
      count (50-300) is judged by the same rule: its error is smaller.

The converged integral (measured on the stand-in weights at 64 px, the practice variant,
the tests' graded one and 3 more graded ones, "main" and "alt" calls; relative L2 errors
against Gauss-Legendre at 2000 steps, which moves by 1.5e-3 from 1000 steps):
    - :data:`CONVERGED_STEPS` = 256 Gauss-Legendre steps are within 3.1e-3-5.5e-3 of it
      (512: 1.5e-3-3.0e-3), well inside the tolerance, at an eighth of the cost (about 5 s
      on one CPU thread per call, and only for a function that ignores n_steps);
    - honest integrals: gausslegendre 50/100/200/300 steps 1.5e-2-2.6e-2 / 7.3e-3-1.3e-2 /
      3.7e-3-7.0e-3 / 2.5e-3-4.8e-3; riemann_trapezoid 2.3e-2-3.4e-2 / 1.2e-2-1.8e-2 /
      5.7e-3-8.7e-3 / 3.7e-3-5.9e-3; riemann_left, _right, _middle at 50 steps at most
      3.9e-2, at 200 at most 9.3e-3 (a ReLU network's gradient jumps along the path, so
      every rule converges like 1/n);
    - wrong maps, 200 Gauss-Legendre steps unless said: the other call's target 1.09-1.62,
      the argmax 0.99-1.61, target + 1 1.25-1.57, zero baselines 0.73-2.03, the other
      call's baseline 0.85-2.08, the plain gradient 1.08-2.65, input x gradient 0.92-2.84,
      (x - b) x gradient 0.75-1.09, one midpoint step (gradient halfway times x - b)
      0.51-0.97; the requested 5-13 steps themselves 0.07-0.22 (Gauss-Legendre at 10-13
      steps, ``method`` ignored: 0.05-0.08, hence the ``"steps"`` evidence first);
    - ``"default"`` (zero baseline): 200 Gauss-Legendre steps 3.5e-3-4.1e-3, a baseline of
      ones 0.85-1.04;
    - :data:`CONVERGED_RTOL` = 0.1: 2.5 times the worst honest 50-step integral (3.9e-2),
      a fifth of the closest wrong map (one midpoint step, 0.51).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import torch
import torch.nn.functional as F

from grader.check.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_tensor,
    share,
)
from grader.probe.inputs import probe_inputs
from grader.probe.probing import ProbeContext, call, new_record, put_tensor
from grader.probe.records import Record, type_name
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
# A function whose "main" and "steps" maps (the same call at two step counts) differ by at
# most this (relative L2: the noise agreement forgives) ignores n_steps: the same
# computation twice differs by 0 on the CPU; the reference's maps at the two step counts
# differ by >0.1 (measured, see the module).
SAME_RTOL = MAP_RTOL
# The grader's converged integral: Gauss-Legendre at this many steps (rows per pass).
CONVERGED_STEPS = 256
CONVERGED_BATCH = 32
# With n_steps ignored, a map within this relative L2 error of the converged integral is
# the right integral at the student's own step count (measured: honest 50-300 step
# integrals <=3.9e-2, a wrong target, baseline, gradient or one step >=0.51).
CONVERGED_RTOL = 0.1
# ... and earns this part of its call's share of agreement: the rest is the cost of
# ignoring n_steps (see the module).
OWN_STEPS_SHARE = 2 / 3
OWN_STEPS_MESSAGE = "your function integrates with its own step count; use the n_steps argument"
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
    "steps": "as main at the alt call's step count: whether n_steps changes anything",
}
VALUE_CALLS = ("main", "alt")
# The baseline each call is given (None: baselines=None).
BASELINE_OF = {"main": "main", "alt": "alt", "default": None, "steps": "main"}


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
        "steps": {"target": target, "n_steps": p["alt_steps"]},
    }
    record.data.update(parameters=p, arguments=arguments, top1=int(ranking[0]))
    record.tensors["inputs"] = inputs.clone()
    for key, tensor in baselines.items():
        record.tensors[f"{key}_baselines"] = tensor.clone()
    passes: dict[str, list[int]] = {}
    for key, kwargs in arguments.items():
        model = models.pop(0)
        base = BASELINE_OF[key]
        given = baselines[base].to(ctx.device, copy=True) if base is not None else None
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
                "default": "baselines=None"}[BASELINE_OF[key] or "default"]
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


def _relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| (L2 over the whole map; NaN stays NaN)."""
    a, e = actual.detach().double(), expected.detach().double()
    norm = float(e.norm())
    return float((a - e).norm()) / norm if norm > 0 else float((a - e).norm())


def steps_ignored(student: Record, reference: Record) -> float | None:
    """How much the student's map moved between ``"main"`` and ``"steps"`` (the same call
    at two step counts): relative L2 difference, or None when either did not return a map.
    At most :data:`SAME_RTOL` means the function ignores ``n_steps``."""
    try:
        main = _attributions(student, "main", reference)
        other = _attributions(student, "steps", reference)
    except CheckFailed:
        return None
    return _relative(other, main)


_CONVERGED: dict[str, torch.Tensor] = {}
_CONVERGED_LOCK = threading.Lock()


def _baseline(reference: Record, key: str) -> torch.Tensor:
    """The baseline call ``key`` was given (zeros for baselines=None), from the reference's record."""
    base = BASELINE_OF[key]
    inputs = reference.tensors["inputs"]
    return torch.zeros_like(inputs) if base is None else reference.tensors[f"{base}_baselines"]


def converged(ctx: CheckContext, reference: Record, key: str) -> torch.Tensor:
    """The Integrated Gradients of call ``key``'s inputs, target and baseline, computed by
    the grader (Captum on the grader's ResNet-34) with :data:`CONVERGED_STEPS` Gauss-Legendre
    steps: the integral every step count and rule converges to. Computed on first use
    (seconds), then kept for this process, keyed by the weights and the tensors."""
    from captum.attr import IntegratedGradients

    inputs = reference.tensors["inputs"].float()
    baseline = _baseline(reference, key).float()
    target = int(reference.data["arguments"][key]["target"])
    digest = hashlib.sha256(f"{ctx.weights.id}:{target}:{CONVERGED_STEPS}:".encode())
    for tensor in (inputs, baseline):
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    name = digest.hexdigest()
    with _CONVERGED_LOCK:
        if name not in _CONVERGED:
            # A model of the grader's own (the trusted one may have been built under
            # inference_mode, whose tensors autograd refuses), on the trusted one's device.
            device = next(ctx.trusted_model().parameters()).device
            with torch.inference_mode(False), torch.enable_grad():
                model = ctx.weights.build_model(device).requires_grad_(False)
                attr = IntegratedGradients(model).attribute(
                    inputs.to(device).clone(), baseline.to(device).clone(), target=target,
                    n_steps=CONVERGED_STEPS, method="gausslegendre",
                    internal_batch_size=CONVERGED_BATCH)
            while len(_CONVERGED) >= 32:
                del _CONVERGED[next(iter(_CONVERGED))]
            _CONVERGED[name] = attr.detach().double().cpu()
        return _CONVERGED[name]


def _agreement(student: Record, reference: Record, key: str, ctx: CheckContext) -> Outcome:
    """Call ``key`` against the reference: full when it equals the reference's at the
    requested arguments (:func:`agree`); :data:`OWN_STEPS_SHARE` when the function ignores
    ``n_steps`` (:func:`steps_ignored`) and its map is the converged integral within
    :data:`CONVERGED_RTOL` (:func:`converged`); else nothing."""
    outcome = _agrees(student, reference, key)
    moved = steps_ignored(student, reference)
    if outcome.passed or moved is None or not moved <= SAME_RTOL:
        return outcome
    try:
        attr = _attributions(student, key, reference)
    except CheckFailed:  # no map for this call: the reason is in outcome.message
        return outcome
    steps = (reference.data["arguments"]["main"]["n_steps"],
             reference.data["arguments"]["steps"]["n_steps"])
    same = (f"n_steps={steps[0]} and n_steps={steps[1]} gave the same attributions (they "
            f"differ by {moved:.1e})")
    expected = _attributions(reference, key, reference)
    cosine = float(F.cosine_similarity(attr.flatten(), expected.flatten(), dim=0))
    if not cosine >= MIN_COSINE:  # not IG of this target and baseline: no need to integrate
        return Outcome(0.0, f"{outcome.message}; {same}: your function ignores n_steps; use "
                            "the n_steps argument")
    error = _relative(attr, converged(ctx, reference, key))
    if not error <= CONVERGED_RTOL:
        return Outcome(0.0, f"{outcome.message}, nor the integral converged at "
                            f"{CONVERGED_STEPS} steps (relative error {error:.3g}, allowed "
                            f"{CONVERGED_RTOL:g}); {same}: your function ignores n_steps; "
                            "use the n_steps argument")
    return partial(OWN_STEPS_SHARE, (
        f"{_describe(reference, key)} matches the integral converged at {CONVERGED_STEPS} "
        f"steps (relative error {error:.1e}, allowed {CONVERGED_RTOL:g}) but not the "
        f"reference at the requested step count ({OWN_STEPS_SHARE:.2g} of this call's "
        f"part): {same}: {OWN_STEPS_MESSAGE}"))


def _require_agreement(student: Record, reference: Record, ctx: CheckContext) -> None:
    """Secondary checks pay only when at least one value call equals the reference's (or,
    with n_steps ignored, the converged integral)."""
    for key in VALUE_CALLS:
        require_call(student, key, POINTER)
    if not any(_agreement(student, reference, key, ctx).fraction > 0 for key in VALUE_CALLS):
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


AGREEMENT_HINT = (
    "use IntegratedGradients(model).attribute(inputs, baselines=baselines, target=target, "
    "n_steps=n_steps, method=method, internal_batch_size=internal_batch_size) with exactly "
    "the arguments you are given (the target is not always the top-1 class; method is "
    "'gausslegendre' unless given)")


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcomes = {key: _agreement(student, reference, key, ctx) for key in VALUE_CALLS}
    if all(o.fraction in (0.0, 1.0) for o in outcomes.values()):
        return share(outcomes, AGREEMENT_HINT)
    # A call whose map is the integral at the function's own step count earns
    # OWN_STEPS_SHARE of its part; the hint follows when a call earns nothing.
    fraction = sum(o.fraction for o in outcomes.values()) / len(outcomes)
    message = "; ".join(o.message for o in outcomes.values() if not o.passed)
    if any(o.fraction == 0 for o in outcomes.values()):
        message += f"; {AGREEMENT_HINT}"
    return partial(fraction, message)


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
    _require_agreement(student, reference, ctx)
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
    _require_agreement(student, reference, ctx)
    outcome = _agrees(student, reference, "default")
    if outcome.passed:
        return passed("baselines=None gives the zero-baseline attributions")
    # n_steps ignored costs agreement only: here the map of the zero baseline is what counts.
    own = _agreement(student, reference, "default", ctx)
    if own.fraction > 0:
        return passed("baselines=None gives the zero-baseline integral (at your function's "
                      "own step count, see agreement)")
    raise CheckFailed(
        f"{own.message}; baselines=None must mean an all-zero baseline (pass None on to "
        "Captum, or torch.zeros_like(inputs))"
    )


CHECKS = {
    "output_format": check_output_format,
    "completeness": check_completeness,
    "agreement": check_agreement,
    "default_baseline": check_default_baseline,
}
