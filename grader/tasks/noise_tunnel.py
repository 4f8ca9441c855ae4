"""Task 8: NoiseTunnel around Integrated Gradients.

Probe
    The probe photo at ``image_size`` (ImageNet-normalised), its target (the trusted
    model's top-1, computed before any student call) and a zero baseline. Three
    calls of ``noise_tunnel(model, x, target, nt_type="smoothgrad", n_steps=ig_steps,
    seed=seed, baselines=zeros, ...)``, each on a fresh model copy, each after
    ``torch.manual_seed(seed)``:

    ``"noisy"``: ``nt_samples=nt_samples``, ``stdevs=nt_stdevs``;
    ``"noisy_x2"``: ``nt_samples=2 * nt_samples``, same ``stdevs``;
    ``"zero_noise"``: ``nt_samples=nt_samples``, ``stdevs=0.0``.

    During each call the probe's own forward pre-hook on the model's root module
    adds up the rows (``inputs[0].shape[0]``) of every forward pass; it is removed
    after the call. Recorded: the three results and the three row counts.

Checks
    ``agreement``: ``"noisy"`` equals the reference's ``"noisy"`` (same seed, so the
    same noise) to ``rtol`` :data:`RTOL`, ``atol`` :data:`ATOL_FRACTION` x max
    |reference|. ``nt_samples``: the rows of ``"noisy_x2"`` over the rows of
    ``"noisy"`` match the reference's ratio (2), or the rows ``"noisy_x2"`` ran beyond
    ``"noisy"`` match the reference's, within 10%: the ratio holds whatever one
    sample costs, the difference whatever else the student runs (a prediction); a
    hard-coded or ignored ``nt_samples`` gives ratio 1 and no extra rows.
    ``zero_noise``: ``"zero_noise"`` equals the
    reference's ``"zero_noise"``, which is the reference's plain Integrated
    Gradients (``NoiseTunnel`` with ``stdevs=0`` averages identical IG maps; the
    harness tests hold the reference to that).

Why these small settings are enough (tests/harness/test_noise_tunnel_checks.py):
    - another seed, or extra random draws before the noise: the noise differs
      everywhere, the maps differ by far more than the tolerance (``agreement``);
    - ``nt_samples`` ignored or fixed: ratio 1, no extra rows (``nt_samples``);
    - Saliency (or any other base method) inside the tunnel: differs from the
      reference's IG with and without noise (``agreement``, ``zero_noise``);
    - ``stdevs`` ignored: the zero-noise map is noisy (``zero_noise``).
"""

from __future__ import annotations

from typing import Any

import torch

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    close,
    passed,
    require_call,
    require_tensor,
)
from grader.inputs import probe_inputs, top1
from grader.probing import ProbeContext, call, new_record, put_tensor
from grader.records import Record

POINTER = "Task 8: noise_tunnel in noise_tunnel.py"
# Same algorithm, same seed: differences are ~1e-7 of the map's maximum; another
# noise draw changes the 2-sample mean by >1e-1 of it.
RTOL = 1e-3
ATOL_FRACTION = 1e-3
# The rows ratio may drift by this fraction (a few extra plain forward passes).
ROWS_TOLERANCE = 0.1


def _calls(nt_samples: int, stdevs: float) -> dict[str, dict[str, Any]]:
    return {
        "noisy": {"nt_samples": nt_samples, "stdevs": stdevs},
        "noisy_x2": {"nt_samples": 2 * nt_samples, "stdevs": stdevs},
        "zero_noise": {"nt_samples": nt_samples, "stdevs": 0.0},
    }


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("noise_tunnel")
    record = new_record("noise_tunnel")
    s = ctx.settings
    inputs, _ = probe_inputs(s.image_size, s)
    baselines = torch.zeros_like(inputs)
    calls = _calls(s.nt_samples, s.nt_stdevs)
    # One fresh model per call; the target comes from the first, before any student call.
    models = [ctx.fresh_model() for _ in calls]
    target = top1(models[0], inputs.to(ctx.device))
    record.data["target"] = target
    record.tensors["inputs"] = inputs.clone()
    rows: dict[str, int] = {}
    record.data["arguments"] = calls
    for key, arguments in calls.items():
        model = models.pop(0)
        counter = _RowCounter(model)
        torch.manual_seed(s.seed)
        try:
            result = call(record, key, mod.noise_tunnel, model, inputs.to(ctx.device, copy=True),
                          target, nt_type="smoothgrad", n_steps=s.ig_steps, seed=s.seed,
                          baselines=baselines.to(ctx.device, copy=True), **arguments)
        finally:
            counter.remove()
        rows[key] = counter.rows
        put_tensor(record, key, result)
        del model, result
    record.data["rows"] = rows
    return record


