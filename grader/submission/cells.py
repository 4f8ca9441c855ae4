"""Reading a submitted notebook or script into cells, and the bounds on what is read.

:func:`read_cells` gives a notebook's cells or a script's statements as pseudo-cells;
:func:`strip_magics` turns a cell into Python the grader can parse;
:func:`check_bounds` and :class:`ParseBudget` keep the parse of a hostile notebook
bounded. :mod:`grader.submission.notebook` builds the package from the cells.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from grader.errors import ParseInterrupted
from grader.probe.probing import ImplementationError

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
# Bounds on what the parent parses (it never runs a notebook, but parsing is work too): an
# honest lab notebook has under 200 cells, 2,000 top-level statements and 200 kB of code.
MAX_CODE_CELLS = 2_000
MAX_CODE_CHARS = 2_000_000
# Cell magics whose body is still Python (the magic line is dropped, the body parsed).
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
# A markdown heading of level 1 or 2: ``(hashes, title)``.
HEADING = re.compile(r"^(#{1,2})(?!#)\s*(.*?)\s*#*\s*$")
_MATPLOTLIB_MAGIC = re.compile(r"%matplotlib(\s|$)")


def read_notebook(path: Path) -> list[dict]:
    """The cells of an nbformat-4 notebook (``cell_type``, ``source`` as one string).

    Raises:
        ImplementationError: not JSON, not a notebook, or not nbformat 4.
    """
    name = path.name
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ImplementationError(f"{name}: over {MAX_NOTEBOOK_BYTES // 2**20} MB; clear the "
                                  "outputs (Cell > All Output > Clear) and submit it again")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImplementationError(f"{name} is not a notebook: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ImplementationError(
            f"{name} is not a valid notebook: not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); was it saved completely? Download it again from Jupyter "
            "(File > Download) and submit that file") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ImplementationError(f"{name} is not a Jupyter notebook (no list of cells)")
    if data.get("nbformat") != 4:
        raise ImplementationError(
            f"{name} is nbformat {data.get('nbformat')!r}; the grader reads nbformat 4 "
            "(save it with Jupyter 4 or newer, or convert it with `jupyter nbconvert --to "
            "notebook`)")
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            source = ""
        cells.append({"cell_type": str(cell.get("cell_type", "")), "source": source})
    return cells


def read_script(path: Path) -> list[dict]:
    """A Python script as pseudo-cells, one per top-level statement (statements sharing a
    line stay together), each numbered by its first line (decorators included): the
    notes and messages then speak of the script's lines. A script that does not parse is
    one cell numbered 1, so the note says where its syntax error is.

    Raises:
        ImplementationError: over the size cap, or not UTF-8 text.
    """
    name = path.name
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ImplementationError(f"{name}: over {MAX_NOTEBOOK_BYTES // 2**20} MB; hand in "
                                  "your lab script (no data pasted into it)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImplementationError(f"{name} is not UTF-8 text ({exc.reason}); save it as "
                                  "UTF-8 and submit it again") from None
    if len(text) > MAX_CODE_CHARS:
        raise ImplementationError(
            f"{name}: {len(text):,} characters of code (the grader reads at most "
            f"{MAX_CODE_CHARS:,}); remove generated or pasted data from the script")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [{"cell_type": "code", "source": text, "number": 1}]
    lines = text.splitlines(keepends=True)
    starts: list[int] = []
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        if not starts or first > starts[-1]:
            starts.append(first)
    cells = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(lines)
        cells.append({"cell_type": "code", "source": "".join(lines[start - 1:end]),
                      "number": start})
    return cells


def read_cells(path: Path) -> tuple[list[dict], str]:
    """(cells, the word for a cell's number): a notebook's cells ("cell"), or a script's
    statements ("line"). Raises ImplementationError as :func:`read_notebook` does."""
    if path.suffix.lower() == ".py":
        return read_script(path), "line"
    return read_notebook(path), "cell"


def strip_magics(source: str) -> tuple[str | None, bool, str | None]:
    """(python source or None, whether magics were removed, why the cell is not Python)."""
    lines = source.splitlines()
    stripped = False
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in _PYTHON_CELL_MAGICS:
            return None, True, f"a %%{magic} cell (not Python)"
    out = []
    for line in lines:
        body = line.lstrip()
        if body.startswith(("%", "!")):
            out.append(line[: len(line) - len(body)] + "pass")
            # `%matplotlib inline` only sets up plotting: the grader loses nothing by it.
            stripped = stripped or not _MATPLOTLIB_MAGIC.match(body)
        else:
            out.append(line)
    return "\n".join(out), stripped, None


class ParseBudget:
    """The time a notebook's parse may take, and a way to stop it early (Ctrl-C in a batch)."""

    def __init__(self, name: str, seconds: float, should_stop: Callable[[], bool] | None) -> None:
        self.name = name
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.should_stop = should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ParseInterrupted(f"{self.name}: reading the notebook was interrupted")
        if time.monotonic() > self.deadline:
            raise ImplementationError(
                f"{self.name}: reading the notebook took over {self.seconds:g} s and was "
                "stopped; hand in the lab's notebook with your code (no generated code)")


def check_bounds(name: str, cells: list[dict]) -> None:
    """Raises ImplementationError when the notebook has more code than the grader reads."""
    code = [c["source"] for c in cells if c["cell_type"] == "code"]
    if len(code) > MAX_CODE_CELLS:
        raise ImplementationError(
            f"{name}: {len(code):,} code cells (the grader reads at most {MAX_CODE_CELLS:,}); "
            "hand in the lab's notebook with your code")
    chars = sum(len(c) for c in code)
    if chars > MAX_CODE_CHARS:
        raise ImplementationError(
            f"{name}: {chars:,} characters of code (the grader reads at most "
            f"{MAX_CODE_CHARS:,}); remove generated or pasted data from the code cells")
