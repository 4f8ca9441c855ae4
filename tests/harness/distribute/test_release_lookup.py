"""A submission that answers from the release's shipped records earns nothing in `lab3 grade`.

The release ships the reference's records of the practice variant (so students can check
themselves offline). The cheat below implements nothing: each attribution function returns the
shipped tensor shaped like its input, and Task 9 returns shipped maps under the shipped names.
On the practice variant (a student's `pytest --impl`) the lookup finds the right answers; in
`lab3 grade`, which probes the graded variant of the course secret, they answer other inputs.
The batch runs with `--sandbox none` so the cheat can read the release: what stops it is the
variant, not the sandbox.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader.cli import main
from grader.distribute.release import build_release

REPO = Path(__file__).resolve().parents[3]
LOOKUP_TASKS = ("integrated_gradients", "noise_tunnel", "comparison")

LOOKUP = '''
import pathlib as _pathlib

from safetensors.torch import load_file as _load_file

_SHIPPED = _pathlib.Path({shipped!r})


def _shipped(task):
    path = _SHIPPED / f"{{task}}.safetensors"
    return _load_file(str(path)) if path.is_file() else {{}}


def _shaped_like(task, tensor, skip=("inputs", "baselines")):
    for key, value in sorted(_shipped(task).items()):
        if key not in skip and tuple(value.shape) == tuple(tensor.shape):
            return value.clone()
    return torch.zeros_like(tensor)
'''

CHEATS = {
    "integrated_gradients.py": LOOKUP + '''

def integrated_gradients(model, inputs, target, baselines=None, n_steps=50,
                         method="gausslegendre", internal_batch_size=None):
    attr = _shaped_like("integrated_gradients", inputs)
    return attr, torch.zeros(inputs.shape[0])
''',
    "noise_tunnel.py": LOOKUP + '''

def noise_tunnel(model, inputs, target, nt_type="smoothgrad", nt_samples=10, stdevs=0.2,
                 baselines=None, n_steps=50, seed=0):
    return _shaped_like("noise_tunnel", inputs)
''',
    "comparison.py": LOOKUP + '''

def compare_attributions(model, inputs, target, n_steps=50, seed=0):
    maps = {{}}
    for key, value in sorted(_shipped("comparison").items()):
        if tuple(value.shape[-2:]) == tuple(inputs.shape[-2:]) and key not in ("inputs",):
            maps[key.split("/")[-1]] = value.clone()
    return maps
''',
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _ = build_release(tmp_path_factory.mktemp("release") / "lab3")
    return out


@pytest.fixture(scope="module")
def lookup_submission(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shipped = next((release / "grader" / "refdata" / "reference_records").iterdir())
    folder = tmp_path_factory.mktemp("cheat") / "lookup"
    shutil.copytree(REPO / "student_template", folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for module, source in CHEATS.items():
        path = folder / module
        path.write_text(path.read_text() + "\n" + source.format(shipped=str(shipped)))
    folder.chmod(0o755)
    return folder


def _scores(out: Path, name: str) -> dict[str, float]:
    report = json.loads((out / name / "report.json").read_text())["report"]
    return {t["task"]: sum(c["score"] for c in t["checks"]) for t in report["tasks"]}


@pytest.mark.slow
def test_lookup_of_shipped_records_scores_on_the_practice_variant(
    lookup_submission: Path, tmp_path: Path
) -> None:
    # The control: the shipped records do answer the practice inputs, so the cheat is real.
    out = tmp_path / "practice"
    assert main(["grade", str(lookup_submission), "--out", str(out), "--sandbox", "none",
                 "--tasks", ",".join(LOOKUP_TASKS), "--variant", "practice", "-q"]) == 0
    assert _scores(out, "lookup")["integrated_gradients"] > 0


@pytest.mark.slow
def test_lookup_of_shipped_records_earns_nothing_in_lab3_grade(
    lookup_submission: Path, tmp_path: Path
) -> None:
    out = tmp_path / "graded"
    assert main(["grade", str(lookup_submission), "--out", str(out), "--sandbox", "none",
                 "--tasks", ",".join(LOOKUP_TASKS), "-q"]) == 0
    scores = _scores(out, "lookup")
    assert scores == dict.fromkeys(LOOKUP_TASKS, 0.0), scores
