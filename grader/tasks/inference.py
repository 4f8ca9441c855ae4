"""Task 3: inference with the pretrained model.

Probe
    ``predict(model, path, labels)`` once per photo fixture (4 photos), each with a
    fresh copy of the trusted model whose classes are reordered (its ``fc`` rows
    permuted) and a fresh label dict of torchvision's names in another order, both
    drawn from the variant's stream (:func:`variant_inputs`: two models and two label
    dicts, each pair of them used on one photo); then ``predict_batch(model, paths,
    labels)`` once on all photos, with a forward pre-hook of the probe's own on the
    model's ``conv1`` counting the passes and their rows. Recorded per result: its
    container type, the label (plain ``str``), the index and the score (real type,
    shape/dtype for a tensor, and the number itself), plus ``model_facts`` after the
    calls, and the variant's set-up (permutations, names) the checks read from the
    reference's record.

Parameters probed, and why each value separates right from wrong
    - ``model``: two class orders, each moving every class (one 1000-cycle): a
      ``predict`` that loads its own model predicts another index on every photo (its
      softmax maximum is the same, so the score pays only with the right index);
    - ``labels``: two orders of torchvision's names, each moving every name: a
      ``predict`` that uses its own labels returns another name;
    - ``img``: four photos with four different top-1 classes on the stand-in and the
      real weights;
    - ``predict_batch``: the results of one forward pass of 4 rows; a loop of
      ``predict`` (4 passes of 1 row) earns nothing for ``batch``.

Why this catches the mistakes (tests/harness/tasks/test_inference_checks.py):
    - no softmax: the score is a raw logit (not in [0, 1]) and differs from the
      reference's probability far beyond 1e-4;
    - argmax / softmax over the wrong dim: the index is a 1000-element tensor or
      always 0, and the score is 1.0;
    - tensors returned instead of numbers: ``return_types`` names the item (it pays
      only once ``top1_index`` passes);
    - ``predict_batch`` that mixes up the order: the 4 photos get 4 different
      (index, score) pairs from the reference, so any permutation shows.

Error carried forward: the probe also records ``preprocessing.preprocess_image(path)``
of each photo (the student's own preprocessing). A photo whose index or score differs
from the reference's still passes when it equals what the grader's trusted model, with
the call's class order and names, predicts on that recorded input: a preprocessing
mistake (a wrong std, or the handout's "256x256" read as ``Resize((256, 256))``) is
charged once, in Task 2, and
``predict`` is judged on what it does with the preprocessing it was given.

Rule on types: the handout's ``postprocess`` returns the index as a 0-d tensor
(``pred_label_idx.squeeze_()``); the template says ``int``. A 0-d integer tensor
index earns the ``return_types`` point with a note; the score must be a float.
"""

from __future__ import annotations

import functools
import math
import random
import weakref
from typing import Any

import numpy as np
import torch

from grader.check.checking import CheckContext, CheckFailed, Outcome, partial, passed, require_call
from grader.probe.inputs import image_paths
from grader.probe.probing import (
    ImplementationError,
    ProbeContext,
    call,
    model_facts,
    new_record,
    put_tensor,
)
from grader.probe.records import Record, plain, type_name
from grader.settings import ProbeSettings

POINTER = "Task 3: predict in inference.py"
POINTER_BATCH = "Task 3: predict_batch in inference.py"
SCORE_ATOL = 1e-4
MAX_BATCH_ITEMS = 64
N_CLASSES = 1000
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
OWN_INPUT_ELEMENTS = 3 * 512 * 512  # a preprocessed photo larger than this is not re-run
ECF_NOTE = ("equals the trusted model's prediction on your own preprocessing (its mistakes "
            "are charged in Task 2)")


@functools.cache
def _categories() -> tuple[str, ...]:
    from torchvision.models import ResNet34_Weights

    return tuple(ResNet34_Weights.IMAGENET1K_V1.meta["categories"])


