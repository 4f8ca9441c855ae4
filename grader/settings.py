"""Probe settings: the smallest inputs that still catch every wrong implementation.

Each field says why its value is enough; the grader's own tests
(``tests/harness/test_wrong_implementations.py``) hold the mistakes these
settings must catch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProbeSettings:
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
    # Two NoiseTunnel sample counts (2 and 4) tell "nt_samples ignored" apart.
    nt_samples: int = 2
    nt_stdevs: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


DEFAULT_SETTINGS = ProbeSettings()
