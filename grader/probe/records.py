"""Records: the plain data a probe takes from an implementation under test.

A record is the boundary between untrusted and trusted code. It holds JSON
(``data``) and CPU tensors (``tensors``), nothing else: tensors are stored with
safetensors, the rest as JSON, never pickle. Loading validates sizes, types
and nesting, so a record written by a hostile process can only fail its own
task, never the grader.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grader.errors import RecordError
from grader.files import atomic_write

# Caps on what a record may hold; a record beyond them is refused as a whole.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_TENSOR_BYTES = 96 * 1024 * 1024
MAX_TENSORS = 512
MAX_TENSOR_ELEMENTS = 8 * 1024 * 1024
MAX_JSON_DEPTH = 24
MAX_STRING = 64 * 1024
MAX_ITEMS = 10_000  # per list, tuple or dict in plain()
ALLOWED_DTYPES = frozenset(
    {torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool}
)


@dataclass
class Record:
    """Plain data recorded for one task.

    ``data`` is JSON-serialisable (dict/list/str/int/float/bool/None, finite
    floats only — non-finite values are stored as strings "nan", "inf", "-inf"
    by :func:`plain`); ``tensors`` maps names to contiguous CPU tensors.
    """

    task: str
    data: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def tensor(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)

    def save(self, directory: Path, *, tensors: bool = True) -> None:
        """Write ``<task>.json`` and ``<task>.safetensors`` atomically into ``directory``.

        ``tensors=False`` rewrites the JSON only (a checkpoint whose tensors are already saved).
        """
        from safetensors.torch import save as save_tensors

        directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"task": self.task, "data": self.data}, allow_nan=False)
        if tensors:
            plain = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
            atomic_write(directory / f"{self.task}.safetensors", save_tensors(plain))
        atomic_write(directory / f"{self.task}.json", payload.encode())

    @classmethod
    def load(cls, directory: Path, task: str) -> Record:
        """Read and validate a record written by :meth:`save`.

        Raises:
            RecordError: missing files, caps exceeded, bad JSON, disallowed dtypes.
        """
        json_path = directory / f"{task}.json"
        st_path = directory / f"{task}.safetensors"
        if not json_path.is_file():
            raise RecordError(f"no record for task {task!r} (the probe wrote nothing)")
        if json_path.stat().st_size > MAX_JSON_BYTES:
            raise RecordError(f"record {json_path.name} is over {MAX_JSON_BYTES} bytes")
        try:
            raw = json.loads(json_path.read_bytes(), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"record {json_path.name} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("task") != task or not isinstance(
            raw.get("data"), dict
        ):
            raise RecordError(f"record {json_path.name} does not hold task {task!r}")
        _validate_json(raw["data"], depth=0)
        tensors = load_tensors(st_path) if st_path.exists() else {}
        return cls(task=task, data=raw["data"], tensors=tensors)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, validated against the caps.

    Raises:
        RecordError: truncated or malformed file, too many/too large tensors,
            disallowed dtype.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    if path.stat().st_size > MAX_TENSOR_BYTES:
        raise RecordError(f"{path.name} is over {MAX_TENSOR_BYTES} bytes")
    data = path.read_bytes()
    _check_safetensors_header(data, path.name)
    try:
        tensors = load_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise RecordError(f"{path.name} is not a valid safetensors file: {exc}") from exc
    for name, tensor in tensors.items():
        if tensor.dtype not in ALLOWED_DTYPES:
            raise RecordError(f"{path.name}: tensor {name!r} has disallowed dtype {tensor.dtype}")
    return tensors


def _check_safetensors_header(data: bytes, name: str) -> None:
    # Validate the header ourselves before safetensors allocates anything.
    if len(data) < 8:
        raise RecordError(f"{name} is truncated ({len(data)} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > min(len(data) - 8, 1024 * 1024):
        raise RecordError(f"{name} has a header of {header_len} bytes, beyond the file")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError as exc:
        raise RecordError(f"{name} has a malformed header: {exc}") from exc
    if not isinstance(header, dict):
        raise RecordError(f"{name} has a malformed header")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if len(entries) > MAX_TENSORS:
        raise RecordError(f"{name} holds {len(entries)} tensors (cap {MAX_TENSORS})")
    for key, entry in entries.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and d >= 0 for d in shape
        ):
            raise RecordError(f"{name}: tensor {key!r} has a malformed shape")
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            raise RecordError(
                f"{name}: tensor {key!r} has {math.prod(shape)} elements "
                f"(cap {MAX_TENSOR_ELEMENTS})"
            )


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-finite number {token} in JSON")


def _validate_json(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise RecordError(f"record nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError("record has a non-string key")
            _validate_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _validate_json(v, depth + 1)
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise RecordError(f"record holds a string of {len(value)} characters")
    elif not (value is None or isinstance(value, bool | int | float)):
        raise RecordError(f"record holds a {type(value).__name__}")


def plain(value: Any, *, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` built only from exact builtin types.

    Subclasses of builtins (a ``str`` subclass with a lying ``__eq__``) are
    copied into the builtin type; anything else becomes a short description
    ``{"unsupported": "<type name>"}``. Non-finite floats become strings.
    """
    if depth > MAX_JSON_DEPTH:
        return {"unsupported": "nesting too deep"}
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        f = float.__float__(value)
        return f if math.isfinite(f) else str(f)
    if isinstance(value, str):
        return str.__str__(str.__getitem__(value, slice(0, MAX_STRING)))
    # Only the first MAX_ITEMS are copied: never list(value) first, which copies all of a
    # 2**28-element list (2 GB, ~10 s), nor the subclass's own (possibly lying) iterator.
    if isinstance(value, list):
        return [plain(v, depth=depth + 1) for v in list.__getitem__(value, slice(0, MAX_ITEMS))]
    if isinstance(value, tuple):
        return [plain(v, depth=depth + 1) for v in tuple.__getitem__(value, slice(0, MAX_ITEMS))]
    if isinstance(value, dict):
        return {
            str.__str__(k) if isinstance(k, str) else repr(type(k).__name__): plain(
                v, depth=depth + 1
            )
            for k, v in itertools.islice(dict.items(value), MAX_ITEMS)
        }
    return {"unsupported": type_name(value)}


def type_name(value: Any) -> str:
    """``module.QualName`` of ``value``'s real type (``type()``, not ``__class__``)."""
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


