"""`lab3 grade` on a real class: output names never collide, links are refused, resume by source.

Unpacked LMS exports hold names that sanitise alike (``alice x``, ``alice_x``), names of the
batch's own outputs, and symbolic links (unzip and tar create them). Each submission's output
folder is a function of its source, and a resumed run skips a submission only when both its
source path and its content are what was graded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from grader.probe.probing import ImplementationError
from grader.run.batch import grade_batch
from grader.run.staging import Submission, find_submissions, stage

REPO = Path(__file__).resolve().parents[3]


def _submission(root: Path, name: str) -> Path:
    folder = root / name
    shutil.copytree(REPO / "student_template", folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _names(subs: list[Submission]) -> dict[str, str]:
    return {s.spec: s.name for s in subs}


def test_names_that_sanitise_alike_get_distinct_folders(tmp_path: Path) -> None:
    specs = [str(_submission(tmp_path, "alice x")), str(_submission(tmp_path, "alice_x"))]
    names = _names(find_submissions(specs))
    assert names[specs[1]] == "alice_x"  # unchanged by sanitising: the readable name
    assert names[specs[0]].startswith("alice_x-") and len(set(names.values())) == 2


def test_same_folder_name_in_two_places_gets_two_folders(tmp_path: Path) -> None:
    specs = [str(_submission(tmp_path / "a", "alice")), str(_submission(tmp_path / "b", "alice"))]
    names = _names(find_submissions(specs))
    assert len(set(names.values())) == 2 and all(n.startswith("alice-") for n in names.values())


def test_a_name_is_a_function_of_its_source_not_of_the_order(tmp_path: Path) -> None:
    specs = [str(_submission(tmp_path, "alice x")), str(_submission(tmp_path, "alice_x")),
             str(_submission(tmp_path, "bob"))]
    assert _names(find_submissions(specs)) == _names(find_submissions(specs[::-1]))


@pytest.mark.parametrize("reserved", ["summary.csv", "answers.csv", "SUMMARY.CSV"])
def test_names_of_the_batchs_own_outputs_are_reserved(tmp_path: Path, reserved: str) -> None:
    spec = str(_submission(tmp_path, reserved))
    (name,) = _names(find_submissions([spec])).values()
    assert name.casefold() != reserved.casefold() and name.startswith(reserved.replace(".", "."))


def test_a_linked_submission_is_refused_with_the_reason(tmp_path: Path) -> None:
    real = _submission(tmp_path, "bob")
    link = tmp_path / "alice"
    link.symlink_to(real)
    (sub,) = find_submissions([str(link)])
    assert sub.problem is not None and "symbolic link" in sub.problem


@pytest.mark.parametrize("inner", ["student_template", "work"])
def test_a_linked_module_folder_inside_a_submission_is_refused(tmp_path: Path, inner: str) -> None:
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / inner).symlink_to(REPO / "reference")
    (sub,) = find_submissions([str(alice)])
    with pytest.raises(ImplementationError, match="symbolic link"):
        stage(sub, tmp_path / "dest", tmp_path / "unpack")


def _grade(out: Path, *specs: str) -> int:
    return grade_batch(list(specs), out=out, tasks="model", sandbox_mode="none",
                       variant="practice", quiet=True).exit_code


def _results_mtime(out: Path, name: str) -> int:
    return (out / name / "results.json").stat().st_mtime_ns


def test_resume_skips_only_the_same_source_with_the_same_content(tmp_path: Path) -> None:
    alice = _submission(tmp_path / "class", "alice")
    out = tmp_path / "grades"
    assert _grade(out, str(alice)) == 0
    report = json.loads((out / "alice" / "report.json").read_text())
    assert report["source"]["path"] == str(alice.resolve()) and len(report["source"]["sha256"]) == 64
    first = _results_mtime(out, "alice")
    assert _grade(out, str(alice)) == 0
    assert _results_mtime(out, "alice") == first  # unchanged: skipped
    (alice / "model.py").write_text((alice / "model.py").read_text() + "\n# resubmitted\n")
    assert _grade(out, str(alice)) == 0
    assert _results_mtime(out, "alice") != first  # new content: regraded


def test_a_source_graded_before_keeps_its_folder_when_a_namesake_arrives(tmp_path: Path) -> None:
    first = _submission(tmp_path / "a", "alice")
    out = tmp_path / "grades"
    assert _grade(out, str(first)) == 0
    second = _submission(tmp_path / "b", "alice")
    names = _names(find_submissions([str(first), str(second)], out))
    assert names[str(first)] == "alice" and names[str(second)].startswith("alice-")


def test_every_folder_of_a_resumed_batch_holds_its_own_source(tmp_path: Path) -> None:
    specs = [str(_submission(tmp_path, "alice x")), str(_submission(tmp_path, "alice_x"))]
    out = tmp_path / "grades"
    assert _grade(out, specs[0]) == 0
    assert _grade(out, *specs) == 0
    sources = {json.loads((f / "report.json").read_text())["source"]["path"]
               for f in out.iterdir() if f.is_dir()}
    assert sources == {str(Path(s).resolve()) for s in specs}
    assert len([f for f in out.iterdir() if f.is_dir()]) == 2
    assert os.path.isfile(out / "summary.csv")
