"""``lab3 release OUT_DIR``: the student distribution, without the solution.

What a student gets (see :func:`build_release`)::

    OUT_DIR/
      README.md                 how to set up, run pytest, read the score table
      Makefile                  `make test` (= pytest --impl student_template), no demo
      pyproject.toml            the project's, packages = student_template + grader only
      constraints.txt, conftest.py
      student_template/         the stubs and answers.md
      grader/                   the grader, without grader/hidden/ (the hidden checks)
        refdata/reference_records/<weights id>/   the reference's records (plain data) + meta.json
      tests/lab/                one test per visible check
      fixtures/images/          the photos the visible probes use, and their manifest

Left out: ``reference/`` (code and answers), ``tests/harness`` and ``tests/reference``
(their snapshots hold reference outputs), ``benchmarks/``, caches and ``.pyc`` files,
the fixtures only hidden checks use, ``fixtures/make_fixtures.py`` (it describes them).

Hidden checks are declared apart, so the release leaves them out whole: their rows in
``grader/hidden/__init__.py`` (:func:`grader.hidden.check_specs`), their check functions and
own probing in ``grader/hidden/<task>.py``, and an entry in :data:`HIDDEN_RECORD_DATA` below
(what their probing recorded). Adding one means those three and nothing else: the release
copies ``grader/`` without ``grader/hidden/`` and edits no source for it. Without that
folder the release's ``grader/points.py`` has no hidden rows, and its
``RELEASE_HIDDEN_POINTS`` is what the visible rows leave of ``TOTAL_POINTS`` (the
instructor's table adds up to it), so the student's pytest table says how many points run
at submission with nothing rewritten. A course file (``course``, :mod:`grader.course`) is
baked into the release's ``grader/points.py`` (``RELEASE_COURSE``: the visible checks'
points; ``RELEASE_COURSE_HIDDEN_POINTS``: what the hidden checks are worth under it), so the
student's pytest table and total follow it. What the hidden probes recorded is stripped from
the shipped records (:data:`HIDDEN_RECORD_DATA`), as are the reference's free-text
answers. :func:`audit_release` then scans every file of the release for the
reference's source lines, its answers, hidden check names, hidden inputs and a
``grader/hidden/`` folder; the build fails if it finds any (``tests/harness/test_release.py``
runs it too): the safety net, should a hidden name or input reach a shipped file.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from grader.errors import ReleaseError
from grader.paths import PROJECT_ROOT, RELEASE_README
from grader.probe.records import Record

COPIED = ("student_template", "grader", "tests/lab", "conftest.py", "constraints.txt")
# release.py names the hidden checks and needs reference/: an instructor tool, it stays home.
# grader/hidden/ (HIDDEN_DIR) holds the hidden checks: left out whole (see _ignore).
HIDDEN_DIR = PROJECT_ROOT / "grader" / "hidden"
_SKIP = ("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".ruff_cache", "reference_records",
         "release.py", "release_README.md", "*.orig", "*.rej", "*~")
# Fixture kinds the visible probes read (grader/probe/inputs.py image_paths); the rest stay home.
SHIPPED_FIXTURE_KINDS = ("photo",)
# What each hidden check's probe recorded: (data key listing its inputs, prefix of its calls,
# types and tensors). A hidden check without an entry here stops the build: its data would ship.
HIDDEN_RECORD_DATA: dict[str, tuple[str, str]] = {
    "preprocessing::output_edge_cases": ("edges", "edge_"),
}
# Shortest reference source line the audit looks for (shorter ones are too generic: `return x`).
_MIN_SOURCE_LINE = 30
# Modes of what the release holds (publish_modes).
DIR_MODE = 0o755
FILE_MODE = 0o644


def build_release(
    out_dir: str | Path, *, weights: str = "auto", force: bool = False,
    course: str | None = None,
) -> tuple[Path, list[str]]:
    """Write the student release to ``out_dir``; returns it and a line per shipped record set.

    ``course``: the course file whose points the release's table takes (else as
    ``lab3 grade`` finds it: ``$LAB3_COURSE_FILE``, ``.lab3/course.toml``; ``none``: none).

    Records are shipped for the stand-in weights always, and for ``weights`` too when
    they resolve to other weights (the real IMAGENET1K_V1 file, or a checkpoint).

    Raises:
        ReleaseError: ``out_dir`` is not empty (without ``force``), the reference's records
            are neither cached nor buildable here, or the finished release fails the audit.
        CourseError: the course file is missing or invalid.
    """
    from grader.course import find_course
    from grader.points import CHECKS

    course_file = find_course(course)

    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ReleaseError(f"{out} is not empty (--force replaces it)")
        shutil.rmtree(out)
    hidden = [c for c in CHECKS if c.hidden]
    missing = [c.id for c in hidden if c.id not in HIDDEN_RECORD_DATA]
    if missing:
        raise ReleaseError(f"hidden checks {missing} have no entry in "
                           "grader/distribute/release.py HIDDEN_RECORD_DATA (what to strip from records)")
    bundles = _reference_bundles(weights)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        _copy_sources(tmp)
        _copy_fixtures(tmp)
        hidden_points = sum(c.points for c in hidden)
        if course_file is not None and course_file.points:
            hidden_points = _bake_course(tmp, course_file)
        described = []
        for bundle in bundles:
            _save_stripped(bundle, tmp / "grader" / "refdata" / "reference_records", hidden)
            described.append(bundle.describe().replace("from cache", "").replace(
                "from probed", "").rstrip(", "))
        _write_project_files(tmp, hidden_points, described, course_file)
        problems = audit_release(tmp)
        if problems:
            raise ReleaseError("the release would leak: " + "; ".join(problems[:10]))
        publish_modes(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, described


def publish_modes(root: Path) -> None:
    """Make the release under ``root`` readable by everyone, writable by its owner only.

    Directories 0755, files 0644, whatever the umask (the build's temporary folder is
    0700, files it writes follow the umask): the release is meant for the course's other
    users, e.g. a shared course folder, and holds nothing secret (:func:`audit_release`).
    Who can reach it is still decided by the folder it is written into. Nothing in it is
    executed directly (``make``, ``pytest`` and ``pip`` read it), so no file is executable.
    """
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)


# --------------------------------------------------------------------------- records


def _reference_bundles(weights: str) -> list:
    from grader.refdata.reference_records import ReferenceUnavailable, load_reference_records
    from grader.refdata.weights import activated, resolve_weights, standin_weights
    from grader.settings import DEFAULT_SETTINGS

    resolved = [standin_weights()]
    extra = resolve_weights(weights)
    if extra.id != resolved[0].id:
        resolved.append(extra)
    bundles = []
    for w in resolved:
        try:
            with activated(w):
                bundles.append(load_reference_records(w, DEFAULT_SETTINGS))
        except ReferenceUnavailable as exc:
            raise ReleaseError(f"{exc}; build the release where reference/ is installed") \
                from exc
    return bundles


def strip_record(record: Record, hidden_ids: Iterable[str]) -> Record:
    """A copy of a reference record without hidden checks' data or the reference's answers."""
    data = json.loads(json.dumps(record.data))
    tensors = dict(record.tensors)
    for check_id in hidden_ids:
        task = check_id.split("::", 1)[0]
        if task != record.task:
            continue
        key, prefix = HIDDEN_RECORD_DATA[check_id]
        data.pop(key, None)
        for section in ("calls", "types"):
            if isinstance(data.get(section), dict):
                data[section] = {k: v for k, v in data[section].items()
                                 if not k.startswith(prefix)}
        tensors = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    if record.task == "answers" and isinstance(data.get("answers"), dict):
        # The reference's answers are the model answers: only their headings ship.
        data["answers"] = {heading: "" for heading in data["answers"]}
    return Record(task=record.task, data=data, tensors=tensors)


def _save_stripped(bundle, root: Path, hidden) -> None:
    from grader.refdata.reference_records import save_shipped

    ids = [c.id for c in hidden]
    records = {t: strip_record(r, ids) for t, r in bundle.records.items()}
    meta = dict(bundle.meta, release={"hidden_checks_removed": len(ids),
                                      "answers_text_removed": True})
    save_shipped(replace(bundle, records=records, meta=meta), bundle.meta["weights_id"], root)


# --------------------------------------------------------------------------- files


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What :func:`_copy_sources` leaves out of ``folder``: :data:`_SKIP`, and
    ``grader/hidden/`` whole."""
    ignored = set(shutil.ignore_patterns(*_SKIP)(folder, names))
    if Path(folder) == HIDDEN_DIR.parent and HIDDEN_DIR.name in names:
        ignored.add(HIDDEN_DIR.name)
    return ignored


