"""Trusted probe inputs: fixture images and the small image tensors of Tasks 5-9."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
IMAGES_DIR = FIXTURES_DIR / "images"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def manifest() -> tuple[dict, ...]:
    """Entries of ``fixtures/images/manifest.json``: file, kind (photo|edge|bad), description."""
    path = IMAGES_DIR / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; the fixtures folder must ship with the grader"
        )
    return tuple(json.loads(path.read_text())["images"])


def image_paths(kind: str) -> list[Path]:
    """Fixture images of one kind (``"photo"``, ``"edge"`` or ``"bad"``), sorted by name."""
    return sorted(IMAGES_DIR / e["file"] for e in manifest() if e["kind"] == kind)


def probe_photo() -> Path:
    """The photo Tasks 5-9 are probed on: the manifest's first photo (grace_hopper.jpg)."""
    return next(IMAGES_DIR / e["file"] for e in manifest() if e["kind"] == "photo")


def probe_inputs(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe image at ``image_size`` as ``(normalized, display)``.

    Returns:
        two float32 tensors ``(1, 3, S, S)``: ImageNet-normalized model input,
        and the same crop in [0, 1] for drawing.
    """
    with Image.open(probe_photo()) as img:
        rgb = img.convert("RGB")
    display = transforms.Compose(
        [transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.ToTensor()]
    )(rgb).unsqueeze(0)
    normalized = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(display)
    return normalized.contiguous(), display.contiguous()


def top1(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """The trusted model's top-1 class for ``inputs`` (the target of Tasks 6-9)."""
    with torch.inference_mode():
        return int(model(inputs).argmax(dim=1)[0])
