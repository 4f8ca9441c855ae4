"""The whole laboratory run with the reference solution: Tasks 1-9 into one folder.

``run_lab(out_dir)`` resolves the weights, classifies the fixture photos and writes
one figure per task plus ``summary.md`` (weights, library versions, predictions,
time per task). ``python -m reference`` is its command line.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from tqdm import tqdm

from ._common import rows_per_pass
from .attribution_viz import display_arrays, draw_attribution, visualize_attribution_grid
from .comparison import compare_attributions, plot_comparison
from .filters import plot_filter_grid
from .integrated_gradients import integrated_gradients
from .noise_tunnel import noise_tunnel_all

if TYPE_CHECKING:
    from grader.refdata.weights import ResolvedWeights

IMAGES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "images"


@dataclass(frozen=True)
class Settings:
    """Sizes of the expensive tasks; :data:`FULL` is the handout's, :data:`QUICK` a smoke test."""

    filter_iterations: int = 50
    filter_image_size: int = 224
    ig_steps: int = 50
    nt_samples: int = 10
    nt_steps: int = 50
    nt_stdevs: float = 0.2
    compare_steps: int = 50
    # Side of the image the attribution tasks (6-9) explain; None: the preprocessed 224.
    attribution_size: int | None = None
    graph_image_size: int = 224


FULL = Settings()
QUICK = Settings(
    filter_iterations=3,
    filter_image_size=64,
    ig_steps=8,
    nt_samples=2,
    nt_steps=4,
    compare_steps=4,
    attribution_size=64,
    graph_image_size=64,
)


@dataclass(frozen=True)
class Prediction:
    """Task 3's result for one photo."""

    file: str
    label: str
    index: int
    score: float


@dataclass
class LabRun:
    """What one run did: plain data, written to ``summary.md`` and ``summary.json``."""

    out_dir: Path
    weights: str
    device: str
    quick: bool
    versions: dict[str, str]
    predictions: list[Prediction] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # CPU time of this process (all threads); much above 2 x wall means busy-waiting
    # threads on an oversubscribed machine.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    threads: int = 0
    files: dict[str, str] = field(default_factory=dict)
    failed: str | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data


