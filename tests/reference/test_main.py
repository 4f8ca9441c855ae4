"""``python -m reference``: the whole lab, run once with ``--quick`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reference.__main__ import main
from reference.lab import photo_paths

ROOT = Path(__file__).resolve().parents[2]
FIGURES = [
    "task3_predictions.png",
    "task4_resnet34_graph.png",
    "task5_filters.png",
    "task6_integrated_gradients.png",
    "task7_visualization_grid.png",
    "task8_noise_tunnel.png",
    "task9_comparison.png",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, pytestconfig, resolved_weights):
    out = tmp_path_factory.mktemp("lab") / "out"
    weights = pytestconfig.getoption("lab3_weights")
    proc = subprocess.run(
        # One thread: the smoke run is tiny, and on a busy machine (pytest-xdist, other
        # jobs) two spinning OpenMP threads per process slow it down many times over.
        [sys.executable, "-m", "reference", "--quick", "--out", str(out), "--weights", weights,
         "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, out


def test_exits_zero(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_prints_the_weights(quick_run, resolved_weights):
    proc, _ = quick_run
    assert proc.stdout.splitlines()[0] == resolved_weights.describe()


@pytest.mark.parametrize("name", [*FIGURES, "summary.md", "summary.json"])
def test_writes_output(quick_run, name):
    _, out = quick_run
    path = out / name
    if name == "task4_resnet34_graph.png" and not path.exists():
        path = path.with_suffix(".dot")  # no Graphviz: the graph's DOT source
    assert path.is_file() and path.stat().st_size > 0


def test_summary_states_the_weights(quick_run, resolved_weights):
    _, out = quick_run
    assert resolved_weights.describe() in (out / "summary.md").read_text(encoding="utf-8")


def test_summary_lists_every_photo(quick_run):
    _, out = quick_run
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert all(f"| {path.name} |" in summary for path in photo_paths())


def test_summary_times_every_task(quick_run):
    _, out = quick_run
    seconds = json.loads((out / "summary.json").read_text(encoding="utf-8"))["seconds"]
    assert [name.split(":")[0] for name in seconds] == [
        "Task 1", "Tasks 2-3", "Task 4", "Task 5", "Task 6", "Task 7", "Task 8", "Task 9"
    ]


def test_summary_records_the_thread_count(quick_run):
    _, out = quick_run
    assert "torch threads: 1\n" in (out / "summary.md").read_text(encoding="utf-8")


def test_photo_paths_fall_back_to_glob(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in photo_paths(tmp_path)] == ["a.jpg", "b.png"]


def test_photo_paths_fall_back_to_matplotlib_sample(tmp_path):
    assert [p.name for p in photo_paths(tmp_path)] == ["grace_hopper.jpg"]


def test_photo_paths_read_manifest_photos_only(tmp_path):
    for name in ("photo.jpg", "edge.png"):
        (tmp_path / name).write_bytes(b"x")
    manifest = {"images": [{"file": "edge.png", "kind": "edge"}, {"file": "photo.jpg", "kind": "photo"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert [p.name for p in photo_paths(tmp_path)] == ["photo.jpg"]


@pytest.mark.parametrize(
    "argv", [["--device", "tpu"], ["--weights", "no/such/file.pth"], ["--threads", "0"]]
)
def test_bad_option_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["standin", "pretrained"])
def test_saved_figures_say_when_the_weights_are_the_standin(tmp_path: Path, kind: str) -> None:
    # A PNG of python -m reference is seen away from summary.md: it must say itself that
    # its predictions are the stand-in's, not ImageNet classes.
    from matplotlib.figure import Figure

    from grader.refdata.weights import STANDIN_CAPTION, ResolvedWeights
    from reference.lab import FULL, LabRun, _Lab

    weights = ResolvedWeights(kind=kind, path=tmp_path / "w.pth", sha256="0" * 64)
    lab = _Lab(LabRun(tmp_path, "", "cpu", True, {}), FULL, weights)
    fig = Figure()
    fig.suptitle("Task 3: predictions")
    lab._save(fig, "task3_predictions.png", "Task 3")
    title = fig._suptitle.get_text()
    assert (STANDIN_CAPTION in title) == (kind == "standin")
    assert title.startswith("Task 3: predictions")
    assert (tmp_path / "task3_predictions.png").is_file()
