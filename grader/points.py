"""The points of the lab, in one table: 100 over the nine tasks.

Each row is one check of one task (the task's module name is the same in
``reference/``, ``student_template/``, ``grader/tasks/`` and ``tests/``). Hidden
checks run only in ``lab3 grade``: their rows are declared in ``grader/hidden/``
(:func:`grader.hidden.check_specs`), which the student release leaves out whole;
``CHECKS`` is the visible rows here plus those, each after its task's visible rows.
``beyond_handout`` says why a check tests something the handout (the lab's
specification) does not ask for, wholly or ``partly: ...``; empty when the handout asks it.
The README prints this table (``python -m grader points``).

A course file (:mod:`grader.course`) switches checks off or reweights them; every
consumer (``lab3 points``, ``lab3 grade``, pytest, results.json, the release) reads the
points through :func:`effective_checks` and :func:`total_points`, never ``CHECKS`` directly.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True)
class CheckSpec:
    task: str
    name: str
    points: float
    description: str
    hidden: bool = False
    # Why the handout does not ask for what this check tests ("partly: ..." when only part of
    # it); empty when it does. Shown by `lab3 points`: a course file may switch it off.
    beyond_handout: str = ""
    # This row's points in CHECKS when a course file changed them (effective_checks); None
    # when the points are the table's own.
    table_points: float | None = None

    @property
    def id(self) -> str:
        return f"{self.task}::{self.name}"

    @property
    def switched_off(self) -> bool:
        """A course file set this check to 0 points: it is not run (see grader/check/grading.py)."""
        return self.table_points is not None and self.points == 0

    @property
    def course_note(self) -> str:
        """What the course file did to this check, in words ("" when nothing)."""
        if self.table_points is None:
            return ""
        if self.switched_off:
            return SWITCHED_OFF
        return f"reweighted by the course file ({self.table_points:g} -> {self.points:g})"


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

# The visible checks; CHECKS (below) adds the hidden ones of grader/hidden/.
VISIBLE_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("model", "architecture", 3, "a torchvision ResNet with ResNet-34's blocks"),
    CheckSpec("model", "eval_mode", 2, "every module in eval mode, on the requested device"),
    CheckSpec("model", "weights", 3, "weights equal the resolved IMAGENET1K_V1 weights"),
    CheckSpec("model", "labels", 2,
              "1000 labels, int keys, known indices; a label file read name by name",
              beyond_handout="partly: half is load_labels(path) reading a label file, the "
                             "template's; the handout downloads the labels"),
    CheckSpec("preprocessing", "pipeline_structure", 4,
              "Resize, CenterCrop, ToTensor (or v2 ToImage, ToDtype), Normalize"),
    CheckSpec("preprocessing", "output_photos", 5,
              "preprocessed crops of the photos equal the reference"),
    CheckSpec("inference", "top1_index", 4,
              "same top-1 class as the reference (or as the model on your own preprocessing)"),
    CheckSpec("inference", "top1_score", 3,
              "same top-1 score as the reference (or as the model on your own preprocessing)"),
    CheckSpec("inference", "return_types", 1,
              "(str, int, float) as the handout says, once the top-1 class is right"),
    CheckSpec("inference", "batch", 2,
              "predict_batch gives predict's results, in order, from one forward pass",
              beyond_handout="predict_batch is the template's; the handout predicts one photo"),
    CheckSpec("graph", "graph_png", 3,
              "a PNG of the graph of the model given (its source's parameters and nodes)"),
    CheckSpec("graph", "conv_names", 3, "names of all Conv2d layers, of two models",
              beyond_handout="the handout asks to read the graph's layer names, not for a "
                             "function listing them (conv_layer_names is the template's)"),
    CheckSpec("filters", "activation_rises", 3, "the target filter's activation rises"),
    CheckSpec("filters", "activation_level", 3, "reaches a fraction of the reference's"),
    CheckSpec("filters", "seed", 1, "starts from the noise of the given seed",
              beyond_handout="the handout's visualize_filter starts from unseeded "
                             "torch.randn; the seed parameter is the template's"),
    CheckSpec("filters", "iterations", 1, "one optimisation step per iteration (counted)"),
    CheckSpec("filters", "lr", 1, "the first step's size follows lr"),
    CheckSpec("filters", "output_format", 1, "(S, S, 3) float in [0, 1], if the level is reached"),
    CheckSpec("filters", "hooks_removed", 2, "no hook left, if the level is reached"),
    CheckSpec("filters", "model_untouched", 2, "weights and eval mode unchanged, if the level is reached"),
    CheckSpec("filters", "grid", 2, "3x3 grid cells show visualize_filter's images of their filters",
              beyond_handout="partly: the handout lets the student choose any three "
                             "filters per layer; the grader chooses the filter numbers"),
    CheckSpec("integrated_gradients", "output_format", 3, "attributions shaped like input",
              beyond_handout="partly: 2/3 for the convergence delta and 1/3 for "
                             "internal_batch_size, both the template's; the handout "
                             "asks for attributions only"),
    CheckSpec("integrated_gradients", "completeness", 5, "sum of attributions = F(x) - F(b)"),
    CheckSpec("integrated_gradients", "agreement", 6, "attributions equal the reference's"),
    CheckSpec("integrated_gradients", "default_baseline", 2, "baselines=None means zeros",
              beyond_handout="the baselines parameter is the template's; the handout "
                             "uses Captum's default"),
    CheckSpec("attribution_viz", "coverage", 5,
              "each method x sign cell, by title, shows the reference's arrays for it",
              beyond_handout="partly: the handout asks to try the methods and signs; a "
                             "methods x signs grid titled by them is the template's"),
    CheckSpec("attribution_viz", "cells_drawn", 3, "each method x sign is drawn in some visible cell"),
    CheckSpec("noise_tunnel", "agreement", 5, "equals the reference under the same seed"),
    CheckSpec("noise_tunnel", "nt_samples", 4, "nt_samples is honoured"),
    CheckSpec("noise_tunnel", "zero_noise", 3, "stdevs=0 equals plain IG"),
    CheckSpec("comparison", "algorithms", 6, "five algorithms match the grader's maps"),
    CheckSpec("comparison", "outputs", 2, "shaped like input, seeded (needs algorithms)",
              beyond_handout="partly: the seed parameter is the template's"),
    CheckSpec("comparison", "figure", 2, "panels show their maps (needs algorithms)"),
    CheckSpec("answers", "answered", 0, "each question answered (graded by hand)"),
)

TOTAL_POINTS = 100


# False in a student release: `lab3 release` leaves grader/hidden/ out whole.
HIDDEN_INCLUDED = importlib.util.find_spec("grader.hidden") is not None


def _hidden_checks() -> tuple[CheckSpec, ...]:
    """The hidden rows (grader/hidden/); none in a student release."""
    if not HIDDEN_INCLUDED:
        return ()
    from grader.hidden import check_specs

    return check_specs()


def _with_hidden(visible: tuple[CheckSpec, ...], hidden: tuple[CheckSpec, ...]
                 ) -> tuple[CheckSpec, ...]:
    """``visible`` and ``hidden`` rows in task order, each task's hidden rows after its
    visible ones (the order of ``lab3 points`` and of every report)."""
    order = {t.module: i for i, t in enumerate(TASKS)}
    return tuple(sorted((*visible, *hidden), key=lambda c: order.get(c.task, len(order))))


HIDDEN_CHECKS = _hidden_checks()
CHECKS: tuple[CheckSpec, ...] = _with_hidden(VISIBLE_CHECKS, HIDDEN_CHECKS)

# Points of the hidden checks a student release (``lab3 release``) left out: 0 in the
# instructor's repository, where CHECKS holds them. Without grader/hidden/ they are what the
# visible rows leave of TOTAL_POINTS (the instructor's table adds up to it, checked below), so
# the release's table adds up to TOTAL_POINTS - RELEASE_HIDDEN_POINTS and pytest says that
# checks worth this many points run at submission. Nothing is rewritten to know it.
RELEASE_HIDDEN_POINTS = 0 if HIDDEN_INCLUDED else \
    TOTAL_POINTS - sum(c.points for c in CHECKS)
# The course file a student release was built with (`lab3 release --course`): its points of
# the visible checks, applied under any course file given here, and what the removed hidden
# checks are worth under it (None: their table points, RELEASE_HIDDEN_POINTS). Empty and None
# in the instructor's repository; the release rewrites both lines.
RELEASE_COURSE: dict[str, float] = {}
RELEASE_COURSE_HIDDEN_POINTS: float | None = None

SWITCHED_OFF = "0 points: switched off by the course file (not run)"


class Course(Protocol):
    """What the points table needs of a course file (:class:`grader.course.Course`)."""

    points: Mapping[str, float]


def task_spec(module: str) -> TaskSpec:
    for task in TASKS:
        if task.module == module:
            return task
    raise KeyError(f"no task {module!r}; tasks are {[t.module for t in TASKS]}")


def effective_checks(course: Course | None = None) -> tuple[CheckSpec, ...]:
    """The points table as graded: CHECKS with the course file's points (``course``, from
    :func:`grader.course.find_course`; a release's own course first). A changed row keeps
    its table points in ``table_points``. The one place overrides are applied."""
    overrides = {**RELEASE_COURSE, **(course.points if course is not None else {})}
    return tuple(
        replace(c, points=overrides[c.id], table_points=c.points)
        if c.id in overrides and overrides[c.id] != c.points else c
        for c in CHECKS
    )


def release_hidden_points() -> float:
    """Points of the hidden checks a student release removed (0 in the instructor's
    repository), under the course file the release was built with."""
    if RELEASE_COURSE_HIDDEN_POINTS is not None:
        return RELEASE_COURSE_HIDDEN_POINTS
    return RELEASE_HIDDEN_POINTS


def total_points(course: Course | None = None) -> float:
    """The lab's total under ``course``: TOTAL_POINTS without a course file."""
    return sum(c.points for c in effective_checks(course)) + release_hidden_points()


