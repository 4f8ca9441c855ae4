"""Tools for checks: pure functions of (student record, reference record).

A check returns an :class:`Outcome` (fraction of its points and a message) or
raises :class:`CheckFailed` with the message for the student. Any other
exception inside a check (for example a malformed record) is turned into a
failed check by the runner, never a grader crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grader.errors import CheckFailed
from grader.probe.records import Record
from grader.refdata.weights import ResolvedWeights


@dataclass(frozen=True)
class Outcome:
    """Result of one check: ``fraction`` of its points in [0, 1] and a message."""

    fraction: float
    message: str

    @property
    def passed(self) -> bool:
        return self.fraction >= 1.0


def passed(message: str = "ok") -> Outcome:
    return Outcome(1.0, message)


def partial(fraction: float, message: str) -> Outcome:
    return Outcome(min(max(float(fraction), 0.0), 1.0), message)


def share(outcomes: dict[str, Outcome], hint: str) -> Outcome:
    """One check made of equal parts (one per probed call): full when every part passed,
    else the fraction that passed, with the failed parts' messages and then ``hint``."""
    good = [o for o in outcomes.values() if o.passed]
    if len(good) == len(outcomes):
        return passed("; ".join(o.message for o in outcomes.values()))
    wrong = "; ".join(o.message for o in outcomes.values() if not o.passed)
    return partial(len(good) / len(outcomes), f"{wrong}; {hint}")


@dataclass
class CheckContext:
    """Trusted resources for checks, built in the grader's own process."""

    weights: ResolvedWeights
    _model: torch.nn.Module | None = field(default=None, repr=False)

    def trusted_model(self) -> torch.nn.Module:
        """The grader's ResNet-34 with the resolved weights (eval). Do not modify it."""
        if self._model is None:
            self._model = self.weights.build_model()
        return self._model


CheckFn = Callable[[Record, Record, CheckContext], Outcome]


def require_call(record: Record, name: str, pointer: str) -> dict[str, Any]:
    """The outcome of call ``name`` in ``record``; raises CheckFailed if it did not return.

    ``pointer`` says what to implement, e.g. "Task 6: integrated_gradients in
    integrated_gradients.py".
    """
    calls = record.data.get("calls")
    outcome = calls.get(name) if isinstance(calls, dict) else None
    if not isinstance(outcome, dict):
        cut = record.data.get("cut_calls")
        if isinstance(cut, list) and cut:
            raise CheckFailed(f"{pointer}: not run: the task's time limit cut "
                              f"{', '.join(map(str, cut))} before it")
        raise CheckFailed(f"{pointer}: the grader could not call it (no record)")
    if outcome.get("ok") is True:
        return outcome
    if outcome.get("not_implemented"):
        raise CheckFailed(f"{pointer}: not implemented yet ({outcome.get('message', '')})")
    if outcome.get("timeout"):
        if outcome.get("seconds") is None:
            raise CheckFailed(f"{pointer}: {outcome.get('message', 'cut by the time limit')} "
                              "(what the task recorded before it still counts); make it "
                              "faster, at the settings it is given")
        raise CheckFailed(f"{pointer}: timed out after {outcome.get('seconds')} s")
    raise CheckFailed(
        f"{pointer}: raised {outcome.get('error_type')}: {outcome.get('message', '')}"
    )


def require_figure(record: Record, call: str, figure: str, pointer: str, hint: str) -> dict[str, Any]:
    """The facts :func:`grader.probe.probing.figure_facts` recorded as ``figure`` after call ``call``.

    Raises:
        CheckFailed: the call did not return, or what it returned was not a Figure
            (the message ends with ``hint``, e.g. "return the Figure").
    """
    require_call(record, call, pointer)
    figures = record.data.get("figures")
    facts = figures.get(figure) if isinstance(figures, dict) else None
    if not isinstance(facts, dict) or "error" in facts:
        detail = facts.get("error") if isinstance(facts, dict) else "no figure"
        raise CheckFailed(f"{pointer}: {detail}; {hint}")
    return facts


def require_tensor(
    record: Record,
    name: str,
    what: str,
    *,
    shape: tuple[int, ...] | list[int] | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Tensor ``name`` from ``record``, validated: exact Tensor type, shape, finiteness.

    Raises:
        CheckFailed: with a message naming ``what`` and what came back instead.
    """
    types = record.data.get("types", {})
    info = types.get(name) if isinstance(types, dict) else None
    tensor = record.tensors.get(name)
    if tensor is None:
        got = info.get("type") if isinstance(info, dict) else "nothing"
        if isinstance(info, dict) and info.get("too_large"):
            raise CheckFailed(f"{what} is far too large: shape {info.get('shape')}")
        raise CheckFailed(f"{what} must be a torch.Tensor, got {got}")
    if isinstance(info, dict) and info.get("numpy"):
        raise CheckFailed(f"{what} must be a torch.Tensor, got a numpy array")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise CheckFailed(
            f"{what} has shape {tuple(tensor.shape)}, expected {tuple(shape)}"
        )
    if finite and tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise CheckFailed(f"{what} contains NaN or infinite values")
    return tensor


def close(
    actual: torch.Tensor, expected: torch.Tensor, *, rtol: float, atol: float, what: str
) -> Outcome:
    """``torch.testing.assert_close`` in the grader's own process, as an Outcome."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Outcome(0.0, f"{what}: shape {tuple(actual.shape)}, expected "
                            f"{tuple(expected.shape)}")
    a = actual.detach().double()
    e = expected.detach().double()
    err = (a - e).abs()
    allowed = atol + rtol * e.abs()
    bad = err > allowed
    if not bad.any():
        return passed(f"{what} matches the reference (max abs diff {err.max().item():.2e})")
    return Outcome(
        0.0,
        f"{what} differs from the reference: {int(bad.sum())} of {bad.numel()} values "
        f"outside rtol={rtol:g}, atol={atol:g} (max abs diff {err.max().item():.3g})",
    )
