"""Trusted probe inputs: fixture images and the small image tensors of Tasks 5-9."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from grader.paths import FIXTURES_DIR
from grader.settings import DEFAULT_SETTINGS, ProbeSettings

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


def probe_photo(settings: ProbeSettings = DEFAULT_SETTINGS) -> Path:
    """The photo Tasks 5-9 are probed on in ``settings``' variant (a fixture photo).

    Raises:
        FileNotFoundError: the variant names a photo the fixtures do not hold.
    """
    path = IMAGES_DIR / settings.photo
    if settings.photo not in {e["file"] for e in manifest() if e["kind"] == "photo"}:
        raise FileNotFoundError(f"probe photo {settings.photo!r} is not a photo of {IMAGES_DIR}")
    return path


def probe_inputs(
    image_size: int, settings: ProbeSettings = DEFAULT_SETTINGS
) -> tuple[torch.Tensor, torch.Tensor]:
    """The variant's probe image at ``image_size`` as ``(normalized, display)``.

    The square crop is the variant's (centre ``crop_x``, ``crop_y``; side ``crop_side`` of
    the short side), resized to ``image_size``.

    Returns:
        two float32 tensors ``(1, 3, S, S)``: ImageNet-normalized model input,
        and the same crop in [0, 1] for drawing.
    """
    with Image.open(probe_photo(settings)) as img:
        rgb = img.convert("RGB")
    width, height = rgb.size
    side = max(1, round(min(width, height) * settings.crop_side))
    left = min(max(0, round(settings.crop_x * width - side / 2)), width - side)
    top = min(max(0, round(settings.crop_y * height - side / 2)), height - side)
    square = rgb.crop((left, top, left + side, top + side))
    display = transforms.Compose(
        [transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.ToTensor()]
    )(square).unsqueeze(0)
    normalized = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(display)
    return normalized.contiguous(), display.contiguous()


def top1(model: torch.nn.Module, inputs: torch.Tensor) -> int:
    """The trusted model's top-1 class for ``inputs`` (the target of Tasks 6-9)."""
    with torch.inference_mode():
        return int(model(inputs).argmax(dim=1)[0])
