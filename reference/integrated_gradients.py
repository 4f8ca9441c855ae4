"""Task 6: attribution with Integrated Gradients (Captum)."""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients

from ._common import autograd_enabled, eval_mode


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

    ``IntegratedGradients(model).attribute(inputs, baselines, target=target, ...)``:
    the path integral of the gradient from ``baselines`` to ``inputs``, approximated
    with ``n_steps`` points of ``method``. The model runs in eval mode and is left as
    it was (training flags restored, no ``.grad`` on its parameters: Captum takes
    gradients for the inputs only).

    Args:
        model: classifier mapping ``(N, 3, H, W)`` to ``(N, classes)`` logits.
        inputs: preprocessed image(s) ``(N, 3, H, W)`` float32, on the model's device.
        target: class index in ``0..classes-1`` whose logit is explained.
        baselines: same shape as ``inputs``; ``None`` means all zeros (Captum's default;
            for ImageNet-normalized inputs, zero is the mean colour).
        n_steps, method, internal_batch_size: as in ``IntegratedGradients.attribute``:
            integration points, ``"gausslegendre"`` / ``"riemann_trapezoid"`` / ...,
            and the most rows per forward pass (``None``: all ``N * n_steps`` at once;
            at 224x224 each row holds ~35 MB for the backward pass).

    Returns:
        ``(attributions, delta)``: attributions shaped like ``inputs`` (float32) and
        the convergence delta ``(N,)``, i.e. sum(attributions) - (F(x) - F(baseline)).
        Both detached, on the inputs' device.

    Raises:
        ValueError: ``inputs`` is not ``(N, 3, H, W)`` or ``baselines`` does not
            match its shape.
    """
    _check_inputs(inputs, baselines)
    with autograd_enabled(), eval_mode(model):
        attributions, delta = IntegratedGradients(model).attribute(
            inputs,
            baselines=baselines,
            target=target,
            n_steps=n_steps,
            method=method,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    return attributions.detach().to(torch.float32), delta.detach().reshape(-1)


def _check_inputs(inputs: torch.Tensor, baselines: torch.Tensor | None) -> None:
    if inputs.dim() != 4:
        raise ValueError(
            f"inputs must be a batch of images (N, 3, H, W), got shape {tuple(inputs.shape)}; "
            "add the batch dimension with inputs.unsqueeze(0)"
        )
    if baselines is not None and baselines.shape != inputs.shape:
        raise ValueError(
            f"baselines has shape {tuple(baselines.shape)} but inputs has "
            f"{tuple(inputs.shape)}; pass one baseline per input (e.g. torch.zeros_like(inputs))"
        )
