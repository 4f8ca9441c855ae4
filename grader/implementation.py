"""Locate and import an implementation under test: a package folder, a .zip or a notebook.

``reference`` and ``student_template`` name the installed packages; any other
value is a path. A folder holds the task modules (``model.py``, ...) at its top
or inside a ``student_template/`` folder. A zip is extracted (safely) first. A
``.ipynb`` is turned into such a folder by parsing its code cells, never running
them (:mod:`grader.notebook`).
Each implementation is imported as its own synthetic package, so relative
imports (``from .preprocessing import preprocess_image``) work and several
implementations can live in one process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
import zipfile
from pathlib import Path
from types import ModuleType

from grader.points import TASKS
from grader.probing import ImplementationError

TASK_MODULES = tuple(t.module for t in TASKS if t.module != "answers")
BUILTIN_PACKAGES = ("reference", "student_template")
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ZIP_FILES = 2000


class Implementation:
    """One implementation under test.

    Attributes:
        name: the submission's name (folder or zip name without extension).
        root: the folder holding the task modules.
        package: the import name of its package.
    """

    def __init__(self, name: str, root: Path, package: str) -> None:
        self.name = name
        self.root = root
        self.package = package
        self._modules: dict[str, ModuleType] = {}
        # What the grader could not use of the submission (a notebook's skipped cells...),
        # one line each, for the score table and the feedback.
        self.notes: list[str] = []
        self.notebook = False  # built from a .ipynb by grader.notebook
        self._errors: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Implementation({self.name!r}, root={str(self.root)!r})"

    def module(self, name: str) -> ModuleType:
        """Import task module ``name`` of this implementation (cached).

        Raises:
            ImplementationError: the file is missing or importing it raised; the
                message names the file and the error.
        """
        if name in self._modules:
            return self._modules[name]
        if name in self._errors:
            raise ImplementationError(self._errors[name])
        path = self.root / f"{name}.py"
        if not path.is_file():
            self._errors[name] = f"{name}.py is missing from {self.root.name}/; copy it from the template"
            raise ImplementationError(self._errors[name])
        try:
            module = importlib.import_module(f"{self.package}.{name}")
        except BaseException as exc:  # SyntaxError, SystemExit... are data here
            if isinstance(exc, KeyboardInterrupt):
                raise
            frames = [
                f for f in traceback.extract_tb(exc.__traceback__)
                if "importlib" not in f.filename and "/grader/" not in f.filename
            ]
            where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""
            if isinstance(exc, SyntaxError):
                where = f" ({Path(exc.filename or path).name}, line {exc.lineno})"
            if self.notebook and frames and Path(frames[-1].filename).resolve() == path.resolve():
                # The student never saw the generated module: point at their cell.
                where = f" (notebook {_notebook_cell(path, frames[-1].lineno)})"
            self._errors[name] = (
                f"importing {name}.py failed{where}: {type(exc).__name__}: {exc}"
            )[:2000]
            raise ImplementationError(self._errors[name]) from None
        self._modules[name] = module
        return module

    def answers_text(self) -> str | None:
        """The submission's ``answers.md`` (capped at 200 kB), or None if absent."""
        path = self.root / "answers.md"
        if not path.is_file():
            return None
        return path.read_bytes()[:200_000].decode("utf-8", errors="replace")