def _copy_sources(dest: Path) -> None:
    for item in COPIED:
        src = PROJECT_ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=_ignore)
        else:
            shutil.copy2(src, dest / item)


def _copy_fixtures(dest: Path) -> None:
    images = PROJECT_ROOT / "fixtures" / "images"
    manifest = json.loads((images / "manifest.json").read_text())
    kept = [e for e in manifest["images"] if e["kind"] in SHIPPED_FIXTURE_KINDS]
    target = dest / "fixtures" / "images"
    target.mkdir(parents=True)
    for entry in kept:
        shutil.copy2(images / entry["file"], target / entry["file"])
    (target / "manifest.json").write_text(json.dumps(dict(manifest, images=kept), indent=2) + "\n")
    readme = (PROJECT_ROOT / "fixtures" / "README.md").read_text()
    photos = re.search(r"^### Photos\n.*?(?=^##|\Z)", readme, re.S | re.M)
    (dest / "fixtures" / "README.md").write_text(
        "# fixtures\n\nThe photos the grader's probes use (`images/manifest.json`). "
        "Nothing is downloaded at run time.\n\n" + (photos.group(0) if photos else ""))


def _bake_course(dest: Path, course) -> float:
    """Write ``course``'s points into the release's ``grader/points.py``; the points of the
    hidden checks under it. Hidden checks' ids stay home: only their sum ships."""
    from grader.points import effective_checks

    table = effective_checks(course)
    visible = {c.id: c.points for c in table if c.table_points is not None and not c.hidden}
    hidden_points = sum(c.points for c in table if c.hidden)
    points_py = dest / "grader" / "points.py"
    source = points_py.read_text()
    for line, value in ((r"^RELEASE_COURSE: dict\[str, float\] = \{\}$",
                         f"RELEASE_COURSE: dict[str, float] = {visible!r}"),
                        (r"^RELEASE_COURSE_HIDDEN_POINTS: float \| None = None$",
                         f"RELEASE_COURSE_HIDDEN_POINTS: float | None = {hidden_points!r}")):
        source, count = re.subn(line, lambda _m, v=value: v, source, flags=re.M)
        if count != 1:
            raise ReleaseError(f"grader/points.py has no line matching {line!r}")
    points_py.write_text(source)
    return hidden_points


