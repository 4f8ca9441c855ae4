"""A generated class of submissions as an LMS export unpacks: honest, broken, hostile, colliding
names, symbolic links and archives. Used by tests/harness/run/test_class_batch.py and the batch
benchmark; each submission comes with the Task 1 points it must get and a phrase its row shows.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Expected:
    spec: str
    model_points: float
    problem: str = ""  # a phrase of the row's problems, "" when it has none


def _copy(base: str, dest: Path) -> Path:
    shutil.copytree(REPO / base, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder).as_posix())
    return target


def generate_class(root: Path, size: int = 200) -> list[Expected]:
    """``size`` submissions in ``root`` (one per kind, in turn) and what each must get."""
    root.mkdir(parents=True, exist_ok=True)
    out: list[Expected] = []
    for i in range(size):
        kind = i % 10
        if kind == 0:
            out.append(Expected(str(_copy("reference", root / f"student_{i:03d}")), 10))
        elif kind == 1:
            out.append(Expected(str(_copy("student_template", root / f"student_{i:03d}")), 0))
        elif kind == 2:
            tmp = _copy("reference", root / f".zipsrc_{i:03d}")
            out.append(Expected(str(_zip(tmp, root / f"student_{i:03d}.zip")), 10))
            shutil.rmtree(tmp)
        elif kind in (3, 4):
            # Names that sanitise alike: "anna nowak 3" and "anna_nowak_3".
            pair = i - kind + 3
            name = f"anna nowak {pair}" if kind == 3 else f"anna_nowak_{pair}"
            out.append(Expected(str(_copy("reference", root / name)), 10))
        elif kind == 5:
            folder = _copy("reference", root / f"student_{i:03d}")
            (folder / "model.py").write_text("def load_model(:\n")
            out.append(Expected(str(folder), 0, "SyntaxError"))
        elif kind == 6:
            link = root / f"student_{i:03d}"
            link.symlink_to(root / f"student_{i - 6:03d}")  # a classmate's honest work
            out.append(Expected(str(link), 0, "symbolic link"))
        elif kind == 7:
            bad = root / f"student_{i:03d}.zip"
            bad.write_bytes(b"PK\x03\x04 this is not a zip")
            out.append(Expected(str(bad), 0, "not a valid zip"))
        elif kind == 8:
            folder = _copy("reference", root / f"student_{i:03d}")
            with (folder / "model.py").open("a") as f:
                f.write("\n\ndef load_model(device='cpu'):\n    import os\n    os._exit(3)\n")
            out.append(Expected(str(folder), 0, "model: crashed"))
        else:
            name = "summary.csv" if i == 9 else f"\x1b[2Jstudent {i:03d}"
            out.append(Expected(str(_copy("reference", root / name)), 10))
    return out
