"""Task 8: NoiseTunnel around Integrated Gradients."""

from __future__ import annotations

import torch

NT_TYPES: tuple[str, ...] = ("smoothgrad", "smoothgrad_sq", "vargrad")


def noise_tunnel(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    nt_type: str = "smoothgrad",
    nt_samples: int = 10,
    stdevs: float = 0.2,
    baselines: torch.Tensor | None = None,
    n_steps: int = 50,
    seed: int | None = 0,
) -> torch.Tensor:
    """Integrated Gradients smoothed with Captum's ``NoiseTunnel``.

    Adds Gaussian noise (std ``stdevs``) to ``inputs`` ``nt_samples`` times and
    aggregates the IG attributions by ``nt_type``. Seeds the noise with
    ``torch.manual_seed(seed)`` when ``seed`` is given.

    Returns:
        float32 attributions shaped like ``inputs``.

    Raises:
        ValueError: ``nt_type`` is not one of ``NT_TYPES``.
    """
    # TODO Task 8: NoiseTunnel(IntegratedGradients(model)).attribute(...)
    raise NotImplementedError("Task 8: wrap Integrated Gradients in a NoiseTunnel")