def checks_of(module: str, *, include_hidden: bool = True,
              course: Course | None = None) -> tuple[CheckSpec, ...]:
    return tuple(
        c for c in effective_checks(course)
        if c.task == module and (include_hidden or not c.hidden)
    )


def _verify_table() -> None:
    total = sum(c.points for c in CHECKS) + RELEASE_HIDDEN_POINTS
    if total != TOTAL_POINTS or RELEASE_HIDDEN_POINTS < 0:
        raise RuntimeError(f"grader/points.py: checks add up to {total}, not {TOTAL_POINTS}")
    misplaced = [c.id for c in VISIBLE_CHECKS if c.hidden] + \
        [c.id for c in HIDDEN_CHECKS if not c.hidden]
    if misplaced:
        raise RuntimeError(f"{misplaced}: hidden rows belong in grader/hidden/__init__.py "
                           "(hidden=True), visible ones in grader/points.py")
    modules = {t.module for t in TASKS}
    unknown = {c.task for c in CHECKS} - modules
    if unknown:
        raise RuntimeError(f"grader/points.py: checks of unknown tasks {sorted(unknown)}")
    stray = set(RELEASE_COURSE) - {c.id for c in CHECKS}
    if stray:
        raise RuntimeError(f"grader/points.py: RELEASE_COURSE names unknown checks {sorted(stray)}")


_verify_table()
