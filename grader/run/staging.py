"""Staging for ``lab3 grade`` (:mod:`grader.run.batch`): what each SUBMISSION argument is and
the private scratch copy a child probes.

:func:`find_submissions` resolves the arguments (folders, zips, notebooks, the installed
``reference`` / ``student_template``) and gives each an output folder name that never
collides (see :func:`_assign_names`) and a content digest (:func:`_content_digest`; a
resumed batch regrades a source whose path or content changed). :func:`stage` copies a
submission's task modules' folder into the scratch copy: regular files only (no symlinks,
no devices, capped in count and size; :func:`copy_regular_files`), a ``.zip`` extracted in
the parent with :mod:`grader.probe.implementation`'s safe extractor, a notebook turned into
modules by parsing only. Nothing here imports or runs the submission. :func:`archive_fault`
tells a zip the file system refuses (the student's problem) from the grader's own.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.outputs.report import ANSWERS_FILE, SUMMARY_FILE, load_entry
from grader.probe.implementation import (
    BUILTIN_PACKAGES,
    MAX_ZIP_BYTES,
    MAX_ZIP_FILES,
    extract_zip,
    find_root,
    has_modules,
    submitted_notebook,
)
from grader.probe.probing import ImplementationError

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".venv"})



@dataclass
class Submission:
    """One SUBMISSION argument: where it is and what it is called in the outputs."""

    spec: str
    name: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded at all
    missing: bool = False
    digest: str = ""  # sha256 of the content (files' paths and bytes); "" when unreadable

    def source(self) -> dict[str, str]:
        """What report.json records of the source: a resumed run regrades unless both match."""
        return {"path": str(self.path) if self.path is not None else self.spec,
                "sha256": self.digest}


# Names the batch writes at the top of --out (case-insensitive on some file systems).
RESERVED_NAMES = frozenset(n.casefold() for n in (
    SUMMARY_FILE, ANSWERS_FILE, "summary.md", "grades", "readback"))


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name[:100] or "submission"


def find_submissions(specs: Sequence[str], out: Path | None = None) -> list[Submission]:
    """Resolve SUBMISSION arguments: folders, zips, notebooks, or the installed ``reference``
    / ``student_template`` packages.

    Each gets an output folder name that is a function of its source and never collides:
    the readable name, with a short hash of the source path added when sanitising changed
    it, when it is reserved (``summary.csv``, ...), or when another source in this batch or
    an earlier run in ``out`` has the same readable name. A source graded before in ``out``
    keeps its folder. A submission given as (or through) a symbolic link is refused: unzip
    and tar create links, and a link to a classmate's folder would grade the other work.
    """
    import importlib.util

    found: list[Submission] = []
    for spec in specs:
        path = Path(spec).expanduser()
        problem = None
        missing = False
        if spec in BUILTIN_PACKAGES and not has_modules(path):
            found_spec = importlib.util.find_spec(spec)
            if found_spec is None or not found_spec.submodule_search_locations:
                path, problem, missing = None, f"{spec}: the package is not installed", True
            else:
                path = Path(next(iter(found_spec.submodule_search_locations))).resolve()
            base = spec
        elif not os.path.lexists(path):
            base, problem, missing = path.name or spec, (
                f"{spec}: no such folder or zip; pass a folder holding model.py, "
                "preprocessing.py, ... (a filled-in copy of student_template/) or a .zip of one"
            ), True
            path = None
        elif path.is_symlink():
            base = path.name
            problem = (f"{path.name} is a symbolic link (to {os.readlink(path)}); it was "
                       "refused so that no submission is graded as another's work: hand in "
                       "the folder or zip itself")
            path = path.absolute()
        elif path.is_dir():
            path = path.resolve()
            base = path.name
        else:
            base = path.stem
            if path.suffix.lower() not in (".zip", ".ipynb", ".py"):
                problem = (f"{path.name}: expected a folder, a .zip, a .ipynb or a .py, "
                           "got another kind of file")
            path = path.resolve()
        if path is not None and path.is_symlink():
            # Refused, but a row like any other: a rerun skips it while the link is unchanged.
            digest = hashlib.sha256(f"symlink:{os.readlink(path)}".encode()).hexdigest()
        else:
            digest = _content_digest(path) if path is not None else ""
        found.append(Submission(spec, base, path, problem, missing, digest))
    _assign_names(found, out)
    return found


def _assign_names(found: list[Submission], out: Path | None) -> None:
    """Give each submission its output folder name (see :func:`find_submissions`)."""
    earlier = _earlier_sources(out)
    readable = [_safe_name(s.name) for s in found]
    # Clashes among names that sanitising left alone; a changed name always gets a hash.
    counts: dict[str, int] = {}
    for sub, name in zip(found, readable, strict=True):
        if name == sub.name:
            counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    taken: set[str] = set()
    for sub, name in zip(found, readable, strict=True):
        source = sub.source()["path"]
        if source in earlier and earlier[source].casefold() not in taken:
            sub.name = earlier[source]
        elif (name != sub.name or counts.get(name.casefold(), 0) > 1
              or name.casefold() in RESERVED_NAMES
              or name in earlier.values()):
            sub.name = f"{name[:90]}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
        else:
            sub.name = name
        n = 2
        unique = sub.name
        while unique.casefold() in taken:  # only on a hash collision: keep names distinct
            unique, n = f"{sub.name}-{n}", n + 1
        sub.name = unique
        taken.add(unique.casefold())


def _earlier_sources(out: Path | None) -> dict[str, str]:
    """Source path -> folder name of the submissions an earlier run graded into ``out``."""
    if out is None or not out.is_dir():
        return {}
    sources = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink()):
        entry = load_entry(folder)
        source = entry.get("source") if entry else None
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            sources.setdefault(source["path"], folder.name)
    return sources


def _content_digest(path: Path) -> str:
    """sha256 over a file's bytes, or a folder's regular files (relative paths and bytes, no
    links followed), within the staging caps; "" when unreadable or over the caps."""
    h = hashlib.sha256()
    try:
        if path.is_file():
            if path.stat().st_size > MAX_ZIP_BYTES:
                return ""
            h.update(path.read_bytes())
            return h.hexdigest()
        count = total = 0
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                file = Path(root) / name
                info = os.lstat(file)
                if not stat.S_ISREG(info.st_mode):
                    continue
                count += 1
                total += info.st_size
                if count > MAX_ZIP_FILES or total > MAX_ZIP_BYTES:
                    return ""
                h.update(file.relative_to(path).as_posix().encode() + b"\0")
                h.update(file.read_bytes())
    except OSError:
        return ""
    return h.hexdigest()


def stage(sub: Submission, dest: Path, unpack: Path, *,
          should_stop: Callable[[], bool] | None = None) -> list[str]:
    """Copy ``sub``'s task modules' folder into ``dest`` (extracting a zip in ``unpack``; a
    notebook is turned into modules by parsing only, nothing of it runs in the parent).

    Returns:
        notes on what of a notebook could not be used (empty for folders and zips).

    Raises:
        ImplementationError: a bad or unsafe zip or notebook, no task modules, over the caps.
        grader.errors.ParseInterrupted: ``should_stop()`` became true while a notebook
            was read (Ctrl-C in a batch).
    """
    if sub.path is None:
        raise ImplementationError(f"{sub.spec}: nothing to grade")
    source = sub.path
    notebook = source if source.suffix.lower() in (".ipynb", ".py") else None
    if notebook is None:
        if source.is_file():
            source = extract_zip(source, unpack)
        root = find_root(source)
        _refuse_linked_root(source, root)
        # A folder or zip whose only submission file is a notebook (a Gradescope upload).
        notebook = submitted_notebook(root)
        if notebook is None:
            copy_regular_files(root, dest)
            return []
    from grader.submission.notebook import write_package

    # Kept from here, not read back from the scratch copy: the child can write there.
    notes = write_package(notebook, unpack / "notebook", should_stop=should_stop)
    copy_regular_files(unpack / "notebook", dest)
    return notes


def _refuse_linked_root(source: Path, root: Path) -> None:
    """The submission's root must be a real folder inside it: no symbolic link on the way.

    Raises:
        ImplementationError: a folder on the path from ``source`` to ``root`` is a link.
    """
    here = source
    for part in root.relative_to(source).parts:
        here = here / part
        if here.is_symlink():
            raise ImplementationError(
                f"{source.name}/{here.relative_to(source).as_posix()} is a symbolic link "
                f"(to {os.readlink(here)}); it was refused so that no submission is graded as "
                "another's work: hand in the folder itself, not a link to it")


def copy_regular_files(src: Path, dst: Path) -> None:
    """Copy regular files only (no symlinks, devices or caches), capped in count and bytes."""
    count = total = 0
    for root, dirs, files in os.walk(src, followlinks=False):
        here = Path(root)
        dirs[:] = [d for d in dirs
                   if d not in _SKIP_DIRS and not os.path.islink(os.path.join(root, d))]
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            info = os.lstat(here / name)
            if not stat.S_ISREG(info.st_mode):
                continue  # a symlink could point at files the child must not see
            count += 1
            total += info.st_size
            if count > MAX_ZIP_FILES or total > MAX_ZIP_BYTES:
                raise ImplementationError(
                    f"{src.name}: more than {MAX_ZIP_FILES} files or {MAX_ZIP_BYTES // 2**20} MB; "
                    "submit only the task modules and answers.md")
            shutil.copyfile(here / name, target / name)


# A zip member the file system refuses (a name over 255 bytes, bytes that are no name, a file
# where the zip also has a folder): the archive's fault, not the grader's.
_ARCHIVE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTDIR,
                             errno.EISDIR, errno.EEXIST})


def archive_fault(sub: Submission, exc: BaseException) -> str | None:
    """The row's problem when unpacking ``sub``'s zip raised ``exc`` because of the zip
    (zipfile's unsupported methods, bad data, members the file system refuses); None when
    ``exc`` is not the archive's fault (the grader's own disk, say)."""
    if sub.path is None or sub.path.suffix.lower() != ".zip":
        return None
    if isinstance(exc, OSError):
        if exc.errno not in _ARCHIVE_ERRNOS:
            return None
        member = Path(str(exc.filename)).name if exc.filename else ""
        detail = f"{exc.strerror}: {member[:60]}{'...' if len(member) > 60 else ''}"
    else:
        detail = f"{type(exc).__name__}: {exc}"[:300]
    return (f"{sub.path.name} could not be unpacked ({detail}); zip the folder again, with "
            "ordinary file names and the usual compression")
