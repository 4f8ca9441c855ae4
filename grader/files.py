"""Writing files so that a reader never sees half of one: the one atomic-write helper."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; it becomes ``path`` (``os.replace``)
    when the block ends without an exception and is removed otherwise.

    The folder is created when missing. The temporary file is created empty with mode 0600
    (``tempfile.mkstemp``), so nothing else reads it before it is complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` through :func:`atomic_path`; ``mode``: the
    file's permissions (None: mkstemp's 0600)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
        if mode is not None:
            os.chmod(tmp, mode)
