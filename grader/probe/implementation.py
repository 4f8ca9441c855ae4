"""Locate and import an implementation under test: a package folder, a .zip or a notebook.

``reference`` and ``student_template`` name the installed packages; any other
value is a path. A folder holds the task modules (``model.py``, ...) at its top
or inside a ``student_template/`` folder, or, when it has none, exactly one
notebook (a Gradescope upload of ``lab3.ipynb``), or exactly one ``.py`` script (a
solution written from the handout without the template). A zip is extracted (safely)
first. A ``.ipynb`` (or ``.py``) is turned into such a folder by parsing its code cells
(top-level statements), never running them (:mod:`grader.submission.notebook`); the implementation
then phrases its messages in the notebook's (script's) terms
(:meth:`Implementation.localize`).
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
from typing import TYPE_CHECKING

from grader.points import TASKS
from grader.probe.probing import ImplementationError

if TYPE_CHECKING:
    from grader.submission.locations import NotebookLocations

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
        self.notebook = False  # built from a .ipynb by grader.submission.notebook
        # Where a notebook's graded names are (grader.submission.locations.NotebookLocations), else None.
        self.locations: NotebookLocations | None = None
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
            what = f"importing {name}.py"
            if self.notebook:
                # The student never saw the generated module: point at their notebook and cell.
                if frames and Path(frames[-1].filename).resolve() == path.resolve():
                    place = _notebook_cell(path, frames[-1].lineno)
                    kind = "script" if place.startswith("line") else "notebook"
                    where = f" ({kind} {place})"
                what = f"importing the Task {_task_number(name)} definitions of {self._notebook_name()}"
            self._errors[name] = f"{what} failed{where}: {type(exc).__name__}: {exc}"[:2000]
            raise ImplementationError(self._errors[name]) from None
        self._modules[name] = module
        return module

    def localize(self, message: str) -> str:
        """``message`` in this submission's terms: for a notebook, ``load_model in model.py``
        becomes ``load_model in lab3.ipynb (cell 5)`` (see
        :meth:`grader.submission.locations.NotebookLocations.localize`); unchanged for a package."""
        return self.locations.localize(message) if self.locations is not None else message

    def _notebook_name(self) -> str:
        return self.locations.notebook if self.locations is not None else "the notebook"

    def answers_text(self) -> str | None:
        """The submission's ``answers.md`` (capped at 200 kB), or None if absent."""
        path = self.root / "answers.md"
        if not path.is_file():
            return None
        return path.read_bytes()[:200_000].decode("utf-8", errors="replace")


