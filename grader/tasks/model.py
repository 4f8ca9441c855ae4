"""Task 1: the pretrained ResNet-34 and the ImageNet labels.

Probe
    ``load_model()`` is called once (no forward pass, so nothing it returns can
    change), with the resolved weights activated so ``IMAGENET1K_V1`` loads
    offline. Recorded: the model's exact type, per stage (``layer1``..``layer4``)
    its block count and block types, the ``fc`` layer's out features, and
    :func:`grader.probe.probing.model_facts` (modules in training mode, hooks, the
    sha256 of the state dict). ``load_model(torch.device("meta"))`` is called once
    more; recorded: the devices of its parameters and buffers and its modules in
    training mode. ``load_labels()`` is called once, and ``load_labels(path)`` once
    per label file of the variant (:func:`label_files`, written to the scratch
    folder); recorded per dict: count, key types, labels 0 and 159 and every label
    in the grader's normalized form (plus its hash).

Parameters probed, and why each value separates right from wrong
    - ``device``: the default (``"cpu"``) and ``"meta"``, a device every machine has
      and a model ignoring ``device`` is not on;
    - ``path``: ``None`` (torchvision's names), and two files holding torchvision's
      1000 names each in an order of its own drawn from the variant's stream, with
      made-up WordNet ids, the second with its keys listed out of order. Ignoring the
      file (torchvision's names), reading the ids (``v[0]``), enumerating the values
      instead of reading the keys, caching the first file, or returning the practice
      files' names in the graded variant each get hundreds of names wrong. Each file
      is compared name by name with the reference's reading of it.

Why these small probes still catch the mistakes (tests/harness/tasks/test_model_checks.py):
    - missing ``.eval()``: ``model_facts`` lists every module still training;
    - ``device`` ignored: the second model's tensors are on the CPU (half of eval_mode);
    - ``resnet18`` / ``resnet50``: block counts ``[2, 2, 2, 2]`` / block type
      ``Bottleneck`` differ from ResNet-34's ``[3, 4, 6, 3]`` ``BasicBlock``;
    - ``weights=None``: the state-dict digest differs from the trusted model's,
      which the check recomputes itself (never trusting a digest the probe
      copied from the reference);
    - shifted or wrong labels: indices 0 and 159 and the normalized list; a wrong
      ``path`` reading: the label files (half of labels).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any

import torch

from grader.check.checking import CheckContext, CheckFailed, Outcome, partial, passed, require_call
from grader.probe.probing import ProbeContext, call, model_facts, new_record, state_digest
from grader.probe.records import Record, plain, type_name
from grader.refdata.weights import activated

RESNET_TYPE = "torchvision.models.resnet.ResNet"
BASIC_BLOCK = "torchvision.models.resnet.BasicBlock"
RESNET34_BLOCKS = [3, 4, 6, 3]
STAGES = ("layer1", "layer2", "layer3", "layer4")
N_CLASSES = 1000
KNOWN_LABELS = {0: "tench", 159: "Rhodesian ridgeback"}
# The second device load_model(device) is called with: present on every machine, and a
# model that ignores `device` stays on the CPU.
OTHER_DEVICE = "meta"
MAX_LABEL_CHARS = 200
# Labels that may differ from torchvision's names (after normalization) and still pass:
# a student may read names from another source; a shifted list fails indices 0 / 159.
MAX_LABEL_DIFFERENCES = 20
POINTER_MODEL = "Task 1: load_model in model.py"
POINTER_LABELS = "Task 1: load_labels in model.py"


def normalize_label(name: str) -> str:
    """The grader's own copy of the template's rule: ``"Rhodesian_ridgeback"`` and
    ``"Rhodesian ridgeback"`` both become ``"rhodesian ridgeback"``."""
    return " ".join(name.replace("_", " ").split()).casefold()


def _is_torch_module(value: Any) -> bool:
    """True for nn.Module instances whose class comes from torch/torchvision itself.

    Only such objects have methods the probe may call; a student's own subclass could
    override ``named_modules`` or ``state_dict`` to report anything.
    """
    cls = type(value)
    if not issubclass(cls, torch.nn.Module) or cls.__module__.split(".")[0] not in (
            "torch", "torchvision"):
        return False
    # A class can claim any __module__; the real one is reachable under its name.
    home = sys.modules.get(cls.__module__)
    return home is not None and getattr(home, cls.__qualname__, None) is cls


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("model")
    record = new_record("model")
    with activated(ctx.weights):
        model = call(record, "load_model", mod.load_model)
    if record.data["calls"]["load_model"]["ok"]:
        record.data["model"] = _safely(_model_info, model)
    del model
    with activated(ctx.weights):
        model = call(record, "load_model_device", mod.load_model, torch.device(OTHER_DEVICE))
    if record.data["calls"]["load_model_device"]["ok"]:
        record.data["model_device"] = _safely(_device_info, model)
    del model

    labels = call(record, "load_labels", mod.load_labels)
    if record.data["calls"]["load_labels"]["ok"]:
        record.data["labels"] = _safely(_labels_info, labels)

    record.data["label_files"] = []
    for i, raw in enumerate(label_files(ctx.settings.rng("model"))):
        path = ctx.scratch / f"model_labels_{i}.json"
        path.write_text(json.dumps(raw), encoding="utf-8")
        record.data["label_files"].append(path.name)
        labels = call(record, f"load_labels_path_{i}", mod.load_labels, str(path))
        if record.data["calls"][f"load_labels_path_{i}"]["ok"]:
            record.data[f"labels_path_{i}"] = _safely(_labels_info, labels)
    return record


def label_files(rng: random.Random) -> list[dict[str, list[str]]]:
    """The variant's two label files, in the handout's format (``{"0": [wnid, name], ...}``).

    Each holds torchvision's 1000 names in an order of its own drawn from the variant's
    stream (underscore style, as the handout's file), with made-up WordNet ids: a
    ``load_labels`` that ignores ``path`` (torchvision's names), reads the ids instead of
    the names, or caches the first file it read gets most of the 1000 entries wrong. The
    second file lists its keys in a shuffled order, so enumerating the file's values
    instead of reading its keys fails too.
    """
    from torchvision.models import ResNet34_Weights

    categories = [c.replace(" ", "_") for c in ResNet34_Weights.IMAGENET1K_V1.meta["categories"]]
    files = []
    for shuffle_keys in (False, True):
        names = categories[:]
        rng.shuffle(names)
        keys = list(range(N_CLASSES))
        if shuffle_keys:
            rng.shuffle(keys)
        files.append({str(k): [f"n{rng.randrange(10**8):08d}", names[k]] for k in keys})
    return files


def _safely(describe: Any, value: Any) -> dict[str, Any]:
    """``describe(value)``, or the error as data (e.g. a model on the meta device)."""
    try:
        return describe(value)
    except Exception as exc:  # noqa: BLE001 - a returned object must not crash the probe
        return {"type": type_name(value), "error": f"{type(exc).__name__}: {exc}"[:300]}


def _model_info(model: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type_name(model), "torch_module": _is_torch_module(model)}
    if not info["torch_module"]:
        return info
    modules = dict(torch.nn.Module.named_modules(model))
    stages = []
    for name in STAGES:
        stage = modules.get(name)
        if stage is None:
            stages.append(None)
            continue
        children = list(torch.nn.Module.children(stage))
        stages.append({"blocks": len(children), "block_types": sorted(
            {type_name(c) for c in children})})
    info["stages"] = stages
    fc = modules.get("fc")
    info["fc"] = {"type": type_name(fc), "out_features": plain(getattr(fc, "out_features", None))
                  if type(fc) is torch.nn.Linear else None}
    info["facts"] = model_facts(model)
    return info


def _device_info(model: Any) -> dict[str, Any]:
    """Where the model of ``load_model(device)`` lives: the devices of its tensors."""
    info: dict[str, Any] = {"type": type_name(model), "torch_module": _is_torch_module(model)}
    if not info["torch_module"]:
        return info
    tensors = [*torch.nn.Module.parameters(model), *torch.nn.Module.buffers(model)]
    info["devices"] = sorted({str(t.device.type) for t in tensors if type(t) in (
        torch.Tensor, torch.nn.Parameter)})
    info["n_tensors"] = len(tensors)
    info["n_training_modules"] = sum(
        1 for _, m in torch.nn.Module.named_modules(model) if m.training)
    return info


def _labels_info(labels: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type_name(labels)}
    if type(labels) is not dict:
        return info
    items = list(dict.items(labels))
    info["count"] = len(items)
    info["key_types"] = sorted({type_name(k) for k, _ in items})[:10]
    info["keys_are_int"] = all(type(k) is int for k, _ in items)
    by_index = {int.__index__(k): v for k, v in items if type(k) is int}
    info["keys_0_to_999"] = sorted(by_index) == list(range(N_CLASSES))
    values = {}
    for index in KNOWN_LABELS:
        value = by_index.get(index)
        values[str(index)] = plain(value)[:MAX_LABEL_CHARS] if isinstance(value, str) else {
            "unsupported": type_name(value)}
    info["known"] = values
    normalized = [
        normalize_label(str.__str__(v))[:MAX_LABEL_CHARS] if isinstance(v, str) else None
        for v in (by_index.get(i) for i in range(N_CLASSES))
    ]
    info["normalized"] = normalized
    info["normalized_sha256"] = _labels_hash(normalized)
    return info


def _labels_hash(normalized: list[str | None]) -> str:
    text = "\n".join("\0" if v is None else v for v in normalized)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _expected_labels() -> list[str]:
    from torchvision.models import ResNet34_Weights

    return [normalize_label(c) for c in ResNet34_Weights.IMAGENET1K_V1.meta["categories"]]


# --------------------------------------------------------------------------- checks


def _model(student: Record) -> dict[str, Any]:
    require_call(student, "load_model", POINTER_MODEL)
    info = student.data.get("model")
    if not isinstance(info, dict):
        raise CheckFailed(f"{POINTER_MODEL}: nothing was recorded about the returned model")
    if info.get("error"):
        raise CheckFailed(f"{POINTER_MODEL}: the returned model could not be inspected "
                          f"({info['error']}); return models.resnet34(...) on the CPU")
    if not info.get("torch_module"):
        raise CheckFailed(
            f"{POINTER_MODEL}: returned {info.get('type')}; return the torchvision model "
            "itself (models.resnet34(weights=...))"
        )
    return info


def check_architecture(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    info = _model(student)
    got_type = info.get("type")
    stages = info.get("stages") or []
    blocks = [s.get("blocks") if isinstance(s, dict) else None for s in stages]
    block_types = sorted({t for s in stages if isinstance(s, dict)
                          for t in s.get("block_types", [])})
    fc = info.get("fc") or {}
    if got_type != RESNET_TYPE:
        raise CheckFailed(f"load_model returned {got_type}; use models.resnet34")
    if blocks != RESNET34_BLOCKS or block_types != [BASIC_BLOCK]:
        kinds = ", ".join(t.rsplit(".", 1)[-1] for t in block_types) or "no blocks"
        raise CheckFailed(
            f"got ResNet with blocks {blocks} of {kinds}; use models.resnet34 "
            f"(blocks {RESNET34_BLOCKS} of BasicBlock)"
        )
    if fc.get("out_features") != N_CLASSES:
        raise CheckFailed(
            f"the final layer fc is {fc.get('type')} with out_features "
            f"{fc.get('out_features')}; keep torchvision's fc with {N_CLASSES} classes"
        )
    return passed("torchvision ResNet-34: blocks [3, 4, 6, 3] of BasicBlock, 1000 classes")


def check_eval_mode(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    facts = _model(student).get("facts") or {}
    count = facts.get("n_training_modules")
    if not isinstance(count, int):
        raise CheckFailed(f"{POINTER_MODEL}: the model's mode could not be recorded")
    if count:
        names = ", ".join(map(str, (facts.get("training_modules") or [])[:4]))
        raise CheckFailed(
            f"{count} modules are in training mode (e.g. {names}); call model.eval() "
            "before returning the model"
        )
    problem = _device_problem(student)
    if problem:
        return partial(0.5, f"every module is in eval mode; but {problem}")
    return passed(f"every module is in eval mode; load_model({OTHER_DEVICE!r}) puts the model "
                  f"on {OTHER_DEVICE!r}")


def _device_problem(student: Record) -> str | None:
    """What is wrong with ``load_model(torch.device("meta"))``'s model; None when it is right."""
    what = f"load_model(torch.device({OTHER_DEVICE!r}))"
    try:
        require_call(student, "load_model_device", what)
    except CheckFailed as exc:
        return str(exc)
    info = student.data.get("model_device")
    if not isinstance(info, dict) or info.get("error") or not info.get("torch_module"):
        got = info.get("type") if isinstance(info, dict) else "nothing"
        return f"{what} returned {got}; return the torchvision model on `device`"
    devices = info.get("devices")
    if devices != [OTHER_DEVICE] or not info.get("n_tensors"):
        return (f"{what} returned a model on {devices}; move it to the `device` argument "
                "(model.to(device))")
    if info.get("n_training_modules"):
        return f"{what} returned a model in training mode; call model.eval()"
    return None


_DIGESTS: dict[str, str] = {}


def trusted_digest(ctx: CheckContext) -> str:
    """State-dict digest of the trusted model, computed by the grader (memoised per weights)."""
    key = ctx.weights.sha256
    if key not in _DIGESTS:
        _DIGESTS[key] = state_digest(ctx.trusted_model())
    return _DIGESTS[key]


def check_weights(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    facts = _model(student).get("facts") or {}
    digest = facts.get("weights_sha256")
    if digest != trusted_digest(ctx):
        raise CheckFailed(
            "load IMAGENET1K_V1 weights; got different weights (did you use weights=None "
            "or DEFAULT?) — models.resnet34(weights=models.ResNet34_Weights.IMAGENET1K_V1)"
        )
    return passed(f"weights equal the resolved IMAGENET1K_V1 weights ({ctx.weights.id})")


def _label_basics(info: Any, what: str) -> list[str]:
    """What is wrong with the form of one recorded label dict (type, count, int keys)."""
    if not isinstance(info, dict):
        return [f"{what}: nothing recorded"]
    if info.get("error"):
        return [f"{what} could not be read ({info['error']})"]
    if info.get("type") != "builtins.dict":
        return [f"{what} returned {info.get('type')}; return a dict[int, str]"]
    problems = []
    if info.get("count") != N_CLASSES:
        problems.append(f"{what} has {info.get('count')} entries, expected {N_CLASSES}")
    if not info.get("keys_are_int"):
        problems.append(f"{what} has keys of type {info.get('key_types')}; convert them "
                        "with int(k)")
    elif not info.get("keys_0_to_999"):
        problems.append(f"{what}: keys must be 0..999")
    return problems


def _differences(normalized: Any, expected: list[str], what: str, source: str) -> list[str]:
    if not isinstance(normalized, list) or len(normalized) != N_CLASSES:
        return [f"{what}: its labels could not be recorded"]
    diffs = [i for i, (a, b) in enumerate(zip(normalized, expected, strict=True)) if a != b]
    if len(diffs) > MAX_LABEL_DIFFERENCES:
        i = diffs[0]
        return [f"{what}: {len(diffs)} labels differ from {source} (first: [{i}] is "
                f"{normalized[i]!r}, expected {expected[i]!r})"]
    return []


def _label_problems(info: Any, expected: list[str], what: str) -> list[str]:
    """What is wrong with ``load_labels()``'s dict; [] when it is right."""
    problems = _label_basics(info, what)
    if problems:
        return problems
    known = info.get("known") or {}
    for index, name in KNOWN_LABELS.items():
        got = known.get(str(index))
        if not isinstance(got, str) or normalize_label(got) != normalize_label(name):
            problems.append(f"{what}[{index}] is {got!r}, expected {name!r}")
    if not problems:
        problems = _differences(info.get("normalized"), expected, what, "ImageNet's class names")
    return problems


def _file_problems(student: Record, reference: Record) -> list[str]:
    """What is wrong with ``load_labels(path)`` on the variant's label files; [] when right.

    Compared name by name with the reference's reading of the same files.
    """
    files = reference.data.get("label_files")
    if not isinstance(files, list) or not files:
        raise CheckFailed("no reference label files recorded (grader set-up problem)")
    for i, name in enumerate(files):
        what = f"load_labels(path) with the label file {name}"
        try:
            require_call(student, f"load_labels_path_{i}", f"Task 1: {what} in model.py")
        except CheckFailed as exc:
            return [str(exc)]
        expected = (reference.data.get(f"labels_path_{i}") or {}).get("normalized")
        if not isinstance(expected, list) or len(expected) != N_CLASSES:
            raise CheckFailed("no reference labels recorded (grader set-up problem)")
        info = student.data.get(f"labels_path_{i}")
        problems = _label_basics(info, what) or _differences(
            info.get("normalized"), expected, what,
            "the file's names (read the file at `path`: {int(k): v[1] for k, v in ...})")
        if problems:
            return problems
    return []


def check_labels(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    """Half for ``load_labels()``, half for ``load_labels(path)`` reading every label file
    of the variant right (names in an order torchvision's list does not have)."""
    calls = student.data.get("calls", {})
    if all(isinstance(calls.get(c), dict) and calls[c].get("not_implemented")
           for c in ("load_labels", "load_labels_path_0")):
        require_call(student, "load_labels", POINTER_LABELS)
    ok, messages = 0, []
    try:
        require_call(student, "load_labels", "Task 1: load_labels() in model.py")
        problems = _label_problems(student.data.get("labels"), _expected_labels(),
                                   "load_labels()")
    except CheckFailed as exc:
        problems = [str(exc)]
    if problems:
        messages.append("; ".join(problems[:3]))
    else:
        ok += 1
    problems = _file_problems(student, reference)
    if problems:
        messages.append("; ".join(problems[:3]))
    else:
        ok += 1
    if ok == 2:
        return passed("1000 labels with int keys; 0 -> tench, 159 -> Rhodesian ridgeback "
                      "without a label file, and every label file read name by name")
    return partial(ok / 2, "; ".join(messages))


CHECKS = {
    "architecture": check_architecture,
    "eval_mode": check_eval_mode,
    "weights": check_weights,
    "labels": check_labels,
}
