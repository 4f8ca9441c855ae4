"""``lab3 gradescope OUT.zip``: a Gradescope autograder running the same ``lab3 grade``.

Gradescope's autograder contract: the zip holds ``setup.sh`` (run once, as root,
when the image is built) and ``run_autograder`` (run per submission) at its
root; it is unpacked to ``/autograder/source``; the student's files are in
``/autograder/submission``; the result goes to ``/autograder/results/results.json``.

What the zip holds: the grader (``grader/``, ``fixtures/``, ``student_template/``,
``pyproject.toml``, ``constraints.txt``) and the reference's records for the
chosen weights, shipped as plain data in ``grader/refdata/reference_records/<weights>/``
(:func:`grader.refdata.reference_records.save_shipped`). The reference solution's code is
not included: the records are all the checks need. ``setup.sh`` stops with a
message when the image has no Python as new as ``requires-python``, else installs the
project (CPU torch wheels, the exact versions of ``constraints.txt``, so the
shipped records stay valid) and prepares the weights; ``run_autograder`` runs
``lab3 grade /autograder/submission`` and copies its results.json, or writes a
0-point results.json saying what failed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
import zipfile
from pathlib import Path

from grader.files import atomic_path
from grader.paths import PROJECT_ROOT

# setup.sh looks for python3, then python3.<MAX_PYTHON_MINOR> down to the oldest minor
# pyproject.toml's requires-python allows (:func:`min_python`).
MAX_PYTHON_MINOR = 14
SOURCE_ITEMS = ("grader", "fixtures", "student_template", "pyproject.toml", "constraints.txt",
                "README.md")
_SKIP = ("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "submissions")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope: runs once when the autograder image is built (as root, with network).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip graphviz bubblewrap >/dev/null
# lab3 needs Python {min_python} or newer (pyproject.toml requires-python): the image's python3,
# else a newer python3.X it already has.
PYTHON=""
for candidate in python3 {newer_pythons}; do
    if command -v "$candidate" >/dev/null 2>&1 && \\
            "$candidate" -c 'import sys; sys.exit(sys.version_info < ({min_tuple}))' 2>/dev/null; then
        PYTHON="$candidate"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    found=$(python3 --version 2>/dev/null || echo "no python3")
    echo "lab3 needs Python {min_python} or newer; this image has $found." >&2
    echo "Choose a newer base image in the autograder settings (Ubuntu 24.04 has Python 3.12)," >&2
    echo "or install python{min_python} and python{min_python}-venv in setup.sh before this check." >&2
    exit 1
fi
"$PYTHON" -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
# CPU wheels of torch, exact versions from constraints.txt (the shipped records need them).
/autograder/venv/bin/pip install -q \\
    --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \\
    -c /autograder/source/constraints.txt -e /autograder/source
{weights_step}
# Build matplotlib's font cache once, not in every graded submission.
/autograder/venv/bin/python -c "import matplotlib.pyplot"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope: runs once per submission. The grade comes from `lab3 grade` (sandboxed child,
# checks in this trusted process); this script only copies its results.json.
set -uo pipefail
mkdir -p /autograder/results
rm -rf /autograder/grades
/autograder/venv/bin/lab3 grade /autograder/submission --out /autograder/grades \\
    --weights {weights} --timeout {timeout:g} -j 1 --quiet --force
status=$?
if [ -f /autograder/grades/submission/results.json ]; then
    cp /autograder/grades/submission/results.json /autograder/results/results.json
else
    cat > /autograder/results/results.json <<EOF
{{"score": 0, "tests": [],
 "output": "The autograder could not grade this submission (lab3 grade exit $status); contact the staff."}}
EOF
fi
"""

WEIGHTS_STEPS = {
    "standin": "# Stand-in weights: deterministic, built offline.\n"
               "/autograder/venv/bin/python -c \"from grader.refdata.weights import standin_weights; "
               "print(standin_weights().describe())\"",
    "pretrained": "# torchvision's IMAGENET1K_V1 checkpoint into the torch hub cache.\n"
                  "/autograder/venv/bin/python -c \"from torchvision.models import resnet34, "
                  "ResNet34_Weights; resnet34(weights=ResNet34_Weights.IMAGENET1K_V1)\"",
    "checkpoint": "# The course's checkpoint ships in the zip (weights/).\ntrue",
}


