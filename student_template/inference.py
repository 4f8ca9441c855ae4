"""Task 3: inference with the pretrained model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .preprocessing import preprocess_image


def postprocess(output: torch.Tensor, labels: dict[int, str]) -> tuple[str, torch.Tensor, float]:
    """Top-1 label, index and softmax score of a ``(1, 1000)`` logits tensor (handout's helper)."""
    output = F.softmax(output, dim=1)
    prediction_score, pred_label_idx = torch.topk(output, 1)
    pred_label_idx.squeeze_()
    predicted_label = labels[pred_label_idx.item()]
    return predicted_label, pred_label_idx, prediction_score.item()


def predict(model: torch.nn.Module, img, labels: dict[int, str]) -> tuple[str, int, float]:
    """Classify one image (path, PIL image or uint8 array).

    Returns:
        ``(label, index, score)``: the class name, its index in 0..999 and its
        softmax probability in [0, 1].
    """
    # TODO Task 3: preprocess, run the model without gradients, postprocess.
    raise NotImplementedError("Task 3: predict = preprocess_image -> model (no grad) -> postprocess")


def predict_batch(
    model: torch.nn.Module, imgs: Sequence, labels: dict[int, str]
) -> list[tuple[str, int, float]]:
    """Classify several images in one forward pass.

    Returns:
        one ``(label, index, score)`` per image, in input order.
    """
    # TODO Task 3: stack the preprocessed images into one batch and classify them together.
    raise NotImplementedError("Task 3: predict_batch must classify all images in one batch")