def run_lab(
    out_dir: str | Path,
    *,
    weights: str = "auto",
    device: str = "cpu",
    quick: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> LabRun:
    """Run Tasks 1-9 with the reference and write their figures and ``summary.md``.

    Args:
        out_dir: folder for the outputs (created).
        weights: ``auto``, ``standin``, ``pretrained`` or a checkpoint path
            (``grader.refdata.weights.resolve_weights``).
        device: torch device for the model and the attributions.
        quick: :data:`QUICK` settings instead of the handout's (:data:`FULL`).
        progress: show a tqdm bar over the tasks on stderr.
        threads: ``torch.set_num_threads(threads)`` for the run (restored after);
            ``None`` keeps torch's default (one per core). On a machine busy with
            other jobs, 1 is often several times faster: waiting OpenMP threads spin.

    Returns:
        the :class:`LabRun`; ``summary.md`` is written even when a task raises (the
        exception then propagates, and the summary names the failed task).

    Raises:
        grader.refdata.weights.WeightsError: the weights cannot be resolved.
    """
    from grader.refdata.weights import activated, resolve_weights

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_weights(weights)
    print(resolved.describe(), flush=True)
    run = LabRun(out, resolved.describe(), device, quick, _versions())
    lab = _Lab(run, QUICK if quick else FULL, resolved)
    bar = tqdm(lab.tasks(), desc="lab3", unit="task", disable=not progress)
    # activated: models.resnet34(weights=IMAGENET1K_V1) loads the resolved weights
    # offline; the caller's TORCH_HOME comes back afterwards.
    default_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        run.threads = torch.get_num_threads()
        with activated(resolved):
            for name, task in bar:
                bar.set_postfix_str(name)
                _timed(run, name, task)
    finally:
        bar.close()
        _write_summary(run)
        torch.set_num_threads(default_threads)
    return run


def _timed(run: LabRun, name: str, task: Callable[[], None]) -> None:
    """Run one task, recording its wall and CPU time, and its name if it raises."""
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        task()
    except BaseException:
        run.failed = name
        raise
    finally:
        run.seconds[name] = time.perf_counter() - start
        run.cpu_seconds[name] = time.process_time() - cpu_start


class _Lab:
    """State shared by the tasks of one run (model, photos, the explained image)."""

    def __init__(self, run: LabRun, settings: Settings, weights: ResolvedWeights) -> None:
        self.run = run
        self.settings = settings
        self.weights = weights
        self.device = torch.device(run.device)

    def tasks(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("Task 1: model and labels", self.task1),
            ("Tasks 2-3: preprocess and predict", self.task3),
            ("Task 4: model graph", self.task4),
            ("Task 5: filter visualisation", self.task5),
            ("Task 6: Integrated Gradients", self.task6),
            ("Task 7: visualisation methods x signs", self.task7),
            ("Task 8: NoiseTunnel", self.task8),
            ("Task 9: algorithm comparison", self.task9),
        ]

    def task1(self) -> None:
        from .model import load_labels, load_model

        self.model = load_model(self.device)
        self.labels = load_labels()

    def task3(self) -> None:
        from .inference import predict_batch
        from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, load_image, preprocess_image

        self.photos = photo_paths()
        results = predict_batch(self.model, self.photos, self.labels)
        self.run.predictions = [
            Prediction(path.name, label, index, round(score, 4))
            for path, (label, index, score) in zip(self.photos, results, strict=True)
        ]
        fig = _predictions_figure(
            [load_image(path) for path in self.photos], self.run.predictions
        )
        self._save(fig, "task3_predictions.png", "Tasks 2-3")

        # Tasks 6-9 explain the first photo's predicted class.
        self.target = self.run.predictions[0].index
        x = preprocess_image(self.photos[0])  # (1, 3, 224, 224), normalized
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        image01 = (x * std + mean).clamp(0, 1)  # what the model saw, in [0, 1] for display
        if self.settings.attribution_size is not None:
            size = (self.settings.attribution_size,) * 2
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
            image01 = F.interpolate(image01, size=size, mode="bilinear", antialias=True)
        self.x = x.to(self.device)
        self.image01 = image01.clamp(0, 1)

    def task4(self) -> None:
        from .graph import render_model_graph

        path = render_model_graph(
            self.model,
            self.run.out_dir / "task4_resnet34_graph",
            image_size=self.settings.graph_image_size,
        )
        self.run.files["Task 4"] = path.name

    def task5(self) -> None:
        fig = plot_filter_grid(
            self.model,
            iterations=self.settings.filter_iterations,
            image_size=self.settings.filter_image_size,
            seed=0,
        )
        self._save(fig, "task5_filters.png", "Task 5")

    def task6(self) -> None:
        self.ig, delta = integrated_gradients(
            self.model,
            self.x,
            self.target,
            n_steps=self.settings.ig_steps,
            internal_batch_size=rows_per_pass(self.x),
        )
        self.ig = self.ig.cpu()
        label = self.labels[self.target]
        panels = {
            "Original image": None,
            f"IG for '{label}' (|delta| = {abs(float(delta[0])):.2g})": self.ig,
        }
        self._save(_panels(panels, self.image01), "task6_integrated_gradients.png", "Task 6")

    def task7(self) -> None:
        fig = visualize_attribution_grid(self.ig, self.image01)
        self._save(fig, "task7_visualization_grid.png", "Task 7")

    def task8(self) -> None:
        smoothed = noise_tunnel_all(
            self.model,
            self.x,
            self.target,
            nt_samples=self.settings.nt_samples,
            stdevs=self.settings.nt_stdevs,
            n_steps=self.settings.nt_steps,
            seed=0,
        )
        panels = {"Original image": None, "IntegratedGradients": self.ig}
        panels.update({f"NoiseTunnel {t}": a.cpu() for t, a in smoothed.items()})
        self._save(_panels(panels, self.image01), "task8_noise_tunnel.png", "Task 8")

    def task9(self) -> None:
        results = compare_attributions(
            self.model, self.x, self.target, n_steps=self.settings.compare_steps, seed=0
        )
        fig = plot_comparison({k: v.cpu() for k, v in results.items()}, self.image01)
        self._save(fig, "task9_comparison.png", "Task 9")

    def _save(self, fig: Figure, name: str, task: str) -> None:
        from grader.refdata.weights import mark_standin

        mark_standin(fig, self.weights)  # the PNG says so when it is the stand-in's
        fig.savefig(self.run.out_dir / name, dpi=100)
        self.run.files[task] = name


def photo_paths(images_dir: Path = IMAGES_DIR) -> list[Path]:
    """The photos to classify: ``manifest.json``'s entries of kind ``photo``.

    Without a manifest: every ``*.jpg`` / ``*.jpeg`` / ``*.png`` of ``images_dir``;
    without those, matplotlib's sample ``grace_hopper.jpg`` (always installed).
    """
    manifest = images_dir / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("images", [])
        paths = [images_dir / e["file"] for e in entries if e.get("kind") == "photo"]
    else:
        paths = sorted(
            p for p in images_dir.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
    paths = [p for p in paths if p.is_file()]
    if not paths:
        from matplotlib import cbook

        paths = [Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    return paths


def _predictions_figure(images: list, predictions: list[Prediction]) -> Figure:
    fig = Figure(figsize=(3.2 * len(images), 3.6), layout="constrained")
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for ax, img, pred in zip(axes, images, predictions, strict=True):
        ax.imshow(img)
        ax.set_title(f"{pred.file}\n'{pred.label}' ({pred.score:.2f})", fontsize=9)
        ax.axis("off")
    return fig


def _panels(panels: dict[str, torch.Tensor | None], image01: torch.Tensor) -> Figure:
    """One row: the image (value None) or an absolute-value heat map per title."""
    fig = Figure(figsize=(3.2 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, attributions) in zip(axes, panels.items(), strict=True):
        attr_hwc, image_hwc = display_arrays(
            image01 if attributions is None else attributions, image01
        )
        if attributions is None:
            ax.imshow(image_hwc)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        else:
            draw_attribution(
                fig, ax, attr_hwc, image_hwc, method="heat_map", sign="absolute_value",
                title=title,
            )
    return fig


def _versions() -> dict[str, str]:
    import captum
    import matplotlib
    import numpy
    import PIL
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
    }


def _write_summary(run: LabRun) -> None:
    settings = QUICK if run.quick else FULL
    lines = [
        "# Laboratory 3 — reference run",
        "",
        run.weights,
        "",
        f"device: {run.device}; settings: {'quick (smoke test)' if run.quick else 'full'} "
        f"({', '.join(f'{k}={v}' for k, v in asdict(settings).items())})",
        "",
        "## Library versions",
        "",
        *(f"- {name} {version}" for name, version in run.versions.items()),
        "",
        "## Predictions (Tasks 2-3)",
        "",
        "| image | label | index | score |",
        "|---|---|---:|---:|",
        *(f"| {p.file} | {p.label} | {p.index} | {p.score:.4f} |" for p in run.predictions),
        "",
        "## Time per task",
        "",
        f"torch threads: {run.threads}",
        "",
        "| task | seconds | CPU seconds | output |",
        "|---|---:|---:|---|",
    ]
    for name, seconds in run.seconds.items():
        key = name.split(":")[0]
        status = " (failed)" if name == run.failed else ""
        cpu = run.cpu_seconds.get(name, 0.0)
        lines.append(f"| {name}{status} | {seconds:.1f} | {cpu:.1f} | {run.files.get(key, '')} |")
    lines += [
        "",
        f"total: {sum(run.seconds.values()):.1f} s ({sum(run.cpu_seconds.values()):.1f} s CPU)",
        "",
    ]
    (run.out_dir / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    (run.out_dir / "summary.json").write_text(
        json.dumps(run.to_dict(), indent=2, default=str), encoding="utf-8"
    )