def min_python() -> tuple[int, int]:
    """The oldest Python the project supports: ``requires-python = ">=3.X"`` of pyproject.toml
    (the Makefile refuses older ones the same way).

    Raises:
        ValueError: requires-python is missing or not of the form ``>=3.X``.
    """
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    spec = project.get("project", {}).get("requires-python", "")
    match = re.fullmatch(r"\s*>=\s*3\.(\d+)\s*", spec)
    if not match:
        raise ValueError(f"pyproject.toml: requires-python {spec!r}; setup.sh understands only "
                         "'>=3.X' (write the oldest supported Python that way)")
    return 3, int(match.group(1))


def setup_script(weights_kind: str) -> str:
    """``setup.sh`` for weights of ``weights_kind`` (a key of :data:`WEIGHTS_STEPS`): it stops
    with a message saying what to change when the image has no Python :func:`min_python`."""
    major, minor = min_python()
    newer = " ".join(f"python3.{m}" for m in range(MAX_PYTHON_MINOR, minor - 1, -1))
    values = {"{weights_step}": WEIGHTS_STEPS[weights_kind], "{newer_pythons}": newer,
              "{min_python}": f"{major}.{minor}", "{min_tuple}": f"{major}, {minor}"}
    script = SETUP_SH
    for key, value in values.items():
        script = script.replace(key, value)
    return script


def build_autograder_zip(
    zip_path: str | os.PathLike[str], *, weights: str = "auto", timeout: float = 600.0,
    secret: str | None = None, course: str | None = None,
) -> Path:
    """Write the autograder zip to ``zip_path`` and return its path.

    The course file (``course``, else as ``lab3 grade`` finds it; :mod:`grader.course`)
    travels as ``.lab3/course.toml``, where the autograder's ``lab3 grade`` finds it.

    The autograder probes the graded variant of the course secret (``secret``: its file,
    see :mod:`grader.run.variant`), like ``lab3 grade``: the zip carries the secret as
    ``.lab3/course-secret`` and the reference's records of that variant. Instructors upload
    the zip to Gradescope; students never see it.

    Raises:
        WeightsError: ``weights`` cannot be resolved.
        SecretError: the course secret file is malformed.
        CourseError: the course file is missing or invalid.
        GraderError: the reference's records are neither cached nor buildable here.
    """
    from grader.course import DEFAULT_COURSE_PATH, find_course
    from grader.errors import GraderError
    from grader.refdata.reference_records import ReferenceUnavailable, reference_for, save_shipped
    from grader.refdata.weights import resolve_weights
    from grader.run.variant import DEFAULT_SECRET_PATH, course_settings, secret_path

    course_file = find_course(course)
    resolved = resolve_weights(weights)
    settings = course_settings(secret)
    try:
        resolved, records = reference_for(resolved, settings)
    except ReferenceUnavailable as exc:
        raise GraderError(f"{exc}; build the zip where reference/ is installed") from exc

    target = Path(zip_path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab3-gradescope-") as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        for item in SOURCE_ITEMS:
            path = PROJECT_ROOT / item
            if path.is_dir():
                shutil.copytree(path, source / item, ignore=shutil.ignore_patterns(*_SKIP))
            elif path.is_file():
                shutil.copy2(path, source / item)
        shipped = source / "grader" / "refdata" / "reference_records"
        if shipped.exists():
            shutil.rmtree(shipped)
        save_shipped(records, resolved.id, shipped)
        # The autograder's lab3 grade finds it where the checkout keeps it (hidden from the
        # sandbox there as here).
        bundled = source / DEFAULT_SECRET_PATH.relative_to(PROJECT_ROOT)
        bundled.parent.mkdir(mode=0o700)
        shutil.copyfile(secret_path(secret), bundled)
        if course_file is not None:
            shutil.copyfile(course_file.path,
                            source / DEFAULT_COURSE_PATH.relative_to(PROJECT_ROOT))
        weights_arg = resolved.kind
        if resolved.kind == "checkpoint":
            (source / "weights").mkdir()
            shutil.copy2(resolved.path, source / "weights" / resolved.path.name)
            weights_arg = f"/autograder/source/weights/{resolved.path.name}"
        files = {
            "setup.sh": setup_script(resolved.kind),
            "run_autograder": RUN_AUTOGRADER.format(weights=weights_arg, timeout=timeout),
        }
        with atomic_path(target) as partial:
            _write_zip(partial, files, source)
            os.chmod(partial, 0o644)  # the instructor uploads it; mkstemp made it 0600
    return target


def _write_zip(partial: Path, files: dict[str, str], source: Path) -> None:
    """The autograder zip: ``files`` (executable scripts) and everything under ``source``."""
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o100755 << 16  # executable scripts
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())
