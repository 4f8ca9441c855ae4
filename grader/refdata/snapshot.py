"""A syrupy extension for records: compact, readable summaries compared with a tolerance.

syrupy compares serialized text exactly; floats computed on another CPU or
library build differ in the last bits. This extension stores a summary of a
record (shapes, rounded statistics, a small downsampled map per tensor, the
JSON facts without timings) as JSON and overrides only the comparison:
numbers match within ``REL_TOL``/``ABS_TOL``, everything else exactly.
Snapshots are kept per weights id, so stand-in snapshots live in the repository
and an instructor with the real weights adds theirs with ``--snapshot-update``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from syrupy.extensions.json import JSONSnapshotExtension

from grader.probe.records import Record

REL_TOL = 2e-3
ABS_TOL = 2e-4
# Facts that depend on the machine (timings, font and Graphviz builds) rather than on the
# implementation.
VOLATILE_KEYS = frozenset(
    {"seconds", "traceback", "pixel_std", "size", "path", "bytes", "width", "height"}
)
RENDERED_SUFFIXES = ("_png", "_thumbnail")
# Text stored as bytes whose content varies run to run: torchviz names DOT nodes by id().
VOLATILE_TENSORS = frozenset({"graph_source"})
MAP_SIDE = 4


def summarize_record(record: Record) -> dict[str, Any]:
    """Summary of a record for a snapshot: JSON facts without volatile keys, tensor stats."""
    tensors = {}
    for name in sorted(record.tensors):
        tensor = record.tensors[name]
        if name.endswith(RENDERED_SUFFIXES):
            tensors[name] = {"rendered": True}  # pixels differ by font build: facts suffice
            continue
        if name in VOLATILE_TENSORS:
            tensors[name] = {"volatile": True}
            continue
        tensors[name] = summarize_tensor(tensor)
    return {"task": record.task, "data": _strip(record.data), "tensors": tensors}


def summarize_tensor(tensor: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, rounded statistics and, for maps, a ``MAP_SIDE`` x ``MAP_SIDE`` thumbnail."""
    t = tensor.detach().double()
    summary: dict[str, Any] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype)}
    if t.numel() == 0:
        return summary
    summary.update(
        mean=_round(t.mean()), std=_round(t.std()) if t.numel() > 1 else 0.0,
        min=_round(t.min()), max=_round(t.max()), abs_sum=_round(t.abs().sum()),
    )
    if t.ndim >= 2 and min(t.shape[-2:]) >= MAP_SIDE:
        plane = t.reshape(-1, *t.shape[-2:]).mean(dim=0)
        pooled = torch.nn.functional.adaptive_avg_pool2d(plane[None, None], MAP_SIDE)[0, 0]
        summary["map"] = [[_round(v) for v in row] for row in pooled]
    return summary


def _round(value: Any) -> float:
    v = float(value)
    if not math.isfinite(v) or v == 0.0:
        return v if math.isfinite(v) else str(v)
    return float(f"{v:.6g}")


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float):
        return _round(value)
    return value


def approx_equal(a: Any, b: Any, *, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
    """Structural equality where numbers (not bools) may differ by ``abs_ + rel * |b|``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= abs_ + rel * abs(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], rel=rel, abs_=abs_) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        return all(approx_equal(x, y, rel=rel, abs_=abs_) for x, y in zip(a, b, strict=True))
    return a == b


class RecordSnapshotExtension(JSONSnapshotExtension):
    """JSON snapshots of record summaries, compared with :func:`approx_equal`."""

    weights_id = "standin-v2"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def matches(self, *, serialized_data: Any, snapshot_data: Any) -> bool:
        try:
            return approx_equal(json.loads(serialized_data), json.loads(snapshot_data))
        except (TypeError, ValueError):
            return False

    @classmethod
    def dirname(cls, *, test_location) -> str:
        # One folder per weights id: __snapshots__/<weights id>/<test file>/
        base = Path(test_location.filepath).parent / "__snapshots__" / cls.weights_id
        return str(base / test_location.basename)


def extension_for(weights_id: str) -> type[RecordSnapshotExtension]:
    """The snapshot extension whose files live under this weights id's folder."""
    return type(f"RecordSnapshot_{weights_id.replace('-', '_')}", (RecordSnapshotExtension,),
                {"weights_id": weights_id})
