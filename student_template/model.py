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
    """Labels from a JSON file in the handout's format (given helper).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not UTF-8 JSON in the handout's format.
    """
    _check_label_json(path)
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    try:
        return {int(k): v[1] for k, v in raw.items()}
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"{path}: expected the handout's label format "
            '{"0": ["n01440764", "tench"], ...}'
        ) from exc


_FORMAT_HINT = 'expected the handout\'s label format {"0": ["n01440764", "tench"], ...}'


def _check_label_json(path: str | os.PathLike[str]) -> None:
    """Raise ``ValueError`` naming ``path`` unless it holds handout-format labels.

    ``_labels_from_json`` alone lets through files it misreads: a JSON syntax error
    surfaces without the file name, ``{"0": "tench"}`` becomes ``{0: "e"}`` and
    ``{"0": {...}}`` escapes as ``KeyError``; so the format is checked first.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); {_FORMAT_HINT}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); {_FORMAT_HINT}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: top level is not a non-empty JSON object; {_FORMAT_HINT}")
    seen: set[int] = set()
    for key, value in raw.items():
        # JSON keys are always strings; only plain decimal digits are class indices.
        if not (key.isascii() and key.isdigit()) or int(key) in seen:
            raise ValueError(
                f"{path}: key {key!r} is not a new class index 0, 1, 2, ...; {_FORMAT_HINT}"
            )
        seen.add(int(key))
        if not (
            isinstance(value, list)
            and len(value) >= 2
            and all(isinstance(item, str) for item in value[:2])
            and value[1].strip()
        ):
            raise ValueError(
                f"{path}: entry {key!r} is {value!r}, not [wordnet id, class name]; "
                f"{_FORMAT_HINT}"
            )
