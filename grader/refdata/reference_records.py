"""The reference's records: probed once per (weights, library versions, probe code), cached.

Where they come from, in order:

1. the on-disk cache ``<cache_dir>/records/<key>/`` (``key`` below);
2. records shipped with a student release in ``grader/refdata/reference_records/<weights id>/``;
3. probing ``reference/`` (when it is importable) and filling the cache.

The cache key covers everything a record depends on: the weights, torch /
torchvision / captum / numpy versions, the probe settings and the grader's
probe code (a hash of its source files), so a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.errors import ReferenceUnavailable
from grader.paths import GRADER_DIR, SHIPPED_RECORDS_DIR
from grader.probe.records import Record, RecordError
from grader.refdata.weights import ResolvedWeights, cache_dir
from grader.settings import ProbeSettings
from grader.tasks import TASK_NAMES

SHIPPED_DIR = SHIPPED_RECORDS_DIR
# The hidden checks' probing (grader/hidden/, absent from a student release) counts too.
_PROBE_SOURCES = ("probe", "tasks", "hidden", "settings.py")


@dataclass(frozen=True)
class ReferenceRecords:
    records: dict[str, Record]
    source: str  # "cache", "shipped" or "probed"
    meta: dict

    def describe(self) -> str:
        """One line: which records the grade is compared with."""
        from grader.check.grading import library_versions

        m = self.meta
        versions = m.get("versions", {})
        line = (
            f"reference records: {m.get('weights_id')} (torch {versions.get('torch')}, "
            f"captum {versions.get('captum')}), built {m.get('created', '?')}, "
            f"from {self.source}"
        )
        if self.source == "shipped":
            differ = sorted(k for k, v in library_versions().items()
                            if k != "python" and k in versions and versions[k] != v)
            if differ:
                line += (f"; your {', '.join(differ)} differ(s) from the records' (they still "
                         "apply: the checks' tolerances absorb library differences)")
        return line


def probe_code_hash() -> str:
    """sha256 (12 hex) over the grader's probe code; any edit invalidates cached records."""
    root = GRADER_DIR
    h = hashlib.sha256()
    for name in _PROBE_SOURCES:
        path = root / name
        if name == "hidden" and not path.is_dir():
            continue  # a student release: grader/hidden/ is left out
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            h.update(file.relative_to(root).as_posix().encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:12]


def records_key(weights: ResolvedWeights, settings: ProbeSettings, device: str = "cpu") -> str:
    from grader.check.grading import library_versions

    payload = json.dumps(
        {"weights": weights.id, "sha": weights.sha256, "versions": library_versions(),
         "settings": settings.to_dict(), "device": device, "probe": probe_code_hash()},
        sort_keys=True,
    )
    return f"{weights.id}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def load_reference_records(
    weights: ResolvedWeights,
    settings: ProbeSettings,
    *,
    device: str = "cpu",
    rebuild: bool = False,
    allow_probe: bool = True,
) -> ReferenceRecords:
    """Reference records for ``weights`` and ``settings`` (see module docstring for the order).

    Raises:
        ReferenceUnavailable: none cached or shipped, and ``reference/`` cannot be probed.
    """
    key = records_key(weights, settings, device)
    folder = cache_dir() / "records" / key
    if not rebuild:
        loaded = _load_folder(folder)
        if loaded is not None:
            return ReferenceRecords(loaded[0], "cache", loaded[1])
        shipped = _load_folder(SHIPPED_DIR / weights.id)
        if shipped is not None and shipped[1].get("settings") == settings.to_dict():
            return ReferenceRecords(shipped[0], "shipped", shipped[1])
    if not allow_probe or not _reference_importable():
        raise ReferenceUnavailable(
            f"no reference records for {weights.id} with these settings, and the reference "
            "solution is not installed here"
        )
    records, meta = _probe_reference(weights, settings, device)
    _store(folder, records, meta)
    return ReferenceRecords(records, "probed", meta)


