"""The points of the lab, in one table: 100 over the nine tasks.

Each row is one check of one task (the task's module name is the same in
``reference/``, ``student_template/``, ``grader/tasks/`` and ``tests/``). Hidden
checks run only in ``lab3 grade`` and are left out of the student release.
The README prints this table (``python -m grader points``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckSpec:
    task: str
    name: str
    points: float
    description: str
    hidden: bool = False

    @property
    def id(self) -> str:
        return f"{self.task}::{self.name}"


@dataclass(frozen=True)
class TaskSpec:
    module: str
    number: int | None
    title: str


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("model", 1, "Task 1: pretrained ResNet-34 and labels"),
    TaskSpec("preprocessing", 2, "Task 2: ImageNet preprocessing"),
    TaskSpec("inference", 3, "Task 3: inference"),
    TaskSpec("graph", 4, "Task 4: model graph"),
    TaskSpec("filters", 5, "Task 5: filter visualisation"),
    TaskSpec("integrated_gradients", 6, "Task 6: Integrated Gradients"),
    TaskSpec("attribution_viz", 7, "Task 7: attribution visualisations"),
    TaskSpec("noise_tunnel", 8, "Task 8: NoiseTunnel"),
    TaskSpec("comparison", 9, "Task 9: algorithm comparison"),
    TaskSpec("answers", None, "Conceptual answers (graded by hand)"),
)

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("model", "architecture", 3, "a torchvision ResNet with ResNet-34's blocks"),
    CheckSpec("model", "eval_mode", 2, "every module in eval mode, on the requested device"),
    CheckSpec("model", "weights", 3, "weights equal the resolved IMAGENET1K_V1 weights"),
    CheckSpec("model", "labels", 2,
              "1000 labels, int keys, known indices; a label file read name by name"),
    CheckSpec("preprocessing", "pipeline_structure", 4,
              "Resize, CenterCrop, ToTensor (or v2 ToImage, ToDtype), Normalize"),
    CheckSpec("preprocessing", "output_photos", 5,
              "preprocessed crops of the photos equal the reference"),
    CheckSpec("preprocessing", "output_edge_cases", 3, "odd images preprocess like the reference",
              hidden=True),
    CheckSpec("inference", "top1_index", 4,
              "same top-1 class as the reference (or as the model on your own preprocessing)"),
    CheckSpec("inference", "top1_score", 3,
              "same top-1 score as the reference (or as the model on your own preprocessing)"),
    CheckSpec("inference", "return_types", 1,
              "(str, int, float) as the handout says, once the top-1 class is right"),
    CheckSpec("inference", "batch", 2,
              "predict_batch gives predict's results, in order, from one forward pass"),
    CheckSpec("graph", "graph_png", 3,
              "a PNG of the graph of the model given (its source's parameters and nodes)"),
    CheckSpec("graph", "conv_names", 3, "names of all Conv2d layers, of two models"),
    CheckSpec("filters", "activation_rises", 3, "the target filter's activation rises"),
    CheckSpec("filters", "activation_level", 3, "reaches a fraction of the reference's"),
    CheckSpec("filters", "seed", 1, "starts from the noise of the given seed"),
    CheckSpec("filters", "iterations", 1, "one optimisation step per iteration (counted)"),
    CheckSpec("filters", "lr", 1, "the first step's size follows lr"),
    CheckSpec("filters", "output_format", 1, "(S, S, 3) float in [0, 1], if the level is reached"),
    CheckSpec("filters", "hooks_removed", 2, "no hook left, if the level is reached"),
    CheckSpec("filters", "model_untouched", 2, "weights and eval mode unchanged, if the level is reached"),
    CheckSpec("filters", "grid", 2, "3x3 grid cells show visualize_filter's images of their filters"),
    CheckSpec("integrated_gradients", "output_format", 3, "attributions shaped like input"),
    CheckSpec("integrated_gradients", "completeness", 5, "sum of attributions = F(x) - F(b)"),
    CheckSpec("integrated_gradients", "agreement", 6, "attributions equal the reference's"),
    CheckSpec("integrated_gradients", "default_baseline", 2, "baselines=None means zeros"),
    CheckSpec("attribution_viz", "coverage", 5,
              "each method x sign cell, by title, shows the reference's arrays for it"),
    CheckSpec("attribution_viz", "cells_drawn", 3, "each method x sign is drawn in some visible cell"),
    CheckSpec("noise_tunnel", "agreement", 5, "equals the reference under the same seed"),
    CheckSpec("noise_tunnel", "nt_samples", 4, "nt_samples is honoured"),
    CheckSpec("noise_tunnel", "zero_noise", 3, "stdevs=0 equals plain IG"),
    CheckSpec("comparison", "algorithms", 6, "five algorithms match the grader's maps"),
    CheckSpec("comparison", "outputs", 2, "shaped like input, seeded (needs algorithms)"),
    CheckSpec("comparison", "figure", 2, "panels show their maps (needs algorithms)"),
    CheckSpec("answers", "answered", 0, "each question answered (graded by hand)"),
)

TOTAL_POINTS = 100

# Points of the hidden checks a student release (``lab3 release``) removed from CHECKS above:
# 0 in the instructor's repository. The release rewrites this line, so its table adds up to
# TOTAL_POINTS - RELEASE_HIDDEN_POINTS and pytest says that checks worth this many points run
# at submission.
RELEASE_HIDDEN_POINTS = 0


def task_spec(module: str) -> TaskSpec:
    for task in TASKS:
        if task.module == module:
            return task
    raise KeyError(f"no task {module!r}; tasks are {[t.module for t in TASKS]}")


def checks_of(module: str, *, include_hidden: bool = True) -> tuple[CheckSpec, ...]:
    return tuple(
        c for c in CHECKS if c.task == module and (include_hidden or not c.hidden)
    )


def _verify_table() -> None:
    total = sum(c.points for c in CHECKS) + RELEASE_HIDDEN_POINTS
    if total != TOTAL_POINTS:
        raise RuntimeError(f"grader/points.py: checks add up to {total}, not {TOTAL_POINTS}")
    modules = {t.module for t in TASKS}
    unknown = {c.task for c in CHECKS} - modules
    if unknown:
        raise RuntimeError(f"grader/points.py: checks of unknown tasks {sorted(unknown)}")


_verify_table()