def _write_project_files(dest: Path, hidden_points: float, described: list[str],
                         course=None) -> None:
    from grader.points import total_points

    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    pyproject, count = re.subn(r'^include = \[.*\]$', 'include = ["student_template*", "grader*"]',
                               pyproject, flags=re.M)
    if count != 1:
        raise ReleaseError("pyproject.toml: no `include = [...]` line under packages.find")
    (dest / "pyproject.toml").write_text(pyproject)
    (dest / "Makefile").write_text(STUDENT_MAKEFILE)
    total = total_points(course)
    visible = total - hidden_points
    readme = RELEASE_README.read_text()
    for key, value in {"{visible}": f"{visible:g}", "{hidden}": f"{hidden_points:g}",
                       "{total}": f"{total:g}",
                       "{records}": "\n".join(f"- {d}" for d in described)}.items():
        readme = readme.replace(key, value)
    (dest / "README.md").write_text(readme)


STUDENT_MAKEFILE = """\
# `make test` grades your student_template/ (creates .venv/ on first use).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
IMPL   ?= student_template
PYTEST_ARGS ?=

.PHONY: test clean

$(PY):
\t$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
\t$(PY) -m pip install -q --upgrade pip
\t$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
\ttouch $(STAMP)

test: $(STAMP)
\t$(PY) -m pytest --impl $(IMPL) $(PYTEST_ARGS)

clean:
\trm -rf $(VENV) .pytest_cache
"""


