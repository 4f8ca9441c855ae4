"""Notebook submissions: build an implementation from a student's notebook (or script).

Students are taught the lab as a Jupyter notebook, written by
:mod:`grader.distribute.notebook_writer` (``lab3 notebook``, its text in
:mod:`grader.distribute.notebook_text`); this module reads one back:

``build_package`` (used by ``load_implementation("x.ipynb")``)
    Builds a package folder from a notebook WITHOUT running it: every code cell is
    parsed with :mod:`ast` (IPython magics and shell lines removed first; a cell that
    still does not parse is skipped and noted). Kept: the definitions the grader
    needs, i.e. the names each task module of the template defines (``load_model``,
    ``transform``, ...) and, transitively, every top-level name those definitions use
    (functions, classes, constants, imports). Everything else is dropped: top-level
    calls, plots, downloads, loops, ``with`` blocks, and assignments nothing graded
    uses (``img = Image.open(requests.get(url).raw)``, ``model = load_model()``).
    The last definition of a name wins, as when the notebook runs top to bottom.
    The notes speak only of what the student wrote: the generated set-up and demo
    statements, unchanged, and ``%matplotlib`` lines are not mentioned.
    Kept statements are emitted imports first, then in dependency order (cell order
    otherwise), so reordered cells still work. Each task module file holds only what
    its own names need, so a broken constant costs the tasks that use it, as in a
    package. ``answers.md`` is assembled from the markdown cells: an answer is the
    text under a question's ``## `` heading, in its cell and in the markdown cells
    after it, up to the next markdown heading (level 1 or 2); code cells in between
    do not end it.

Parsing is all the grader does with the notebook in its own process: nothing in it
is executed here (:mod:`grader.submission.cells` reads the cells, :mod:`grader.submission.units`
assembles the kept statements); the generated modules
are imported like any package submission (inside the sandbox in ``lab3 grade``).
:class:`~grader.submission.locations.NotebookLocations` (saved beside the modules) lets
messages written for the package name the notebook's cells instead.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from grader.distribute.notebook_text import DEMO_CELLS, SETUP_CELL
from grader.paths import TEMPLATE_DIR
from grader.probe.probing import ImplementationError

# Re-exported: the generated notebook's set-up cell (SETUP_CELL) imports it from here.
from grader.refdata.weights import mark_standin  # noqa: F401
from grader.submission.cells import HEADING, ParseBudget, check_bounds, read_cells, strip_magics
from grader.submission.locations import LOCATIONS_FILE, TASK_MODULES, NotebookLocations
from grader.submission.units import Unit, analyse, is_stub, module_source, reachable, statement_kind

MAX_STATEMENTS = 20_000
PARSE_SECONDS = 60.0


@cache
def generated_statements() -> frozenset[str]:
    """``ast.dump`` of each top-level statement of the set-up and demo cells: work the
    notebook itself does, which the notes about a submission leave out."""
    sources = [strip_magics(src)[0] or "" for src in [SETUP_CELL, *DEMO_CELLS.values()]]
    return frozenset(ast.dump(node) for src in sources for node in ast.parse(src).body)


def interface_names() -> dict[str, set[str]]:
    """The names each task module of the template binds at its top: what probes may use."""
    names = {}
    for module in TASK_MODULES:
        tree = ast.parse((TEMPLATE_DIR / f"{module}.py").read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        names[module] = found
    return names


@dataclass
class NotebookBuild:
    """What :func:`build_package` made of a notebook."""

    modules: dict[str, str]
    answers: str
    notes: list[str] = field(default_factory=list)
    locations: NotebookLocations | None = None
    word: str = "cell"  # what a number in the notes counts: notebook cells or script lines
    top_level: str = ""  # every code cell that parses, in order (grader.probe.top_level runs it)


def _first_line(source: str) -> str:
    line = next((x.strip() for x in source.splitlines() if x.strip()), "")
    return line if len(line) <= 50 else line[:47] + "..."


def _cells_text(cells: list[int]) -> str:
    cells = sorted(set(cells))
    shown = ", ".join(str(c) for c in cells[:10]) + (", ..." if len(cells) > 10 else "")
    return f"cell{'s' if len(cells) > 1 else ''} {shown}"


# CPython 3.11's ast module keeps one recursion-depth counter per interpreter: two threads
# building ASTs at once (two staging threads of a batch, or a traceback's caret anchors in
# another thread) can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905). Builds are serialised, and one that still meets it is retried.
_AST_LOCK = threading.Lock()
_AST_RETRIES = 3


def build_package(path: Path, *, seconds: float | None = None,
                  should_stop: Callable[[], bool] | None = None) -> NotebookBuild:
    """Read the notebook (or script) at ``path``: :func:`_build_package` one at a time, with
    the CPython 3.11 ast race retried (see :data:`_AST_LOCK`)."""
    for attempt in range(_AST_RETRIES):
        try:
            with _AST_LOCK:
                return _build_package(path, seconds=seconds, should_stop=should_stop)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == _AST_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Parsed:
    """What one pass over the cells found: the statements the grader can use, and what the
    notes will say about the rest."""

    units: list[Unit] = field(default_factory=list)
    magic_cells: list[int] = field(default_factory=list)
    syntax_notes: list[str] = field(default_factory=list)
    not_python: list[str] = field(default_factory=list)
    work_cells: list[int] = field(default_factory=list)
    runnable: list[str] = field(default_factory=list)  # the code that parses, in order:
    statements: int = 0                                # what a top-level run executes

    def work(self, cell: int) -> None:
        """A top-level statement that does work (not run by the grader) in ``cell``."""
        self.work_cells.append(cell)


def _build_package(path: Path, *, seconds: float | None = None,
                   should_stop: Callable[[], bool] | None = None) -> NotebookBuild:
    """Read the notebook at ``path`` into task module sources, answers.md and notes.

    Cells are numbered from 1 over all cells (markdown included), as Jupyter lists them.
    Linear in the notebook's size, and bounded: :data:`MAX_CODE_CELLS`,
    :data:`MAX_CODE_CHARS`, :data:`MAX_STATEMENTS` and ``seconds`` (default
    :data:`PARSE_SECONDS`). ``should_stop`` is polled between statements.

    Raises:
        ImplementationError: not a valid nbformat-4 notebook, no code cell at all, or over
            one of the bounds (the message says which).
        ParseInterrupted: ``should_stop()`` returned True.
    """
    cells, word = read_cells(path)
    check_bounds(path.name, cells)
    budget = ParseBudget(path.name, PARSE_SECONDS if seconds is None else seconds, should_stop)
    parsed = _Parsed()
    for number, cell in enumerate(cells, start=1):
        number = cell.get("number", number)
        if cell["cell_type"] == "code" and cell["source"].strip():
            budget.check()
            _parse_cell(path.name, number, cell["source"], word, parsed, budget)
    if not any(c["cell_type"] == "code" and c["source"].strip() for c in cells):
        raise ImplementationError(
            f"{path.name}: the script is empty" if word == "line" else
            f"{path.name}: the notebook has no code cells; write your code in the task cells "
            "of the lab's notebook")

    definers: dict[str, list[Unit]] = {}
    for unit in parsed.units:
        for name in unit.binds:
            definers.setdefault(name, []).append(unit)
    interface = interface_names()
    graded = set().union(*interface.values())
    notes: list[str] = []
    modules = {}
    used_units: set[int] = set()
    for module in TASK_MODULES:
        keep = reachable(interface[module], definers)
        used_units.update(u.order for u in keep)
        modules[module] = module_source(path.name, keep, definers, notes, word)

    # Statements that compute something (a call in an assignment nothing graded uses).
    for unit in parsed.units:
        if unit.order not in used_units and unit.kind == "assign" and any(
            isinstance(n, ast.Call) for n in ast.walk(unit.node)
        ) and ast.dump(unit.node) not in generated_statements():
            parsed.work(unit.cell)
    notes += _redefinition_notes(graded, definers)
    notes[:0] = parsed.syntax_notes + parsed.not_python
    notes += _unused_notes(parsed, used_units)
    if word == "line":
        notes = [_in_script_terms(n) for n in notes]
    locations = NotebookLocations(path.name, {name: definers[name][-1].cell
                                              for name in sorted(graded) if name in definers},
                                  unit=word)
    answers = _answers_markdown(cells)
    return NotebookBuild(modules=modules, answers=answers, notes=notes, locations=locations,
                         word=word, top_level="\n".join(parsed.runnable) + "\n")


def _parse_cell(name: str, number: int, text: str, word: str, parsed: _Parsed,
                budget: ParseBudget) -> None:
    """Add the usable statements of one code cell (or script line) to ``parsed``.

    Raises:
        ImplementationError: over :data:`MAX_STATEMENTS` top-level statements.
        ParseInterrupted: the budget's ``should_stop()`` returned True.
    """
    source, had_magics, not_py = strip_magics(text)
    if had_magics:
        parsed.magic_cells.append(number)
    if source is None:
        parsed.not_python.append(f"cell {number} is {not_py}; skipped")
        return
    try:
        tree = ast.parse(source)
        parsed.runnable.append(f"# {word} {number}\n{source}" if word == "cell" else source)
    except SyntaxError as exc:
        if word == "line":
            parsed.syntax_notes.append(
                f"{name} has a syntax error at line {number + (exc.lineno or 1) - 1}: "
                f"{exc.msg}; nothing in it was used (Python cannot run it either: fix it)")
        else:
            parsed.syntax_notes.append(
                f"cell {number} (`{_first_line(text)}`) has a syntax error at "
                f"line {exc.lineno}: {exc.msg}; nothing in it was used (fix it, or delete "
                "the cell)")
        return
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        parsed.syntax_notes.append(f"cell {number} cannot be parsed ({type(exc).__name__}); "
                                   "nothing in it was used")
        return
    parsed.statements += len(tree.body)
    if parsed.statements > MAX_STATEMENTS:
        raise ImplementationError(
            f"{name}: over {MAX_STATEMENTS:,} top-level statements (at cell {number}); "
            "the grader reads at most that many: hand in the lab's notebook with your code")
    for node in tree.body:
        budget.check()
        kind = statement_kind(node)
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
            continue  # the template's `from .preprocessing import ...`: one namespace here
        if kind is None:
            if not (isinstance(node, (ast.Expr, ast.Pass))
                    and (isinstance(node, ast.Pass) or isinstance(node.value, ast.Constant))
                    ) and ast.dump(node) not in generated_statements():
                parsed.work(number)
            continue
        try:
            binds, now, later = analyse(node)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # symtable rejects a few things ast accepts (e.g. nonlocal at the top)
            parsed.syntax_notes.append(
                f"cell {number}: a statement at line {node.lineno} cannot be used")
            continue
        parsed.units.append(Unit(number, len(parsed.units), node, kind, binds, now, later))


def _redefinition_notes(graded: set[str], definers: dict[str, list[Unit]]) -> list[str]:
    """A note for each graded name defined in several cells: the last one is used."""
    notes = []
    for name in sorted(graded):
        defs = [u for u in definers.get(name, []) if u.kind != "import"]
        if len(defs) > 1:
            where = ", ".join(str(u.cell) for u in defs)
            what = "defined" if defs[-1].kind == "def" else "assigned"
            note = (f"`{name}` is {what} in cells {where}: the last one (cell {defs[-1].cell}) "
                    "is used, as when the notebook runs top to bottom")
            if is_stub(defs[-1].node) and not all(is_stub(u.node) for u in defs):
                note += ("; it is still the template's stub (raises NotImplementedError): "
                         "delete it, or move your solution below it")
            notes.append(note)
    return notes


def _unused_notes(parsed: _Parsed, used_units: set[int]) -> list[str]:
    """Notes on what the grader ignored: magics, statements that do work, and functions
    in cells it used nothing from."""
    notes = []
    if parsed.magic_cells:
        notes.append(f"IPython magics and shell lines (% ..., ! ...) in "
                     f"{_cells_text(parsed.magic_cells)} were ignored")
    if work_count := len(parsed.work_cells):
        notes.append(f"{work_count} top-level statement{'s' if work_count > 1 else ''} that do "
                     f"work (calls, plots, downloads, loops, ...) in "
                     f"{_cells_text(parsed.work_cells)} were not run: the grader only takes "
                     "definitions (functions, classes, imports, constants)")
    # Functions the grader did not use, in cells that hold nothing it used (the handout's
    # task1() ... task8(); not a helper beside graded code, nor the notebook's own set-up).
    used_cells = {u.cell for u in parsed.units if u.order in used_units}
    unused = sorted({f"{name}()" for u in parsed.units
                     if u.order not in used_units and u.kind == "def"
                     and u.cell not in used_cells
                     and ast.dump(u.node) not in generated_statements()
                     for name in u.binds if not name.startswith("_")})
    if unused:
        shown = ", ".join(unused[:15]) + (", ..." if len(unused) > 15 else "")
        notes.append(f"functions and classes the grader did not use: {shown} (it calls only "
                     "the names the lab's template defines; see the README for what a "
                     "handout-shaped submission is graded on)")
    return notes


def _in_script_terms(note: str) -> str:
    """A note phrased for a notebook (cells) said of a script (lines)."""
    note = re.sub(r"\bcell(s?) (\d)", r"line\1 \2", note)
    return note.replace("as when the notebook runs", "as when the script runs")


def _answers_markdown(cells: list[dict]) -> str:
    """answers.md from the markdown cells: each ``## `` heading's text, in its own cell and
    in the markdown cells after it, up to the next level-1 or level-2 heading."""
    sections: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for line in cell["source"].splitlines():
            match = HEADING.match(line)
            if match and len(match.group(1)) == 2:
                current = []
                sections.append((match.group(2), current))
            elif match:
                current = None
            elif current is not None:
                current.append(line)
        if current is not None:
            current.append("")
    out = ["# Answers (from the notebook)", ""]
    for heading, body in sections:
        out += [f"## {heading}", "", "\n".join(body).strip(), ""]
    return "\n".join(out)


def write_package(path: Path, dest: Path, *,
                  should_stop: Callable[[], bool] | None = None) -> list[str]:
    """Build the package of notebook ``path`` into folder ``dest``; returns the notes.

    ``dest`` gets one ``<module>.py`` per task, ``answers.md``, ``notebook_notes.json`` and
    :data:`LOCATIONS_FILE` (read back by ``load_implementation``, also where ``lab3 grade``
    stages the package for its child).
    """
    build = build_package(path, should_stop=should_stop)
    dest.mkdir(parents=True, exist_ok=True)
    for module, source in build.modules.items():
        (dest / f"{module}.py").write_text(source, encoding="utf-8")
    answers = build.answers
    beside = path.parent / "answers.md"
    if build.word == "line" and beside.is_file() and not beside.is_symlink():
        # A script has no markdown cells: its answers are the answers.md handed in with it.
        answers = beside.read_bytes()[:200_000].decode("utf-8", errors="replace")
    (dest / "answers.md").write_text(answers, encoding="utf-8")
    (dest / "notebook_notes.json").write_text(json.dumps(build.notes, indent=1), encoding="utf-8")
    from grader.probe.top_level import TOP_LEVEL_FILE

    (dest / TOP_LEVEL_FILE).write_text(build.top_level, encoding="utf-8")
    if build.locations is not None:
        (dest / LOCATIONS_FILE).write_text(json.dumps(build.locations.to_dict(), indent=1),
                                           encoding="utf-8")
    return build.notes
