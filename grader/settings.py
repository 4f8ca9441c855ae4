"""Probe settings: the smallest inputs that still catch every wrong implementation.

Each field says why its value is enough; the grader's own tests
(``tests/harness/tasks/test_<task>_checks.py``) hold the wrong implementations these
settings must catch.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProbeSettings:
    # Which inputs: "practice" (published: students' `pytest --impl`, the release's records)
    # or "graded-<id>" (derived from the course secret by grader.run.variant; `lab3 grade`,
    # Gradescope). Every value a probe varies comes from these fields, so the reference
    # records of a variant are computed on exactly the inputs the student's code gets.
    variant: str = "practice"
    variant_seed: int = 0
    # The photo Tasks 5-9 are probed on (a fixture photo's file name) and the square crop
    # taken from it: centre (fractions of width and height) and side (fraction of the
    # short side). The practice crop is the centre square of the photo.
    photo: str = "grace_hopper.jpg"
    crop_x: float = 0.5
    crop_y: float = 0.5
    crop_side: float = 1.0
    # Tasks 5-9 run on a 64x64 crop: every ResNet-34 stage still has spatial extent
    # (layer4 is 2x2), and wrong baselines, targets or normalisation move the
    # attributions far beyond the tolerances at any size.
    image_size: int = 64
    # Six Adam steps raise a filter's mean activation well above its start for
    # every layer, so "did not optimise" and "optimised the wrong filter" separate.
    filter_iterations: int = 6
    filter_lr: float = 0.1
    # 16 Gauss-Legendre steps keep IG's completeness error a few percent on the
    # stand-in, tight enough to catch a wrong baseline or target.
    ig_steps: int = 16
    # Two NoiseTunnel sample counts (1 and 2) tell "nt_samples ignored" apart (the
    # forward rows double); one sample already shows another seed, ignored stdevs,
    # another nt_type or base method. Each sample is a whole IG run: Task 8 was the
    # costliest probe on one thread with 2 and 4.
    nt_samples: int = 1
    nt_stdevs: float = 0.1
    # Task 9's checks look at which algorithms ran and whether their maps are finite,
    # distinct and shaped like the input, never at values against the reference's:
    # 32x32 keeps the five maps distinct and quarters the cost of the student's
    # Occlusion sweep (~200 forward passes in the reference), the costliest probe.
    comparison_size: int = 32
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def rng(self, task: str) -> random.Random:
        """The task's own deterministic stream of this variant: where a probe picks values
        (filter numbers, targets, seeds, ...) that must differ between variants."""
        return random.Random(f"{self.variant_seed}:{task}")


DEFAULT_SETTINGS = ProbeSettings()