def load_implementation(spec: str | Path, *, extract_to: Path | None = None) -> Implementation:
    """Resolve ``spec`` to an :class:`Implementation`.

    Args:
        spec: ``"reference"``, ``"student_template"``, a folder, a ``.zip`` or a ``.ipynb``.
        extract_to: where to extract a zip or build a notebook's package (default: a
            folder under the system temp).

    Raises:
        ImplementationError: the path does not exist, holds no task modules, or
            the zip is invalid or unsafe, or the notebook is not nbformat-4 JSON.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text in BUILTIN_PACKAGES and not _has_modules(path):
        module = importlib.import_module(text)
        root = Path(module.__file__).resolve().parent
        return Implementation(text, root, text)
    if not path.exists():
        raise ImplementationError(
            f"{text}: no such folder or zip; pass a folder holding model.py, "
            "preprocessing.py, ... (a filled-in copy of student_template/) or a .zip of one"
        )
    if path.suffix.lower() == ".ipynb":
        return _load_notebook(path, extract_to)
    name = path.stem if path.is_file() else path.resolve().name
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise ImplementationError(f"{text}: expected a folder or a .zip, got a file")
        path = _extract_zip(path, extract_to)
    root = _find_root(path.resolve())
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    package = f"lab3_impl_{digest}"
    if package not in sys.modules:
        _register_package(package, root)
    return Implementation(name, root, package)


def _load_notebook(path: Path, extract_to: Path | None) -> Implementation:
    """A notebook: its definitions written as a package folder (nothing run here), see
    :mod:`grader.notebook`; the notes say which cells were not used and why."""
    import tempfile

    from grader.notebook import write_package

    if not path.is_file():
        raise ImplementationError(f"{path}: expected a notebook file, got a folder")
    target = extract_to or Path(tempfile.mkdtemp(prefix=f"lab3-{path.stem}-"))
    notes = write_package(path, target)
    root = target.resolve()
    package = f"lab3_impl_{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        _register_package(package, root)
    impl = Implementation(path.stem, root, package)
    impl.notes = notes
    impl.notebook = True
    return impl


def _notebook_cell(path: Path, lineno: int | None) -> str:
    """"cell N": the ``# notebook cell N`` marker above ``lineno`` of a generated module."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[: lineno or 0]
    for line in reversed(lines):
        if line.startswith("# notebook cell "):
            return line[2:].removeprefix("notebook ")
    return f"line {lineno}"


def _has_modules(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f"{m}.py").is_file() for m in TASK_MODULES)


def _find_root(folder: Path) -> Path:
    if _has_modules(folder):
        return folder
    nested = folder / "student_template"
    if _has_modules(nested):
        return nested
    # A zip often wraps everything in one folder named after the student.
    children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith((".", "__"))]
    if len(children) == 1:
        for candidate in (children[0], children[0] / "student_template"):
            if _has_modules(candidate):
                return candidate
    raise ImplementationError(
        f"{folder.name}: none of {', '.join(m + '.py' for m in TASK_MODULES)} found at its top "
        "or in a student_template/ folder inside it"
    )


def _register_package(package: str, root: Path) -> None:
    init = root / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:  # noqa: BLE001 - a broken __init__ should not hide the modules
            module = ModuleType(package)
            module.__path__ = [str(root)]
            sys.modules[package] = module
    else:
        module = ModuleType(package)
        module.__path__ = [str(root)]
        sys.modules[package] = module


def _extract_zip(path: Path, extract_to: Path | None) -> Path:
    import tempfile

    target = extract_to or Path(tempfile.mkdtemp(prefix=f"lab3-{path.stem}-"))
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_FILES:
                raise ImplementationError(f"{path.name}: {len(members)} files (cap {MAX_ZIP_FILES})")
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise ImplementationError(f"{path.name}: unpacks to over {MAX_ZIP_BYTES} bytes")
            base = target.resolve()
            for member in members:
                dest = (target / member.filename).resolve()
                if not dest.is_relative_to(base) or member.filename.startswith("/"):
                    raise ImplementationError(
                        f"{path.name}: member {member.filename!r} would escape the folder"
                    )
                if member.external_attr >> 28 == 0o12:  # symlink
                    raise ImplementationError(f"{path.name}: member {member.filename!r} is a symlink")
            archive.extractall(target)
    except zipfile.BadZipFile as exc:
        raise ImplementationError(f"{path.name} is not a valid zip file: {exc}") from exc
    return target