# --------------------------------------------------------------------------- audit


def _shipped_text() -> str:
    """The text of the instructor's files a release legitimately copies, concatenated."""
    texts: list[str] = []
    for item in COPIED:
        src = PROJECT_ROOT / item
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix in (".py", ".md", ".txt", ".toml") and path.name != "release.py" \
                    and not path.is_relative_to(HIDDEN_DIR):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def _reference_fingerprints() -> tuple[list[str], list[str]]:
    """Lines of reference/*.py function bodies, and of the reference's answers, that no file
    a release legitimately ships contains (the grader's own code may share a line or two,
    e.g. a display helper quoted in a generated notebook cell)."""
    ref = PROJECT_ROOT / "reference"
    shipped = _shipped_text()
    code: list[str] = []
    for path in sorted(ref.glob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring is the interface, shared with the template
            for stmt in body:
                for line in lines[stmt.lineno - 1:stmt.end_lineno]:
                    line = line.strip()
                    if len(line) >= _MIN_SOURCE_LINE and not line.startswith("#") and \
                            line not in shipped:
                        code.append(line)
    answers: list[str] = []
    answers_md = ref / "answers.md"
    if answers_md.is_file():
        answers = [ln.strip() for ln in answers_md.read_text().splitlines()
                   if len(ln.strip()) >= _MIN_SOURCE_LINE and ln.strip() not in shipped
                   and not ln.lstrip().startswith(("#", "<!--"))]
    return sorted(set(code)), answers


def audit_release(root: Path) -> list[str]:
    """What in ``root`` would leak the solution or hidden checks (empty when nothing).

    Looks at every file (text and binary): reference modules, ``.pyc`` / ``__pycache__``,
    source lines of ``reference/*.py``, lines of ``reference/answers.md``, names of hidden
    checks, the file names of fixtures only hidden checks use, and a ``grader/hidden/`` folder.
    """
    from grader.points import CHECKS

    root = Path(root)
    code, answers = _reference_fingerprints()
    needles = [("reference code", s) for s in code] + [("reference answer", s) for s in answers]
    needles += [("hidden check name", c.name) for c in CHECKS if c.hidden]
    manifest = json.loads((PROJECT_ROOT / "fixtures" / "images" / "manifest.json").read_text())
    needles += [("hidden input", e["file"]) for e in manifest["images"]
                if e["kind"] not in SHIPPED_FIXTURE_KINDS]
    problems = []
    if (root / "reference").exists():
        problems.append("reference/ is present")
    if (root / "grader" / HIDDEN_DIR.name).exists():
        problems.append("grader/hidden/ is present")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.name == "__pycache__" or path.suffix in (".pyc", ".pyo"):
            problems.append(f"{rel}: compiled Python")
            continue
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for what, needle in needles:
            # Records are JSON: a line with quotes or backslashes is stored escaped.
            if needle in text or json.dumps(needle)[1:-1] in text:
                problems.append(f"{rel}: {what} {needle[:60]!r}")
                break
    return problems
