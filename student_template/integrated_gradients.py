"""Task 6: attribution with Integrated Gradients (Captum)."""

from __future__ import annotations

import torch


def integrated_gradients(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    baselines: torch.Tensor | None = None,
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients of ``model``'s ``target`` logit with respect to ``inputs``.

    Args:
        inputs: preprocessed image(s) ``(N, 3, H, W)``.
        baselines: same shape as ``inputs``; ``None`` means all zeros (Captum's default).
        n_steps, method, internal_batch_size: as in ``IntegratedGradients.attribute``.

    Returns:
        ``(attributions, delta)``: attributions shaped like ``inputs`` (float32) and
        the convergence delta ``(N,)``, i.e. sum(attributions) - (F(x) - F(baseline)).
    """
    # TODO Task 6: IntegratedGradients(model).attribute(..., return_convergence_delta=True)
    raise NotImplementedError("Task 6: compute Integrated Gradients with Captum")
