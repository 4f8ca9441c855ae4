"""Outputs with no algorithm behind them earn (almost) nothing in Tasks 5-9; neither does a
submission that patches the grader's probe code in its own process.

Issue 13: random images, constant maps with the right sum and random maps under the right
names and titles once earned about 40 of the 62 points of Tasks 5-9. Every such output is
shaped, typed, titled and summed like an honest one; only its content is wrong.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader.points import CHECKS
from grader.run.batch import grade_batch

REPO = Path(__file__).resolve().parents[3]
TASKS = ("filters", "integrated_gradients", "attribution_viz", "noise_tunnel", "comparison")
MAX_POINTS_WITHOUT_ALGORITHM = 5

SHAPED_NOISE = {
    "filters.py": '''
def visualize_filter(model, layer, filter_index, iterations=50, lr=0.1, *, image_size=224,
                     seed=None):
    return np.random.rand(image_size, image_size, 3).astype(np.float32)


def plot_filter_grid(model, layers=DEFAULT_LAYERS, filters=DEFAULT_FILTERS, *, iterations=50,
                     lr=0.1, image_size=224, seed=0):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(layers), len(filters))
    for r, layer in enumerate(layers):
        for c, f in enumerate(filters):
            axes[r][c].imshow(np.random.rand(image_size, image_size, 3))
            axes[r][c].set_title(f"{layer} filter {f}")
    return fig
''',
    "integrated_gradients.py": '''
def integrated_gradients(model, inputs, target, baselines=None, n_steps=50,
                         method="gausslegendre", internal_batch_size=None):
    # A constant map whose sum is exactly F(x) - F(baseline): complete, and meaningless.
    base = torch.zeros_like(inputs) if baselines is None else baselines
    with torch.no_grad():
        gap = model(inputs)[:, target] - model(base)[:, target]
    attr = torch.ones_like(inputs) * (gap / inputs[0].numel()).view(-1, 1, 1, 1)
    return attr, torch.zeros(inputs.shape[0])
''',
    "attribution_viz.py": '''
def visualize_attribution_grid(attributions, image, *, methods=METHODS, signs=SIGNS):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(methods), len(signs), squeeze=False)
    h, w = attributions.shape[-2:]
    for r, method in enumerate(methods):
        for c, sign in enumerate(signs):
            axes[r][c].imshow(np.random.rand(h, w, 3))
            axes[r][c].set_title(f"{method} / {sign}")
    return fig
''',
    "noise_tunnel.py": '''
def noise_tunnel(model, inputs, target, nt_type="smoothgrad", nt_samples=10, stdevs=0.2,
                 baselines=None, n_steps=50, seed=0):
    return torch.randn_like(inputs) * 0.01
''',
    "comparison.py": '''
NAMES = ("IntegratedGradients", "Saliency", "GradientShap", "Occlusion", "GuidedBackprop")


def compare_attributions(model, inputs, target, *, n_steps=50, seed=0):
    return {name: torch.randn_like(inputs) for name in NAMES}


def plot_comparison(attributions, image):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(attributions) + 1)
    axes[0].imshow(image[0].permute(1, 2, 0).numpy())
    axes[0].set_title("original")
    for ax, (name, attr) in zip(axes[1:], attributions.items()):
        ax.imshow(attr[0].sum(0).numpy(), cmap="RdBu")
        ax.set_title(name)
    return fig
''',
}

# Import-time code of a submission that rewrites the grader's own probe helpers in its process:
# figures and models then "look" perfect to any fact computed in the child.
PATCH_THE_PROBES = '''

import grader.probe.probing as _probing

_real_figure_facts = _probing.figure_facts


def _perfect_facts(record, name, fig):
    _real_figure_facts(record, name, fig)
    facts = record.data.get("figures", {}).get(name)
    if isinstance(facts, dict):
        for ax in facts.get("axes", []):
            ax["has_image"] = True
            ax["std"] = 99.0


def _clean_model(model):
    return {"training": [], "hooks": [], "state_sha256": "", "grad": False}


_probing.figure_facts = _perfect_facts
_probing.model_facts = _clean_model
import importlib as _importlib  # noqa: E402

for _task in ("filters", "integrated_gradients", "attribution_viz", "noise_tunnel", "comparison"):
    _module = _importlib.import_module(f"grader.tasks.{_task}")
    for _name, _fake in (("figure_facts", _perfect_facts), ("model_facts", _clean_model)):
        if hasattr(_module, _name):  # the names the probes bound at their import
            setattr(_module, _name, _fake)
'''


def _submission(root: Path, name: str, extra: str = "") -> Path:
    folder = root / name
    shutil.copytree(REPO / "student_template", folder, ignore=shutil.ignore_patterns("__pycache__"))
    for module, source in SHAPED_NOISE.items():
        path = folder / module
        path.write_text(path.read_text() + "\n" + source + extra)
    return folder


def _points(graded, tasks=TASKS) -> float:
    return sum(graded.score(t) for t in tasks)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["practice", "graded"])
def test_outputs_with_no_algorithm_behind_them_earn_at_most_5_of_tasks_5_to_9(
    tmp_path: Path, grade_impl, graded_test_settings, variant: str
) -> None:
    from grader.settings import DEFAULT_SETTINGS

    settings = DEFAULT_SETTINGS if variant == "practice" else graded_test_settings
    graded = grade_impl(_submission(tmp_path, "noise"), tasks=TASKS, settings=settings)
    possible = sum(c.points for c in CHECKS if c.task in TASKS)
    earned = _points(graded)
    detail = {t: graded.score(t) for t in TASKS}
    assert possible == 62 and earned <= MAX_POINTS_WITHOUT_ALGORITHM, detail


@pytest.mark.slow
def test_patching_the_graders_probes_from_inside_the_submission_gains_nothing(
    tmp_path: Path
) -> None:
    plain = _submission(tmp_path, "plain")
    patched = _submission(tmp_path, "patched", PATCH_THE_PROBES)
    out = tmp_path / "grades"
    result = grade_batch([str(plain), str(patched)], out=out, tasks=",".join(TASKS),
                         quiet=True)
    assert result.exit_code == 0
    scores = {name: json.loads((out / name / "report.json").read_text())["score"]
              for name in ("plain", "patched")}
    assert scores["patched"] <= scores["plain"] <= MAX_POINTS_WITHOUT_ALGORITHM, scores
