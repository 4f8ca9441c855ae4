"""Where a notebook (or script) submission defines the graded names: :class:`NotebookLocations`.

Saved beside the modules :func:`grader.submission.notebook.write_package` builds
(:data:`LOCATIONS_FILE`), it lets messages written for a package name the notebook's cells
(or the script's lines) instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.points import TASKS

TASK_MODULES = tuple(t.module for t in TASKS if t.module != "answers")
# Written beside a notebook's generated modules: where its graded names are defined.
LOCATIONS_FILE = "notebook_locations.json"


def task_number(module: str) -> int:
    return next(t.number for t in TASKS if t.module == module)


@dataclass(frozen=True)
class NotebookLocations:
    """Where a notebook submission defines the graded names, so that messages written for
    the package (``load_model in model.py``) can speak of the notebook instead.

    Attributes:
        notebook: the notebook's file name, e.g. ``"lab3.ipynb"``.
        cells: graded name -> the cell (numbered from 1 over all cells) of its last
            definition, the one that counts.
    """

    notebook: str
    cells: dict[str, int] = field(default_factory=dict)
    unit: str = "cell"  # "line" for a script: ``cells`` then holds line numbers

    def localize(self, message: str) -> str:
        """``message`` in the notebook's terms.

        ``load_model in model.py`` (or ```transform` in preprocessing.py``) becomes
        ``load_model in lab3.ipynb (cell 5)`` (no cell when the notebook does not define
        it); ``student_template/model.py`` becomes ``the Task 1 code cell of the lab's
        notebook``; any other ``model.py`` becomes ``lab3.ipynb``.
        """
        def replace(match: re.Match[str]) -> str:
            tick, name, template, module = match.groups()
            if name is not None:
                cell = self.cells.get(name)
                return f"{tick}{name}{tick} in {self.notebook}" + (
                    f" ({self.unit} {cell})" if cell else "")
            if template and self.unit == "line":  # a script: the template is where to look
                return f"student_template/{module}.py"
            if template:
                return f"the Task {task_number(module)} code cell of the lab's notebook"
            return self.notebook

        return _MODULE_MENTION.sub(replace, message)

    def to_dict(self) -> dict[str, object]:
        return {"notebook": self.notebook, "cells": dict(self.cells), "unit": self.unit}

    @classmethod
    def from_dict(cls, data: object) -> NotebookLocations | None:
        """Locations from :meth:`to_dict`'s form; None unless the types and sizes are what it
        writes (the data may come from a graded child: it only ever phrases messages)."""
        if not isinstance(data, dict):
            return None
        notebook, cells = data.get("notebook"), data.get("cells")
        unit = data.get("unit", "cell")
        if unit not in ("cell", "line"):
            return None
        if not (isinstance(notebook, str) and 0 < len(notebook) <= 255 and isinstance(cells, dict)
                and len(cells) <= 1000 and all(
                    isinstance(k, str) and k.isidentifier() and len(k) <= 100
                    and type(v) is int and v > 0 for k, v in cells.items())):
            return None
        return cls(notebook=notebook, cells=dict(cells), unit=unit)

    @classmethod
    def read(cls, path: Path) -> NotebookLocations | None:
        """The locations :func:`write_package` saved at ``path``; None when the file is not
        what it writes."""
        try:
            if path.stat().st_size > 256 * 1024:
                return None
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError):
            return None


_MODULE_NAMES = "|".join(TASK_MODULES)
# `name` in module.py | (student_template/)module.py
_MODULE_MENTION = re.compile(
    rf"(`?)([A-Za-z_]\w*)\1 in (?:{_MODULE_NAMES})\.py\b|(student_template/)?\b({_MODULE_NAMES})\.py\b"
)
