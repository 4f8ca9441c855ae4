"""Records: plain data in, validated plain data out; anything malformed is a RecordError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.probe.records import MAX_JSON_DEPTH, Record, RecordError, plain


def _saved(tmp_path: Path) -> Record:
    record = Record("demo", data={"calls": {"f": {"ok": True}}, "x": [1, 2.5, "s"]},
                    tensors={"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])})
    record.save(tmp_path)
    return record


def test_roundtrip_keeps_data_and_tensors(tmp_path: Path) -> None:
    record = _saved(tmp_path)
    loaded = Record.load(tmp_path, "demo")
    assert loaded.data == record.data
    assert set(loaded.tensors) == {"a", "b"}
    assert torch.equal(loaded.tensors["a"], record.tensors["a"])


def test_missing_record_says_the_probe_wrote_nothing(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="wrote nothing"):
        Record.load(tmp_path, "demo")


def test_record_of_another_task_is_refused(tmp_path: Path) -> None:
    _saved(tmp_path)
    (tmp_path / "other.json").write_text((tmp_path / "demo.json").read_text())
    with pytest.raises(RecordError, match="does not hold task 'other'"):
        Record.load(tmp_path, "other")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b'{"task": "demo", "data": {"x": NaN}}', id="nan"),
        pytest.param(b'{"task": "demo", "data": [1]}', id="data-not-a-dict"),
        pytest.param(json.dumps({"task": "demo", "data": {"x": "y" * 70_000}}).encode(),
                     id="huge-string"),
        pytest.param(
            ('{"task": "demo", "data": {"x": ' + "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5)
             + "}}").encode(), id="deep-nesting"),
        pytest.param(('{"task": "demo", "data": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}").encode(),
                     id="recursion-bomb"),
    ],
)
def test_bad_json_is_a_record_error(tmp_path: Path, payload: bytes) -> None:
    (tmp_path / "demo.json").write_bytes(payload)
    with pytest.raises(RecordError):
        Record.load(tmp_path, "demo")


def _header(entries: dict) -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x05\x00", id="truncated-length"),
        pytest.param(struct.pack("<Q", 10**12) + b"{}", id="header-beyond-file"),
        pytest.param(_header({"a": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4]}})
                     + b"\x00" * 4, id="huge-shape"),
        pytest.param(_header({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})
                     + b"\x00" * 4, id="negative-shape"),
        pytest.param(_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
                     + b"\x00" * 4, id="data-truncated"),
        pytest.param(_header({"a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})
                     + b"\x00" * 4, id="disallowed-dtype"),
        pytest.param(_header([1, 2]), id="header-not-a-dict"),
    ],
)
def test_bad_safetensors_is_a_record_error(tmp_path: Path, content: bytes) -> None:
    _saved(tmp_path)
    (tmp_path / "demo.safetensors").write_bytes(content)
    with pytest.raises(RecordError):
        Record.load(tmp_path, "demo")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=400), junk=st.binary(max_size=64))
def test_any_truncated_or_garbled_tensor_file_fails_cleanly(tmp_path: Path, cut: int, junk: bytes) -> None:
    _saved(tmp_path)
    path = tmp_path / "demo.safetensors"
    original = path.read_bytes()
    path.write_bytes(original[:cut] + junk)
    try:
        record = Record.load(tmp_path, "demo")
    except RecordError:
        return
    # It loaded: then it is plain tensors of allowed kinds, nothing else.
    assert all(type(t) is torch.Tensor for t in record.tensors.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300))
def test_any_garbled_json_fails_cleanly(tmp_path: Path, payload: bytes) -> None:
    (tmp_path / "demo.json").write_bytes(payload)
    try:
        Record.load(tmp_path, "demo")
    except RecordError:
        pass


class _LyingStr(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def test_plain_copies_subclasses_into_builtins() -> None:
    value = plain({"label": _LyingStr("tench"), "n": True, "x": float("nan")})
    assert type(value["label"]) is str and value["label"] != "anything else"
    assert value["n"] is True
    assert value["x"] == "nan"


def test_plain_refuses_arbitrary_objects() -> None:
    assert plain(object()) == {"unsupported": "builtins.object"}