def load_implementation(spec: str | Path, *, extract_to: Path | None = None) -> Implementation:
    """Resolve ``spec`` to an :class:`Implementation`.

    Args:
        spec: ``"reference"``, ``"student_template"``, a folder, a ``.zip``, a ``.ipynb`` or
            a ``.py`` script.
        extract_to: where to extract a zip or build a notebook's package (default: a
            folder under the system temp).

    Raises:
        ImplementationError: the path does not exist, holds no task modules, or
            the zip is invalid or unsafe, or the notebook is not nbformat-4 JSON.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text in BUILTIN_PACKAGES and not has_modules(path):
        module = importlib.import_module(text)
        root = Path(module.__file__).resolve().parent
        return Implementation(text, root, text)
    if not path.exists():
        raise ImplementationError(
            f"{text}: no such folder or zip; pass a folder holding model.py, "
            "preprocessing.py, ... (a filled-in copy of student_template/) or a .zip of one"
        )
    if path.suffix.lower() in (".ipynb", ".py"):
        return _load_notebook(path, extract_to)
    name = path.stem if path.is_file() else path.resolve().name
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise ImplementationError(f"{text}: expected a folder or a .zip, got a file")
        path = extract_zip(path, extract_to)
        extract_to = None  # taken by the zip's files
    root = find_root(path.resolve())
    notebook = submitted_notebook(root)
    if notebook is not None:
        return _load_notebook(notebook, extract_to, name=name)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    package = f"lab3_impl_{digest}"
    if package not in sys.modules:
        _register_package(package, root)
    impl = Implementation(name, root, package)
    # A notebook's package staged by `lab3 grade` (grader.submission.notebook.write_package).
    impl.locations = _read_locations(root)
    impl.notebook = impl.locations is not None
    return impl


def _load_notebook(path: Path, extract_to: Path | None, *, name: str | None = None) -> Implementation:
    """A notebook or a script: its definitions written as a package folder (nothing run
    here), see :mod:`grader.submission.notebook`; the notes say which cells (lines) were not used and
    why. Named ``name`` (default: the file's name without its suffix)."""
    import tempfile

    from grader.submission.notebook import write_package

    if not path.is_file():
        raise ImplementationError(f"{path}: expected a notebook or script file, got a folder")
    target = extract_to or Path(tempfile.mkdtemp(prefix=f"lab3-{path.stem}-"))
    notes = write_package(path, target)
    root = target.resolve()
    package = f"lab3_impl_{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        _register_package(package, root)
    impl = Implementation(name or path.stem, root, package)
    impl.notes = notes
    impl.notebook = True
    impl.locations = _read_locations(root)
    return impl


def _read_locations(root: Path) -> NotebookLocations | None:
    from grader.submission.locations import LOCATIONS_FILE, NotebookLocations

    path = root / LOCATIONS_FILE
    return NotebookLocations.read(path) if path.is_file() else None


def _notebook_cell(path: Path, lineno: int | None) -> str:
    """"cell N" (or "line N" for a script): the ``# notebook cell N`` marker above ``lineno``
    of a generated module."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[: lineno or 0]
    for line in reversed(lines):
        if line.startswith(("# notebook cell ", "# notebook line ")):
            return line[2:].removeprefix("notebook ")
    return f"line {lineno}"


def _task_number(module: str) -> int | str:
    return next((t.number for t in TASKS if t.module == module), module)


def has_modules(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f"{m}.py").is_file() for m in TASK_MODULES)


def _notebooks(folder: Path) -> list[Path]:
    """The ``.ipynb`` files at the top of ``folder`` (not hidden ones, such as macOS's ``._x``);
    without any, its one ``.py`` script (a handout-shaped submission), if it has exactly one
    besides ``__init__.py``."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file()
             and not p.is_symlink()]
    notebooks = sorted(p for p in files if p.suffix.lower() == ".ipynb")
    if notebooks:
        return notebooks
    scripts = [p for p in files if p.suffix.lower() == ".py" and p.name != "__init__.py"]
    return scripts if len(scripts) == 1 else []


def submitted_notebook(root: Path) -> Path | None:
    """The notebook that is the submission in ``root`` (a folder :func:`find_root` returned):
    its only ``.ipynb`` when it holds no task modules, else None."""
    if has_modules(root):
        return None
    notebooks = _notebooks(root)
    return notebooks[0] if len(notebooks) == 1 else None


def find_root(folder: Path) -> Path:
    """The folder holding the submission in ``folder``: its task modules (at the top, in a
    ``student_template/`` folder, or the same inside the one folder a zip often wraps
    everything in), else the one notebook in one of those places.

    Raises:
        ImplementationError: neither task modules nor a notebook, or several notebooks
            and no modules (the message names them).
    """
    candidates = [folder, folder / "student_template"]
    children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith((".", "__"))]
    if len(children) == 1:
        candidates += [children[0], children[0] / "student_template"]
    for candidate in candidates:
        if has_modules(candidate):
            return candidate
    for candidate in candidates:
        notebooks = _notebooks(candidate)
        if len(notebooks) == 1:
            return candidate
        if notebooks:
            where = "" if candidate == folder else f" in {candidate.relative_to(folder).as_posix()}/"
            raise ImplementationError(
                f"{folder.name}: {len(notebooks)} notebooks{where} "
                f"({', '.join(p.name for p in notebooks)}) and no model.py, preprocessing.py, ...: "
                "hand in one notebook (delete the others), or a folder holding the task modules"
            )
    raise ImplementationError(
        f"{folder.name}: none of {', '.join(m + '.py' for m in TASK_MODULES)} found at its top "
        "or in a student_template/ folder inside it, and no .ipynb notebook"
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


def extract_zip(path: Path, extract_to: Path | None) -> Path:
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
