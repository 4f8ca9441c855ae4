"""Task 3: inference with the pretrained model."""

from __future__ import annotations

import itertools
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

    Runs ``preprocess_image`` -> ``model`` -> ``postprocess`` under
    ``torch.inference_mode()`` on the device of the model's parameters. The model is
    used as given (pass it in eval mode); its weights, buffers and mode are unchanged.

    Args:
        img: anything ``preprocessing.load_image`` accepts.
        labels: class index -> name, e.g. from ``model.load_labels()``.

    Returns:
        ``(label, index, score)``: the class name ``labels[index]`` (``str``), its
        index in 0..999 (``int``) and its softmax probability in [0, 1] (``float``).

    Raises:
        FileNotFoundError, ValueError: ``img`` cannot be loaded (see ``load_image``).
        KeyError: ``labels`` has no entry for the predicted index.
    """
    batch = preprocess_image(img).to(_device_of(model))  # (1, 3, 224, 224) float32
    with torch.inference_mode():
        label, index, score = postprocess(model(batch), labels)
    return label, int(index), score


def predict_batch(
    model: torch.nn.Module, imgs: Sequence, labels: dict[int, str]
) -> list[tuple[str, int, float]]:
    """Classify several images in one forward pass.

    The images are preprocessed one by one, stacked into an ``(N, 3, 224, 224)``
    batch and passed through ``model`` once, under ``torch.inference_mode()``. In
    eval mode every image's result equals ``predict`` on it alone, up to float
    rounding of the batched convolutions.

    Args:
        imgs: images ``predict`` accepts, in any mix of kinds.

    Returns:
        one ``(label, index, score)`` per image, in input order, typed as in
        ``predict``; ``[]`` for no images (the model is not called).

    Raises:
        FileNotFoundError, ValueError: an image cannot be loaded (nothing is run).
        KeyError: ``labels`` has no entry for a predicted index.
    """
    if len(imgs) == 0:
        return []
    batch = torch.cat([preprocess_image(img) for img in imgs]).to(_device_of(model))
    with torch.inference_mode():
        logits = model(batch)  # (N, 1000)
        results = [postprocess(logits[i : i + 1], labels) for i in range(len(imgs))]
    return [(label, int(index), score) for label, index, score in results]


def _device_of(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); CPU for a model without any."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
