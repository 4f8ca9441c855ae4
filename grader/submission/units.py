"""The statements of a notebook's code cells that :func:`grader.submission.notebook.build_package`
may keep, and how a task module's source is assembled from them.

A :class:`Unit` is one top-level definition (import, function or class, assignment) with
the names it binds and loads (:func:`analyse`, with :mod:`symtable`); :func:`reachable`
follows the last definition of each name a task needs, and :func:`module_source` writes
the kept units imports first, then in dependency order.
"""

from __future__ import annotations

import ast
import heapq
import importlib.util
import symtable
from dataclasses import dataclass


@dataclass
class Unit:
    """One top-level statement of a code cell that may be kept."""

    cell: int
    order: int
    node: ast.stmt
    kind: str  # "import" | "def" | "assign"
    binds: set[str]
    loads_now: set[str]  # names evaluated when the statement runs
    loads_later: set[str]  # names a function or method body looks up when called


def analyse(node: ast.stmt) -> tuple[set[str], set[str], set[str]]:
    """(bound names, names loaded when it runs, names loaded by bodies when called)."""
    if isinstance(node, ast.AnnAssign):  # annotations are not evaluated (future import)
        node = ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)
    table = symtable.symtable(ast.unparse(node), "<cell>", "exec")
    binds = {s.get_name() for s in table.get_symbols()
             if s.is_assigned() or s.is_imported() or s.is_namespace()}
    now = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    later: set[str] = set()
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        later.update(s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced())
        stack.extend(child.get_children())
    return binds, now, later


def is_stub(node: ast.stmt) -> bool:
    """A function whose body (after its docstring and comments) only raises NotImplementedError."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [s for s in node.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def statement_kind(node: ast.stmt) -> str | None:
    """What a top-level statement is: a definition we may keep, or None (work; dropped)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return "def"
    if isinstance(node, (ast.Assign, ast.AugAssign)) or (
        isinstance(node, ast.AnnAssign) and node.value is not None
    ):
        return "assign"
    if isinstance(node, (ast.If, ast.Try)) and _only_defines(node):
        # `try: import x / except ImportError: ...` style guards: kept when they only define.
        return "assign"
    return None


def _only_defines(node: ast.stmt) -> bool:
    """An ``if``/``try`` whose branches only import, define, assign or pass (the bodies of
    its definitions are not looked into). One pass over the branches: linear in their size."""
    todo = [node]
    while todo:
        current = todo.pop()
        branches = [current.body, current.orelse]
        if isinstance(current, ast.Try):
            branches += [h.body for h in current.handlers] + [current.finalbody]
        for stmt in (s for branch in branches for s in branch):
            if isinstance(stmt, (ast.If, ast.Try)):
                todo.append(stmt)
            elif not (_kind_simple(stmt) or isinstance(stmt, ast.Pass) or (
                    isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))):
                return False
    return True


def _kind_simple(node: ast.stmt) -> bool:
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef, ast.Assign, ast.AugAssign)) or (
        isinstance(node, ast.AnnAssign) and node.value is not None)


def reachable(roots: set[str], definers: dict[str, list[Unit]]) -> list[Unit]:
    """The units that the last definitions of ``roots`` need, transitively."""
    keep: dict[int, Unit] = {}
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in definers:
            continue
        seen.add(name)
        unit = definers[name][-1]  # the last definition wins
        if unit.order not in keep:
            keep[unit.order] = unit
            todo.extend(unit.loads_now | unit.loads_later)
    return sorted(keep.values(), key=lambda u: u.order)


def module_source(notebook: str, keep: list[Unit], definers: dict[str, list[Unit]],
                   notes: list[str], word: str = "cell") -> str:
    """Imports first, then the other units in dependency order (cell order otherwise)."""
    imports = [u for u in keep if u.kind == "import"]
    rest = [u for u in keep if u.kind != "import"]
    kept_orders = {u.order for u in rest}
    deps: dict[int, set[int]] = {u.order: set() for u in rest}
    last_kept: dict[str, int] = {}
    for unit in sorted(rest, key=lambda u: u.order):
        for name in unit.loads_now - unit.binds:
            for other in reversed(definers.get(name, [])):
                if other.order in kept_orders:
                    deps[unit.order].add(other.order)
                    break
        for name in unit.binds:  # two kept units binding one name keep their cell order
            if name in last_kept:
                deps[unit.order].add(last_kept[name])
            last_kept[name] = unit.order
    # Kahn's algorithm, taking the earliest ready unit (cell order) first; a cycle falls back
    # to cell order for what is left. O(n log n) in the kept units.
    dependents: dict[int, list[int]] = {o: [] for o in deps}
    for order, needs in deps.items():
        needs.discard(order)
        for need in needs:
            dependents[need].append(order)
    waiting = {order: len(needs) for order, needs in deps.items()}
    by_order = {u.order: u for u in rest}
    ready = [order for order, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    pending = sorted(by_order)
    ordered: list[Unit] = []
    done: set[int] = set()
    cursor = 0
    while len(done) < len(by_order):
        if ready:
            order = heapq.heappop(ready)
        else:
            while pending[cursor] in done:
                cursor += 1
            order = pending[cursor]
        if order in done:
            continue
        done.add(order)
        ordered.append(by_order[order])
        for later in dependents[order]:
            waiting[later] -= 1
            if waiting[later] == 0 and later not in done:
                heapq.heappush(ready, later)

    lines = [f'"""Built by the lab3 grader from the notebook {notebook!r}: its definitions only."""',
             "", "from __future__ import annotations", ""]
    for unit in imports:
        module = _imported_module(unit.node)
        if module is not None and not _importable(module):
            note = (f"{word} {unit.cell}: `{ast.unparse(unit.node)[:80]}`: module {module!r} is not "
                    "installed where the grader runs; the import was skipped")
            if note not in notes:
                notes.append(note)
            continue
        lines += [f"# notebook {word} {unit.cell}", ast.unparse(unit.node)]
    for unit in ordered:
        lines += ["", "", f"# notebook {word} {unit.cell}", ast.unparse(unit.node)]
    return "\n".join(lines) + "\n"


def _imported_module(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Import):
        return node.names[0].name.split(".")[0]
    if isinstance(node, ast.ImportFrom) and node.module:
        return node.module.split(".")[0]
    return None


def _importable(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