def _cycle(rng: random.Random, n: int = N_CLASSES) -> list[int]:
    """A permutation of ``range(n)`` drawn from ``rng`` that moves every index (one n-cycle)."""
    order = list(range(n))
    rng.shuffle(order)
    perm = [0] * n
    for j, k in enumerate(order):
        perm[k] = order[(j + 1) % n]
    return perm


def variant_inputs(settings: ProbeSettings) -> dict[str, Any]:
    """The variant's models and label dicts, and which call gets which.

    ``perms[m]``: the class order of model ``m`` (its ``fc`` row ``j`` is the trusted
    model's row ``perms[m][j]``); ``label_sets[l]``: the names of label dict ``l``
    (``{j: label_sets[l][j]}``, torchvision's names in another order); ``calls``: per
    photo ``(m, l)``; ``batch``: ``(m, l)`` of ``predict_batch``. Every permutation moves
    every class, so a ``predict`` that ignores ``model`` (loads its own) or ``labels``
    (uses torchvision's names) gets another index or name on every photo.
    """
    rng = settings.rng("inference")
    perms = [_cycle(rng), _cycle(rng)]
    label_sets = [[_categories()[k] for k in _cycle(rng)] for _ in range(2)]
    return {"perms": perms, "label_sets": label_sets,
            "calls": [[i % 2, i // 2 % 2] for i in range(4)], "batch": [1, 0]}


def permuted_model(ctx: ProbeContext, perm: list[int]) -> torch.nn.Module:
    """A fresh trusted model whose classes are reordered by ``perm`` (fc rows permuted)."""
    model = ctx.fresh_model()
    index = torch.tensor(perm, device=model.fc.weight.device)
    with torch.no_grad():
        model.fc.weight.copy_(model.fc.weight[index])
        model.fc.bias.copy_(model.fc.bias[index])
    return model


class _ForwardCounter:
    """Counts the passes through a model's stem (``conv1``) and the rows of each.

    On ``conv1``, not the model itself, so ``model.forward(x)`` counts too.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows: list[int] = []
        self._handle = model.conv1.register_forward_pre_hook(self._hook)

    def _hook(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        self.rows.append(int(x.shape[0]) if type(x) is torch.Tensor and x.dim() == 4 else -1)

    def remove(self) -> list[int]:
        self._handle.remove()
        return self.rows[:MAX_BATCH_ITEMS]


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("inference")
    record = new_record("inference")
    photos = image_paths("photo")
    record.data["photos"] = [p.name for p in photos]
    setup = variant_inputs(ctx.settings)
    record.data["setup"] = setup
    results = []
    for i, path in enumerate(photos):
        m, lab = setup["calls"][i % len(setup["calls"])]
        model = permuted_model(ctx, setup["perms"][m])
        labels = dict(enumerate(setup["label_sets"][lab]))
        torch.manual_seed(ctx.settings.seed)
        out = call(record, f"predict_{i}", mod.predict, model, str(path), labels)
        results.append(result_info(out))
        if i == 0:
            record.data["model_facts"] = model_facts(model)
    record.data["predict"] = results

    m, lab = setup["batch"]
    model = permuted_model(ctx, setup["perms"][m])
    counter = _ForwardCounter(model)
    torch.manual_seed(ctx.settings.seed)
    out = call(record, "predict_batch", mod.predict_batch, model, [str(p) for p in photos],
               dict(enumerate(setup["label_sets"][lab])))
    batch: dict[str, Any] = {"type": type_name(out), "forward_rows": counter.remove()}
    if type(out) in (list, tuple):
        items = list(out)
        batch["length"] = len(items)
        batch["items"] = [result_info(item) for item in items[:MAX_BATCH_ITEMS]]
    record.data["batch"] = batch
    record.data["batch_model_facts"] = model_facts(model)
    record.data["own_inputs"] = _own_inputs(ctx, record, photos)
    return record


def _own_inputs(ctx: ProbeContext, record: Record, photos: list) -> list[bool]:
    """Record the student's own ``preprocess_image`` of each photo (error carried forward).

    Returns, per photo, whether a tensor was recorded as ``own_input_<i>``.
    """
    try:
        prep = ctx.module("preprocessing")
    except ImplementationError:
        return []
    stored = []
    for i, path in enumerate(photos):
        out = call(record, f"preprocess_{i}", prep.preprocess_image, str(path))
        stored.append(put_tensor(record, f"own_input_{i}", out, max_elements=OWN_INPUT_ELEMENTS))
    return stored


def result_info(out: Any) -> dict[str, Any]:
    """Plain facts about one ``(label, index, score)`` result (never raises)."""
    try:
        return _result_info(out)
    except Exception as exc:  # noqa: BLE001 - e.g. a meta tensor that cannot be read
        return {"type": type_name(out), "error": f"{type(exc).__name__}: {exc}"[:300]}


def _result_info(out: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type_name(out)}
    if type(out) not in (tuple, list):
        return info
    items = list(out)
    info["length"] = len(items)
    if len(items) != 3:
        return info
    label, index, score = items
    info["label"] = {"type": type_name(label),
                     "value": plain(label)[:200] if isinstance(label, str) else None}
    info["index"] = number_info(index)
    info["score"] = number_info(score)
    return info


def number_info(value: Any) -> dict[str, Any]:
    """Real type of a number-like result and, when it holds one number, its value."""
    info: dict[str, Any] = {"type": type_name(value)}
    t = type(value)
    if t is int or t is float:
        info["value"] = plain(value)
    elif t is torch.Tensor:
        info["shape"] = list(value.shape)
        info["dtype"] = str(value.dtype).removeprefix("torch.")
        if value.numel() == 1:
            info["value"] = plain(value.detach().cpu().reshape(()).item())
    elif t.__module__ == "numpy" and isinstance(value, np.generic) and value.dtype.kind in "iuf":
        info["dtype"] = str(value.dtype)
        info["value"] = plain(value.item())
    return info


# --------------------------------------------------------------------------- checks


def _number(info: Any) -> float | None:
    value = info.get("value") if isinstance(info, dict) else None
    if type(value) in (int, float) and math.isfinite(value):
        return value
    return None


def _index(info: Any) -> tuple[int | None, str]:
    """(index, problem): the recorded index as an int, or None and what is wrong with it."""
    if not isinstance(info, dict):
        return None, "no index"
    value = _number(info)
    if info.get("type") == "torch.Tensor" and info.get("shape") not in ([], [1], [1, 1]):
        return None, (f"index is a tensor of shape {info.get('shape')}; take the top-1 over "
                      "the classes (dim=1) and return int(index)")
    if value is None or value != int(value):
        return None, f"index is {info.get('type')} {info.get('value', '')}; return int(index)"
    return int(value), ""


def _results(student: Record, reference: Record) -> list[tuple[str, Any, Any]]:
    """(photo, student result info, reference result info) per reference photo."""
    names = reference.data.get("photos")
    refs = reference.data.get("predict")
    if not isinstance(names, list) or not isinstance(refs, list) or len(names) != len(refs):
        raise CheckFailed("no reference predictions recorded (grader set-up problem)")
    calls = student.data.get("calls", {})
    if not any(isinstance(calls.get(f"predict_{i}"), dict) and calls[f"predict_{i}"].get("ok")
               for i in range(len(names))):
        require_call(student, "predict_0", POINTER)  # raises with the first call's error
    got = student.data.get("predict")
    got_names = student.data.get("photos")
    out = []
    for i, name in enumerate(names):
        same = isinstance(got, list) and isinstance(got_names, list) and i < len(got) and \
            i < len(got_names) and got_names[i] == name
        out.append((name, got[i] if same else None, refs[i]))
    return out


def _call_problem(student: Record, i: int) -> str | None:
    try:
        require_call(student, f"predict_{i}", "predict")
    except CheckFailed as exc:
        return str(exc)
    return None


def _shape_problem(info: Any) -> str | None:
    if not isinstance(info, dict) or info.get("length") != 3:
        got = info.get("type") if isinstance(info, dict) else "nothing"
        length = f" of length {info.get('length')}" if isinstance(info, dict) and \
            "length" in info else ""
        return f"returned {got}{length}; return (label, index, score)"
    return None


def _label_text(info: Any) -> str | None:
    label = info.get("label") if isinstance(info, dict) else None
    value = label.get("value") if isinstance(label, dict) else None
    return value if isinstance(value, str) else None


def _compare(got: Any, ref: Any) -> str | None:
    """Problem with one result's index/label versus the reference's, or None."""
    problem = _shape_problem(got)
    if problem:
        return problem
    index, problem = _index(got.get("index"))
    if index is None:
        return problem
    ref_index, _ = _index(ref.get("index"))
    if index != ref_index:
        return (f"predicted index {index} ({_label_text(got)!r}), the reference predicts "
                f"{ref_index} ({_label_text(ref)!r})")
    if _label_text(got) != _label_text(ref):
        return (f"label is {_label_text(got)!r} but labels[{index}] is {_label_text(ref)!r}; "
                "return labels[index]")
    return None


# _own_logits() of the records being checked, each with a weak reference to its record:
# three checks ask for the same logits, and an id may be reused once a record is gone.
_OWN_LOGITS: dict[int, tuple[weakref.ref, list[torch.Tensor | None]]] = {}


def _own_logits(student: Record, ctx: CheckContext) -> list[torch.Tensor | None]:
    """Per photo, the trusted model's logits ``(1000,)`` on the student's own preprocessing
    of it (None where no usable tensor was recorded). Computed once per record."""
    key = id(student)
    cached = _OWN_LOGITS.get(key)
    if cached is not None and cached[0]() is student:
        return cached[1]
    photos = student.data.get("own_inputs")
    logits = [_logits(student.tensors.get(f"own_input_{i}"), ctx)
              for i in range(len(photos) if isinstance(photos, list) else 0)]
    _OWN_LOGITS[key] = (weakref.ref(student, lambda _: _OWN_LOGITS.pop(key, None)), logits)
    return logits


def own_predictions(student: Record, ctx: CheckContext) -> list[dict[str, Any] | None]:
    """Per photo, the trusted model's top-1 on the student's own preprocessing of it.

    ``{"index": int, "score": float}``, or None where no usable ``(1, 3, H, W)``
    (or ``(3, H, W)``) finite float tensor of at least 32x32 was recorded. The model's
    pass runs once per record, however many checks ask.
    """
    return [None if x is None else _top1(x) for x in _own_logits(student, ctx)]


def _logits(tensor: Any, ctx: CheckContext) -> torch.Tensor | None:
    if type(tensor) is not torch.Tensor or not tensor.is_floating_point():
        return None
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tuple(tensor.shape[:2]) != (1, 3) or min(tensor.shape[2:]) < 32 \
            or not bool(torch.isfinite(tensor).all()):
        return None
    with torch.inference_mode():
        return ctx.trusted_model()(tensor.float())[0].detach().clone()


def _top1(logits: torch.Tensor) -> dict[str, Any]:
    score, index = torch.softmax(logits, dim=0).max(dim=0)
    return {"index": int(index), "score": float(score)}


def _setup(reference: Record) -> dict[str, Any]:
    """The variant's models and label dicts, as the reference's record holds them (trusted)."""
    setup = reference.data.get("setup")
    if not isinstance(setup, dict) or not all(k in setup for k in (
            "perms", "label_sets", "calls", "batch")):
        raise CheckFailed("no reference set-up recorded (grader set-up problem)")
    return setup


def _own(student: Record, reference: Record, i: int, ctx: CheckContext, *,
         batch: bool = False) -> dict[str, Any] | None:
    """What the model and labels of call ``i`` (or of the batch's item ``i``) give on the
    student's own preprocessing of photo ``i``: ``{"index", "score", "label"}`` or None."""
    logits = _own_logits(student, ctx)
    if i >= len(logits) or logits[i] is None:
        return None
    setup = _setup(reference)
    m, lab = setup["batch"] if batch else setup["calls"][i % len(setup["calls"])]
    perm = torch.tensor(setup["perms"][m])
    own = _top1(logits[i][perm])
    own["label"] = setup["label_sets"][lab][own["index"]]
    return own


def _matches_own(got: Any, own: dict[str, Any] | None, *, score: bool) -> bool:
    """Whether ``got``'s index and label (or its score) equal ``own``, the prediction of the
    call's model and labels on the student's own preprocessing."""
    if own is None or _shape_problem(got):
        return False
    if score:
        value = _number(got.get("score"))
        return value is not None and abs(value - own["score"]) <= SCORE_ATOL
    index, _ = _index(got.get("index"))
    return index == own["index"] and _label_text(got) == own["label"]


def _same_index(got: Any, expected: Any) -> bool:
    """Whether ``got``'s index equals ``expected``'s (a result info or an own prediction)."""
    if not isinstance(expected, dict):
        return False
    index, _ = _index(got.get("index"))
    want = expected.get("index")
    want = want if type(want) is int else _index(want)[0]
    return index is not None and index == want


def check_top1_index(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    rows = _results(student, reference)
    failures, carried = [], 0
    for i, (name, got, ref) in enumerate(rows):
        call_problem = _call_problem(student, i)
        problem = call_problem or _compare(got, ref)
        if problem and not call_problem and _matches_own(got, _own(student, reference, i, ctx), score=False):
            problem, carried = None, carried + 1
        if problem:
            failures.append(f"{name}: {problem}")
    good = len(rows) - len(failures)
    note = f" ({carried} {ECF_NOTE})" if carried else ""
    if not failures:
        return passed(f"same top-1 class as the reference on all {good} photos{note}")
    return partial(good / len(rows), f"{good} of {len(rows)} photos right{note}; " +
                   "; ".join(failures[:2]))


def check_top1_score(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    rows = _results(student, reference)
    failures, carried = [], 0
    for i, (name, got, ref) in enumerate(rows):
        problem = _call_problem(student, i) or _shape_problem(got)
        if problem is None:
            score, ref_score = _number(got.get("score")), _number(ref.get("score"))
            if score is None:
                info = got.get("score") or {}
                problem = (f"score is {info.get('type')} "
                           f"{info.get('value', info.get('shape', ''))}; return one softmax "
                           "probability as a float")
            elif not 0.0 <= score <= 1.0:
                problem = (f"score {score:.4g} is not a probability; apply "
                           "F.softmax(output, dim=1) before taking the top-1")
            elif ref_score is None or abs(score - ref_score) > SCORE_ATOL:
                own = _own(student, reference, i, ctx)
                if _matches_own(got, own, score=True) and _same_index(got, own):
                    carried += 1
                else:
                    problem = (f"score {score:.6f}, the reference's {ref_score:.6f} "
                               f"(tolerance {SCORE_ATOL:g}); softmax over dim=1 of the logits")
            elif not _same_index(got, ref) and not _same_index(
                    got, _own(student, reference, i, ctx)):
                problem = ("the score is right but the index is not the reference's class; "
                           "the score pays with the class of the model you were given")
        if problem:
            failures.append(f"{name}: {problem}")
    good = len(rows) - len(failures)
    note = f" ({carried} {ECF_NOTE})" if carried else ""
    if not failures:
        return passed(f"top-1 scores match the reference within {SCORE_ATOL:g} on {good} "
                      f"photos{note}")
    return partial(good / len(rows), f"{good} of {len(rows)} photos right{note}; " +
                   "; ".join(failures[:2]))


def check_return_types(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    rows = _results(student, reference)
    notes: set[str] = set()
    for i, (name, got, _) in enumerate(rows):
        problem = _call_problem(student, i) or _shape_problem(got)
        if problem:
            raise CheckFailed(f"{name}: {problem}")
        label, index, score = got.get("label") or {}, got.get("index") or {}, \
            got.get("score") or {}
        if label.get("type") != "builtins.str":
            raise CheckFailed(f"{name}: label is {label.get('type')}; return labels[index] "
                              "(a str)")
        if index.get("type") == "torch.Tensor" and index.get("shape") == [] and \
                index.get("dtype") in INTEGER_DTYPES:
            notes.add("index is a 0-d tensor (accepted, as the handout's postprocess returns "
                      "it); the docstring asks for int: return int(index)")
        elif index.get("type") != "builtins.int":
            shape = f" of shape {index.get('shape')}" if "shape" in index else ""
            raise CheckFailed(f"{name}: index is {index.get('type')}{shape}; return "
                              "int(index)")
        if score.get("type") != "builtins.float":
            shape = f" of shape {score.get('shape')}" if "shape" in score else ""
            raise CheckFailed(f"{name}: score is {score.get('type')}{shape}; return "
                              "score.item() (a float)")
    if not check_top1_index(student, reference, ctx).passed:
        raise CheckFailed("(str, int, float) returned, but the return types pay once predict "
                          "returns the right class for every photo (see top1_index)")
    if notes:
        return passed("(str, index, float); " + "; ".join(sorted(notes)))
    return passed("returns (str, int, float)")


def check_batch(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    ref_batch = reference.data.get("batch") or {}
    refs = ref_batch.get("items")
    names = reference.data.get("photos")
    if not isinstance(refs, list) or not isinstance(names, list) or len(refs) != len(names):
        raise CheckFailed("no reference batch recorded (grader set-up problem)")
    require_call(student, "predict_batch", POINTER_BATCH)
    batch = student.data.get("batch") or {}
    if batch.get("type") not in ("builtins.list", "builtins.tuple"):
        raise CheckFailed(f"predict_batch returned {batch.get('type')}; return a list with one "
                          "(label, index, score) per image")
    items = batch.get("items") or []
    if batch.get("length") != len(refs):
        raise CheckFailed(f"predict_batch returned {batch.get('length')} results for "
                          f"{len(refs)} images; return one (label, index, score) per image")
    problems = []
    for i, (item, ref) in enumerate(zip(items, refs, strict=False)):
        problem = _compare(item, ref)
        if problem is None:
            score, ref_score = _number(item.get("score")), _number(ref.get("score"))
            if score is None or ref_score is None or abs(score - ref_score) > SCORE_ATOL:
                problem = f"score {score}, the reference's {ref_score}"
        if problem:
            own = _own(student, reference, i, ctx, batch=True)
            if _matches_own(item, own, score=False) and _matches_own(item, own, score=True):
                problem = None
        if problem:
            problems.append(f"predict_batch result {i} ({names[i]}): {problem}")
    if problems:
        if _is_permutation(items, refs):
            raise CheckFailed("predict_batch returns the right results in the wrong order; "
                              "return one result per image, in input order")
        raise CheckFailed(problems[0])
    rows = batch.get("forward_rows")
    if rows != [len(refs)]:
        passes = len(rows) if isinstance(rows, list) else 0
        raise CheckFailed(
            f"predict_batch ran {passes} forward passes through the model it was given "
            f"(rows per pass: {rows}); stack the {len(refs)} preprocessed images into one "
            f"({len(refs)}, 3, 224, 224) batch and call model(batch) once")
    return passed(f"{len(refs)} results in input order from one forward pass of "
                  f"{len(refs)} rows, equal to the reference's")


def _matches(item: Any, ref: Any) -> bool:
    if _compare(item, ref) is not None:
        return False
    score, ref_score = _number(item.get("score")), _number(ref.get("score"))
    return score is not None and ref_score is not None and abs(score - ref_score) <= SCORE_ATOL


def _is_permutation(items: list[Any], refs: list[Any]) -> bool:
    """True when every result equals the reference of some other image, each used once."""
    unused = list(range(len(refs)))
    for item in items:
        match = next((j for j in unused if _matches(item, refs[j])), None)
        if match is None:
            return False
        unused.remove(match)
    return not unused


CHECKS = {
    "top1_index": check_top1_index,
    "top1_score": check_top1_score,
    "return_types": check_return_types,
    "batch": check_batch,
}
