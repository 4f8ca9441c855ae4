"""Task 1: the pretrained ResNet-34 and the ImageNet labels."""

from __future__ import annotations

import json
import os

import torch
from torchvision import models


def load_model(device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load torchvision's ResNet-34 with ``IMAGENET1K_V1`` weights, in evaluation mode.

    Returns:
        ``torchvision.models.ResNet`` on ``device`` with ``model.training`` False on
        every module.
    """
    # TODO Task 1: build models.resnet34 with the IMAGENET1K_V1 weights and set eval mode.
    raise NotImplementedError("Task 1: load ResNet-34 with IMAGENET1K_V1 weights and call .eval()")


def load_labels(path: str | os.PathLike[str] | None = None) -> dict[int, str]:
    """The 1000 ImageNet class names keyed by class index.

    Args:
        path: optional label JSON in the handout's format
            (``{"0": ["n01440764", "tench"], ...}``). Without it, the names come
            from ``models.ResNet34_Weights.IMAGENET1K_V1.meta["categories"]`` (no
            download).

    Returns:
        ``dict[int, str]`` with keys 0..999.

    Raises:
        ValueError: the JSON is not in the handout's format.
    """
    # TODO Task 1: read the labels (from the weights' metadata, or from the JSON at `path`).
    raise NotImplementedError("Task 1: return the 1000 ImageNet labels as dict[int, str]")


def normalize_label(name: str) -> str:
    """Canonical form of a class name: ``"Rhodesian_ridgeback"`` and
    ``"Rhodesian ridgeback"`` both become ``"rhodesian ridgeback"``."""
    return " ".join(name.replace("_", " ").split()).casefold()


def same_label(a: str, b: str) -> bool:
    """True when two class names are the same label in either naming style."""
    return normalize_label(a) == normalize_label(b)


def _labels_from_json(path: str | os.PathLike[str]) -> dict[int, str]:
    """Labels from a JSON file in the handout's format (given helper)."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    try:
        return {int(k): v[1] for k, v in raw.items()}
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"{path}: expected the handout's label format "
            '{"0": ["n01440764", "tench"], ...}'
        ) from exc
