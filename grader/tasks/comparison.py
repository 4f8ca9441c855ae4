"""Task 9: comparison of attribution algorithms.

Probe
    ``compare_attributions(model, x, target, n_steps=ig_steps, seed=seed)`` on a
    fresh model copy after ``torch.manual_seed(seed)``, with the probe photo at
    ``comparison_size`` (32x32, see :mod:`grader.settings`) and the trusted model's
    top-1 class (computed before any student
    call). If it returns an exact ``dict``, its first :data:`MAX_ALGORITHMS`
    entries are recorded: the name (exact ``str`` keys only) and the map (only an
    exact dense ``torch.Tensor`` or ndarray; its type and shape are noted either
    way). Then ``plot_comparison(maps, display)`` is called with the student's own
    dict when it is a non-empty exact dict of str -> exact, finite float tensors
    shaped like the input; otherwise with a dict the grader rebuilds from the
    recorded maps that are, or, when none is, with :func:`stand_in_maps` (five
    named grader-made maps). So ``plot_comparison`` is graded on maps its docstring
    promises it, even when ``compare_attributions`` fails: one mistake costs one
    check. The names given to the plot are recorded; the figure is reduced to
    :func:`grader.probing.figure_facts` and closed.

Checks
    ``algorithms``: distinct algorithms among the recorded entries, out of 5: an
    entry counts when its key is a str, its map a finite float tensor, its
    normalised name new and its map not allclose, up to scale and sign, to one
    already counted (maps scaled to max |value| 1, ``atol`` :data:`SAME_MAP_ATOL`),
    so five copies of one map under five names count once. ``outputs``: each
    entry is an exact float tensor, finite, shaped like the input (or
    ``(1, 1, H, W)``: a layer method upsampled to the input's size); fraction =
    valid entries / entries. ``figure``: for each name given to
    ``plot_comparison``, an image axes whose title contains it (case-insensitive,
    ``_``/``-``/spaces alike); an extra panel for the original image is fine.

Small settings: 64x64 and 16 steps keep the reference's seven algorithms (Occlusion
included) near 1.5 s on one CPU thread; none of the checks depends on the size.
What they catch (tests/harness/test_comparison_checks.py): four algorithms; one map
under five names, or scaled copies of one map; numpy arrays or ``(H, W)`` maps;
hostile values (NaN, sparse, subclasses, non-str keys); a figure without titles or
with panels missing.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_figure,
)
from grader.inputs import probe_inputs, top1
from grader.probing import ProbeContext, call, closing_figures, figure_facts, new_record, put_tensor
from grader.records import Record, plain, type_name
from grader.tasks.attribution_viz import trusted_attributions

POINTER = "Task 9: compare_attributions in comparison.py"
POINTER_PLOT = "Task 9: plot_comparison in comparison.py"
REQUIRED_ALGORITHMS = 5
# At most this many entries are recorded (and checked); more is not more credit.
MAX_ALGORITHMS = 12
# Maps normalised to max |value| 1 that agree within this are the same algorithm.
SAME_MAP_ATOL = 1e-3
STAND_IN_NAMES: tuple[str, ...] = ("Alpha", "Bravo", "Charlie", "Delta", "Echo")


def stand_in_maps(size: int) -> dict[str, torch.Tensor]:
    """Five distinct grader-made ``(1, 3, size, size)`` maps for ``plot_comparison``."""
    base = trusted_attributions(size)
    return {name: base.roll(shifts=7 * i, dims=-1) * (i + 1)
            for i, name in enumerate(STAND_IN_NAMES)}


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("comparison")
    record = new_record("comparison")
    s = ctx.settings
    inputs, display = probe_inputs(s.comparison_size, s)
    record.data["input_shape"] = list(inputs.shape)
    model = ctx.fresh_model()
    target = top1(model, inputs.to(ctx.device))
    record.data["target"] = target
    torch.manual_seed(s.seed)
    result = call(record, "compare", mod.compare_attributions, model,
                  inputs.to(ctx.device, copy=True), target, n_steps=s.ig_steps, seed=s.seed)
    del model
    entries, own_dict = _record_entries(record, result, tuple(inputs.shape))
    if own_dict:
        given = result
        record.data["plot_given"] = "own"
    else:
        # Only maps plot_comparison's docstring promises it: (1, 3, H, W), finite.
        given = {e["name"]: record.tensors[e["tensor"]].clone() for e in entries
                 if e.get("valid")}
        record.data["plot_given"] = "rebuilt" if given else "stand_in"
        given = given or stand_in_maps(s.comparison_size)
    record.data["plot_names"] = [str.__str__(k) for k in dict.keys(given)][:MAX_ALGORITHMS]
    del result
    with closing_figures():
        fig = call(record, "plot", mod.plot_comparison, given, display.clone())
        if record.data["calls"]["plot"]["ok"]:
            figure_facts(record, "comparison", fig)
        del fig
    return record


def _record_entries(record: Record, result: Any, shape: tuple[int, ...]
                    ) -> tuple[list[dict[str, Any]], bool]:
    """Record the first MAX_ALGORITHMS entries. True when ``result`` is a non-empty exact
    dict of exact str -> valid map (an exact float tensor shaped like the input, finite),
    so the student's own dict may go to plot_comparison."""
    record.data["returned"] = type_name(result)
    entries: list[dict[str, Any]] = []
    if type(result) is not dict:
        record.data["entries"] = entries
        return entries, False
    items = list(dict.items(result))
    record.data["n_entries"] = len(items)
    for i, (name, value) in enumerate(items[:MAX_ALGORITHMS]):
        key = f"algo_{i}"
        name_ok = type(name) is str
        stored = put_tensor(record, key, value)
        tensor = record.tensors.get(key)
        valid = (name_ok and stored and type(value) is torch.Tensor
                 and tuple(tensor.shape) == shape and tensor.is_floating_point()
                 and bool(torch.isfinite(tensor).all()))
        entries.append({"name": str.__str__(name) if name_ok else f"<{type_name(name)} #{i}>",
                        "name_is_str": name_ok, "tensor": key, "valid": valid})
    record.data["entries"] = plain(entries)
    own = 0 < len(items) <= MAX_ALGORITHMS and all(e["valid"] for e in entries)
    return entries, own


