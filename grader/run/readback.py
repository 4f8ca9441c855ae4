"""Reading a child's files back into the parent (:mod:`grader.run.submission_run`).

The child's folder is the student's to write: a record may be a symbolic link (to the
reference's records), a FIFO that blocks, or huge. :func:`read_capped` reads one regular
file without following links, within a size cap; :func:`read_child_record` copies a task's
record into the parent's own folder that way, then validates it with :meth:`Record.load`,
never unpickling anything.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.probe.records import MAX_JSON_BYTES, MAX_TENSOR_BYTES, Record, RecordError


def read_capped(dir_fd: int, name: str, cap: int) -> bytes | None:
    """A regular file of the child's folder, read without following links; None if absent.

    Raises:
        RecordError: not a regular file, or over ``cap`` bytes.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"{name} is not a regular file ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{name} is not a regular file")
        if info.st_size > cap:
            raise RecordError(f"{name} is {info.st_size} bytes, over the cap of {cap}")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise RecordError(f"{name} grew over the cap of {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_child_record(records: Path, readback: Path, task: str) -> Record:
    """The child's record of ``task``: copied from ``records`` into the parent's own
    ``readback`` folder without following links (no symlink to the reference's records,
    no FIFO that blocks, size caps), then validated by :meth:`Record.load`. Anything
    wrong becomes a ``record_error`` record for that task only."""
    for suffix in (".json", ".safetensors"):
        (readback / f"{task}{suffix}").unlink(missing_ok=True)
    try:
        fd = os.open(records, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for suffix, cap in ((".json", MAX_JSON_BYTES), (".safetensors", MAX_TENSOR_BYTES)):
                data = read_capped(fd, f"{task}{suffix}", cap)
                if data is not None:
                    (readback / f"{task}{suffix}").write_bytes(data)
        finally:
            os.close(fd)
        return Record.load(readback, task)
    except (RecordError, OSError) as exc:
        return Record(task=task, data={"record_error": str(exc)[:2000]})