def reference_for(
    weights: ResolvedWeights,
    settings: ProbeSettings,
    *,
    device: str = "cpu",
    tasks: tuple[str, ...] = TASK_NAMES,
    notes: list[str] | None = None,
) -> tuple[ResolvedWeights, ReferenceRecords]:
    """The weights to grade with and the reference's records for ``settings``: the one path
    of ``pytest --impl``, ``lab3 grade`` and the Gradescope bundle.

    Records come from :func:`load_reference_records`; for some ``tasks`` only, without a
    cache, just those tasks are probed (not stored). A release may carry stand-in records
    only: other weights then fall back to the stand-in, with a line in ``notes``.

    Raises:
        ReferenceUnavailable: no records for the stand-in either, and reference/ is absent.
    """
    from grader.refdata.weights import activated, standin_weights

    try:
        with activated(weights):
            if set(tasks) == set(TASK_NAMES):
                return weights, load_reference_records(weights, settings, device=device)
            try:
                return weights, load_reference_records(weights, settings, device=device,
                                                       allow_probe=False)
            except ReferenceUnavailable:
                return weights, _probe_reference_tasks(weights, settings, device, tasks)
    except ReferenceUnavailable:
        if weights.kind == "standin":
            raise
    if notes is not None:
        notes.append(f"no reference records for {weights.id}; grading with the stand-in weights "
                     "instead")
    standin = standin_weights()
    with activated(standin):
        return standin, load_reference_records(standin, settings, device=device)


def _probe_reference_tasks(
    weights: ResolvedWeights, settings: ProbeSettings, device: str, tasks: tuple[str, ...]
) -> ReferenceRecords:
    """Reference records of some tasks only (not stored: the cache holds whole sets).

    Raises:
        ReferenceUnavailable: reference/ is not installed.
    """
    from grader.check.grading import library_versions

    if not _reference_importable():
        raise ReferenceUnavailable(f"no reference records for {weights.id}, and the reference "
                                   "solution is not installed here")
    records, _ = _probe_reference(weights, settings, device, tasks)
    meta = {"weights_id": weights.id, "versions": library_versions(),
            "settings": settings.to_dict(), "created": "now"}
    return ReferenceRecords(records, "probed", meta)


def _reference_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("reference") is not None


def _probe_reference(
    weights: ResolvedWeights, settings: ProbeSettings, device: str,
    tasks: tuple[str, ...] = TASK_NAMES,
) -> tuple[dict[str, Record], dict]:
    from grader.check.grading import library_versions, probe_all
    from grader.probe.implementation import load_implementation
    from grader.probe.inputs import FIXTURES_DIR
    from grader.probe.probing import ProbeContext
    from grader.refdata.weights import activated

    with tempfile.TemporaryDirectory(prefix="lab3-ref-") as scratch, activated(weights):
        ctx = ProbeContext(impl=load_implementation("reference"), weights=weights,
                           settings=settings, fixtures_dir=FIXTURES_DIR, scratch=Path(scratch),
                           device=device)
        records = probe_all(ctx, tasks)
    broken = {t: r.data for t, r in records.items()
              if {"import_error", "probe_error"} & set(r.data)}
    if broken:
        raise RuntimeError(f"the reference solution failed its own probes: {broken}")
    meta = {
        "weights_id": weights.id,
        "weights_sha256": weights.sha256,
        "versions": library_versions(),
        "settings": settings.to_dict(),
        "device": device,
        "probe_code": probe_code_hash(),
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return records, meta


def _store(folder: Path, records: dict[str, Record], meta: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        for record in records.values():
            record.save(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, folder)
        except OSError:
            pass  # another worker stored the same records first; theirs are equal
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_folder(folder: Path) -> tuple[dict[str, Record], dict] | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        records = {t: Record.load(folder, t) for t in TASK_NAMES}
    except (OSError, ValueError, RecordError):
        return None  # a damaged cache is rebuilt, never trusted
    return records, meta


def save_shipped(records: ReferenceRecords, weights_id: str, dest_root: Path) -> Path:
    """Write ``records`` as shipped records under ``dest_root/<weights id>/`` (for releases)."""
    folder = dest_root / weights_id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for record in records.records.values():
        record.save(folder)
    (folder / "meta.json").write_text(json.dumps(records.meta, indent=2))
    return folder