# --------------------------------------------------------------------------- checks


def _entries(record: Record) -> list[dict[str, Any]]:
    require_call(record, "compare", POINTER)
    entries = record.data.get("entries")
    if record.data.get("returned") != "builtins.dict":
        raise CheckFailed(f"{POINTER}: returned {record.data.get('returned')}; return a dict "
                          "{algorithm name: attributions tensor}")
    if not isinstance(entries, list) or not entries:
        raise CheckFailed(f"{POINTER}: returned an empty dict; add one entry per algorithm")
    return entries


def _normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.casefold())


def _problem(record: Record, entry: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """Why one entry is not a valid map, or None."""
    name, key = entry.get("name"), entry.get("tensor")
    info = record.data.get("types", {}).get(key, {})
    tensor = record.tensors.get(key)
    if entry.get("name_is_str") is not True:
        return f"key {name} is not a str; key each map by its algorithm's name"
    if tensor is None:
        return f"{name!r} is {info.get('type')}, not a torch.Tensor"
    if info.get("numpy"):
        return f"{name!r} is a numpy array; return torch tensors"
    allowed = {shape, (shape[0], 1, *shape[2:])}
    if tuple(tensor.shape) not in allowed:
        return (f"{name!r} has shape {tuple(tensor.shape)}, not the input's {shape}; upsample "
                "layer methods with LayerAttribution.interpolate(attr, inputs.shape[-2:])")
    if not tensor.is_floating_point():
        return f"{name!r} has dtype {tensor.dtype}; return float attributions"
    if not torch.isfinite(tensor).all():
        return f"{name!r} holds NaN or infinite values"
    return None


def check_outputs(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    entries = _entries(student)
    shape = tuple(student.data.get("input_shape") or reference.data["input_shape"])
    problems = [p for p in (_problem(student, e, shape) for e in entries) if p]
    if not problems:
        return passed(f"all {len(entries)} maps are finite and shaped like the input")
    return partial(1 - len(problems) / len(entries),
                   "; ".join(problems[:6]) + f"; each map must be a finite float tensor shaped "
                   f"like the input {shape}")


def _same_map(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two maps are one map up to a positive or negative scale factor."""
    if a.shape != b.shape:
        return False
    a = a.double() / max(float(a.abs().max()), 1e-30)
    b = b.double() / max(float(b.abs().max()), 1e-30)
    return bool(torch.allclose(a, b, rtol=0, atol=SAME_MAP_ATOL)
                or torch.allclose(a, -b, rtol=0, atol=SAME_MAP_ATOL))


def check_algorithms(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    entries = _entries(student)
    counted: list[tuple[str, torch.Tensor]] = []
    duplicates: list[str] = []
    for entry in entries:
        tensor = student.tensors.get(entry.get("tensor"))
        name = str(entry.get("name"))
        if (entry.get("name_is_str") is not True or tensor is None
                or not tensor.is_floating_point() or not torch.isfinite(tensor).all()):
            continue  # not a usable (name, map) pair; `outputs` says why
        same = next((other for other, m in counted if _normalise_name(other) ==
                     _normalise_name(name) or _same_map(m, tensor)), None)
        if same is not None:
            duplicates.append(f"{name!r} repeats {same!r}")
            continue
        counted.append((name, tensor))
    distinct = len(counted)
    if distinct >= REQUIRED_ALGORITHMS:
        return passed(f"{distinct} distinct algorithms: {', '.join(n for n, _ in counted)}")
    note = f" ({'; '.join(duplicates[:4])})" if duplicates else ""
    return partial(distinct / REQUIRED_ALGORITHMS, (
        f"{distinct} distinct algorithms{note}; compare at least {REQUIRED_ALGORITHMS} "
        "different Captum algorithms (e.g. Saliency, IntegratedGradients, GradientShap, "
        "Occlusion, DeepLift), each under its own name"
    ))


def check_figure(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    facts = require_figure(student, "plot", "comparison", POINTER_PLOT, "return the Figure")
    names = [str(n) for n in student.data.get("plot_names", [])]
    if not names:
        raise CheckFailed(f"{POINTER_PLOT}: no algorithms were given to plot")
    titles = [_normalise_name(str(ax.get("title", ""))) for ax in facts.get("axes", [])
              if ax.get("has_image")]
    # A name with no letters or digits cannot be found in a title: it counts as missing.
    missing = [n for n in names
               if not _normalise_name(n) or not any(_normalise_name(n) in t for t in titles)]
    if not missing:
        return passed(f"one titled panel per algorithm ({len(names)})")
    return partial(1 - len(missing) / len(names), (
        f"no image panel titled with {', '.join(map(repr, missing[:6]))}; draw one panel per "
        "entry of the dict and title it with the algorithm's name (the dict key)"
    ))


CHECKS = {
    "algorithms": check_algorithms,
    "outputs": check_outputs,
    "figure": check_figure,
}