class _RowCounter:
    """The probe's own forward pre-hook on the root module: rows of every forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if type(x) is torch.Tensor and not x.is_nested and x.dim() >= 1:
            self.rows += int(x.shape[0])

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- checks


def _result(record: Record, key: str, reference: Record) -> torch.Tensor:
    arguments = reference.data["arguments"][key]
    what = (f"noise_tunnel(..., nt_samples={arguments['nt_samples']}, "
            f"stdevs={arguments['stdevs']})")
    require_call(record, key, POINTER)
    result = require_tensor(record, key, what, shape=tuple(reference.tensors["inputs"].shape))
    if not result.is_floating_point():
        raise CheckFailed(f"{what} has dtype {result.dtype}; return float attributions")
    return result.double()


def _compare(student: Record, reference: Record, key: str, what: str) -> Outcome:
    got = _result(student, key, reference)
    expected = _result(reference, key, reference)
    return close(got, expected, rtol=RTOL, atol=ATOL_FRACTION * float(expected.abs().max()),
                 what=what)


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcome = _compare(student, reference, "noisy", "smoothgrad attributions")
    if outcome.passed:
        return outcome
    raise CheckFailed(
        f"{outcome.message}; seed with torch.manual_seed(seed) right before "
        "NoiseTunnel(IntegratedGradients(model)).attribute(inputs, nt_type=nt_type, "
        "nt_samples=nt_samples, stdevs=stdevs, baselines=baselines, target=target, "
        "n_steps=n_steps), drawing no other random numbers in between"
    )


def check_nt_samples(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    for key in ("noisy", "noisy_x2"):
        require_call(student, key, POINTER)
    rows = student.data.get("rows", {})
    ref_rows = reference.data["rows"]
    low, high = int(rows.get("noisy", 0)), int(rows.get("noisy_x2", 0))
    n = reference.data["arguments"]["noisy"]["nt_samples"]
    if low <= 0:
        raise CheckFailed("the model you were given never ran; attribute with that model")
    # Doubling nt_samples doubles the tunnel's rows (the ratio holds whatever one
    # sample costs, e.g. another base method), or adds as many rows as the reference's
    # (the difference holds whatever the student runs besides the tunnel, e.g. a
    # prediction). An ignored or fixed nt_samples gives neither.
    ratio, expected_ratio = high / low, ref_rows["noisy_x2"] / ref_rows["noisy"]
    extra, expected_extra = high - low, ref_rows["noisy_x2"] - ref_rows["noisy"]
    if abs(ratio - expected_ratio) <= ROWS_TOLERANCE * expected_ratio or (
            expected_extra > 0 and abs(extra - expected_extra) <= ROWS_TOLERANCE * expected_extra):
        return passed(f"nt_samples={n} and {2 * n} ran {low} and {high} images through the "
                      "model")
    raise CheckFailed(
        f"nt_samples={n} and nt_samples={2 * n} ran {low} and {high} images through the "
        f"model (the reference: {ref_rows['noisy']} and {ref_rows['noisy_x2']}); pass "
        "nt_samples on to NoiseTunnel.attribute instead of a fixed number"
    )


def check_zero_noise(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    outcome = _compare(student, reference, "zero_noise",
                       "smoothgrad attributions with stdevs=0 (plain IG)")
    if outcome.passed:
        return outcome
    raise CheckFailed(
        f"{outcome.message}; with stdevs=0 smoothgrad must give plain Integrated Gradients: "
        "pass stdevs on to NoiseTunnel.attribute and wrap IntegratedGradients(model) "
        "(with the baselines and n_steps you are given)"
    )


CHECKS = {
    "agreement": check_agreement,
    "nt_samples": check_nt_samples,
    "zero_noise": check_zero_noise,
}
