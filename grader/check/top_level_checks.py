"""Points from a top-level run's evidence, where the evidence is sufficient (issue 15).

A handout-shaped submission computes Integrated Gradients as top-level code
(``attributions = IntegratedGradients(model).attribute(input_tensor, target=..., n_steps=...)``)
and defines no ``integrated_gradients`` function to probe. With ``--run-top-level`` the probe
(:func:`collect`, beside the student's code) records the image-shaped tensors the run left in
its globals; the checks here (the grader's process, its trusted model) then look for an
(input, attribution) pair among them and judge it as Task 6 asks:

- ``completeness``: the attribution sums to ``F(x)[t] - F(0)[t]`` within 10% of that gap, for
  ``t`` the trusted model's top-1 class on the input (the handout attributes the prediction)
  and the zero baseline (captum's default), and is within :data:`SAME_METHOD_RTOL` of the
  reference's integral (a sum alone proves little: input x gradient came within 3.6%);
- ``agreement``: relative L2 distance to the reference's own Integrated Gradients on the same
  input and target (Gauss-Legendre, :data:`REFERENCE_STEPS` steps) at most
  :data:`AGREEMENT_RTOL`.

Measured on the stand-in weights, ``chelsea.jpg``, against 128 Gauss-Legendre steps: honest
integrals 0.010-0.053 (16-50 Gauss-Legendre steps, 50-200 Riemann trapezoid, 50 Riemann right;
completeness errors 0.001-0.021), wrong ones 0.77-2.3 (another target 1.23, the plain gradient
2.30, input x gradient 0.77, smoothgrad NoiseTunnel 0.83, a 0.5 baseline 0.85). The
reference's 32 steps are 0.028 from 128. The other Task 6 checks (output format with the
convergence delta, the default baseline) test the template's function and stay unearned.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from grader.check.checking import CheckContext, CheckFailed, Outcome, passed
from grader.probe.records import Record

COMPLETENESS_RTOL = 0.10
AGREEMENT_RTOL = 0.25
# Completeness from evidence also needs the attribution to be an integral of gradients at all.
SAME_METHOD_RTOL = 0.5
REFERENCE_STEPS = 32
MAX_TENSORS = 8
MAX_ELEMENTS = 3 * 512 * 512
PREFIX = "top_level_"


def _missing(function: Any) -> bool:
    return bool(getattr(function, "__lab3_missing__", False))


def collect(task: str, ctx: Any, record: Record) -> None:
    """Record the run's image-shaped tensors for ``task`` when its function is missing and
    the instructor asked for the run (``ctx.run_top_level``); never raises."""
    if task not in EVIDENCE_CHECKS or ctx.run_top_level is None:
        return
    try:
        module = ctx.module(task)
    except Exception:  # noqa: BLE001 - the task's own record already says why
        return
    if not _missing(getattr(module, MISSING_FUNCTION[task], None)):
        return
    run = ctx.top_level_run()
    if run is None:
        return
    if task == "graph":
        _collect_graph(run, record)
        return
    names = []
    for name, value in list(run.namespace.items()):
        if len(names) >= MAX_TENSORS:
            break
        if (type(value) is torch.Tensor and value.dim() == 4 and value.shape[0] == 1
                and value.shape[1] == 3 and value.is_floating_point()
                and value.numel() <= MAX_ELEMENTS and not name.startswith("_")):
            record.tensors[f"{PREFIX}{len(names)}"] = value.detach().to(
                "cpu", torch.float32).contiguous().clone()
            names.append(name[:60])
    record.data["top_level"] = {"tensors": names}


def _collect_graph(run: Any, record: Record) -> None:
    """The DOT source of the first graphviz graph in the run's globals (``dot`` in the
    handout), as bytes; what it draws is judged in the grader's process."""
    from grader.tasks.graph import MAX_DOT_BYTES

    names = []
    for name, value in list(run.namespace.items()):
        source = getattr(value, "source", None) if not name.startswith("_") else None
        if isinstance(source, str) and "digraph" in source[:200]:
            data = source.encode("utf-8", errors="replace")[:MAX_DOT_BYTES]
            record.tensors["graph_source"] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            names.append(name[:60])
            break
    record.data["top_level"] = {"graphs": names, "files": list(run.files[:20])}


def has_evidence(student: Record | None) -> bool:
    return student is not None and isinstance(student.data.get("top_level"), dict)


def _tensors(student: Record) -> list[tuple[str, torch.Tensor]]:
    names = student.data["top_level"].get("tensors", [])
    if not isinstance(names, list):
        raise CheckFailed("the top-level run's record is malformed")
    found = []
    for i, name in enumerate(names[:MAX_TENSORS]):
        tensor = student.tensors.get(f"{PREFIX}{i}")
        if tensor is not None and torch.isfinite(tensor).all():
            found.append((str(name), tensor))
    return found


_JUDGED: dict[tuple[str, int], dict[str, Any]] = {}


def _judge(student: Record, ctx: CheckContext) -> dict[str, Any]:
    """The best (input, attribution) pair among the run's tensors, with its completeness
    error and, when that is within tolerance, its distance to the reference (cached)."""
    tensors = _tensors(student)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in tensors)).hexdigest()
    model = ctx.trusted_model()
    key = (digest, id(model))
    if key in _JUDGED:
        return _JUDGED[key]
    best: dict[str, Any] = {"pairs": 0}
    for x_name, x in tensors:
        with torch.no_grad():
            out = model(x)
            target = int(out[0].argmax())
            gap = float(out[0, target] - model(torch.zeros_like(x))[0, target])
        for a_name, a in tensors:
            if a_name == x_name or a.shape != x.shape or gap == 0:
                continue
            best["pairs"] += 1
            total = float(a.double().sum())
            error = abs(total - gap) / abs(gap)
            if "error" not in best or error < best["error"]:
                best.update(input=x_name, attribution=a_name, error=error, target=target,
                            gap=gap, total=total, x=x, a=a)
    if best.get("error", 1.0) <= COMPLETENESS_RTOL:
        from captum.attr import IntegratedGradients

        want = IntegratedGradients(model).attribute(best["x"], target=best["target"],
                                                    n_steps=REFERENCE_STEPS)
        best["distance"] = float((best["a"] - want).norm() / want.norm().clamp_min(1e-12))
    best.pop("x", None)
    best.pop("a", None)
    _JUDGED[key] = best
    return best


def _nothing_found(student: Record, best: dict[str, Any]) -> str:
    names = ", ".join(f"`{n}`" for n, _ in _tensors(student)) or "none"
    return ("no integrated_gradients() to probe, and among the image-shaped tensors your "
            f"top-level code left ({names}) no attribution sums to F(x) - F(0) for the "
            "model's top-1 class on an input beside it; keep `input_tensor` and the "
            "attributions of IntegratedGradients(model).attribute(input_tensor, target=...) "
            "as top-level variables, or write integrated_gradients() from the template")


def check_completeness(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    best = _judge(student, ctx)
    if best.get("error", 1.0) > COMPLETENESS_RTOL:
        raise CheckFailed(_nothing_found(student, best))
    if best["distance"] > SAME_METHOD_RTOL:
        # A sum near the gap alone proves little (input x gradient came within 4% on a photo).
        raise CheckFailed(
            f"from your top-level run: `{best['attribution']}` sums close to F(x) - F(0), but "
            f"is {best['distance']:.2f} (relative L2) from Integrated Gradients on "
            f"`{best['input']}`: it is another attribution method")
    return passed(f"from your top-level run: `{best['attribution']}` sums to "
                  f"{best['total']:.4g}, F(x) - F(0) = {best['gap']:.4g} for `{best['input']}` "
                  f"and class {best['target']} (error {best['error']:.1%}, tolerance "
                  f"{COMPLETENESS_RTOL:.0%})")


def check_agreement(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    best = _judge(student, ctx)
    if "distance" not in best:
        raise CheckFailed(_nothing_found(student, best))
    if best["distance"] > AGREEMENT_RTOL:
        raise CheckFailed(
            f"from your top-level run: `{best['attribution']}` is {best['distance']:.2f} "
            f"(relative L2) from the reference's Integrated Gradients on `{best['input']}` for "
            f"class {best['target']} (tolerance {AGREEMENT_RTOL}); use IntegratedGradients with "
            "the zero baseline and the predicted class as target")
    return passed(f"from your top-level run: `{best['attribution']}` is {best['distance']:.3f} "
                  f"(relative L2) from the reference's Integrated Gradients on `{best['input']}`"
                  f" for class {best['target']}")


_FULL_GRAPH: dict[int, dict[str, Any]] = {}


def _full_graph_facts(ctx: CheckContext) -> dict[str, Any]:
    """Node count and parameter names of the reference's graph of the full trusted model
    (torchviz's make_dot with params; the node count does not depend on the input size)."""
    from torchviz import make_dot

    from grader.tasks.graph import source_facts

    model = ctx.trusted_model()
    if id(model) not in _FULL_GRAPH:
        with torch.enable_grad():
            out = model(torch.zeros(1, 3, 32, 32))
        dot = make_dot(out, params=dict(model.named_parameters()))
        data = dot.source.encode()
        facts = source_facts(Record(task="graph", tensors={
            "graph_source": torch.frombuffer(bytearray(data), dtype=torch.uint8)}))
        _FULL_GRAPH[id(model)] = facts or {"nodes": 0, "params": []}
    return _FULL_GRAPH[id(model)]


def check_graph_png(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    """The graph the run drew (``dot``) is the full ResNet-34's: every parameter named, and
    the reference's node count within 2%."""
    from grader.tasks.graph import source_facts

    evidence = student.data["top_level"]
    got = source_facts(student)
    if got is None:
        files = ", ".join(evidence.get("files", [])) or "none"
        raise CheckFailed(
            "no render_model_graph() to probe, and your top-level code left no graphviz graph "
            f"(the handout's `dot = make_dot(...)`) in its variables (files written: {files}); "
            "keep `dot` at the top level, or write render_model_graph() from the template")
    want = _full_graph_facts(ctx)
    params, expected = set(got["params"]), set(want["params"])
    if params != expected:
        missing = sorted(expected - params)
        raise CheckFailed(
            f"from your top-level run: the graph names {len(params & expected)} of ResNet-34's "
            f"{len(expected)} parameters (missing e.g. {', '.join(missing[:3]) or '-'}); draw "
            "make_dot(model(x), params=dict(model.named_parameters())) of the lab's model")
    if abs(got["nodes"] - want["nodes"]) > 0.02 * want["nodes"]:
        raise CheckFailed(f"from your top-level run: the graph has {got['nodes']} nodes, the "
                          f"reference's of the same model {want['nodes']}")
    return passed(f"from your top-level run: `{evidence['graphs'][0]}` is the graph of "
                  f"ResNet-34 ({got['nodes']} nodes, all {len(expected)} parameters named)")


# Task -> the template function whose absence lets a top-level run's evidence be judged.
MISSING_FUNCTION: dict[str, str] = {"integrated_gradients": "integrated_gradients",
                                    "graph": "render_model_graph"}
# Task -> check name -> the check judged on a top-level run's evidence instead.
EVIDENCE_CHECKS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"completeness": check_completeness, "agreement": check_agreement},
    "graph": {"graph_png": check_graph_png},
}
