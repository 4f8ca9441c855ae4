"""Task 2: ImageNet preprocessing."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import transforms

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

############# TODO: Student code #####################

# ImageNet-based pre-processing image transformations.
# The handout's "Resize to scale image into 256x256 resolution" also admits
# Resize((256, 256)), which squashes the aspect ratio; the reference uses Resize(256)
# (shorter side to 256, aspect kept), torchvision's own IMAGENET1K_V1 preprocessing.
transform: transforms.Compose | None = transforms.Compose(
    [
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),  # uint8 HWC in [0, 255] -> float32 CHW in [0, 1]
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
)

######################################################


def load_image(source: str | os.PathLike[str] | Image.Image | np.ndarray) -> Image.Image:
    """Open an image as an RGB ``PIL.Image``, ready for ``transform`` (given helper).

    Accepts a path, a ``PIL.Image`` in any mode (RGB, RGBA, L, P, I;16, ...) or a
    numpy array ``(H, W)`` / ``(H, W, 3|4)`` of uint8. Paths and ``PIL.Image`` objects are
    turned upright according to their EXIF orientation (as photo viewers show them).
    Transparent pixels are composited on white; 16-bit grayscale is scaled to 8 bits.

    Returns:
        ``PIL.Image`` in mode ``"RGB"`` with both sides >= 1 pixel.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a directory, the file is not an image, is truncated
            or corrupt, is over Pillow's decompression-bomb limit (~178 megapixels),
            the image has 0 pixels, or the array has an unsupported shape or dtype.
    """
    if isinstance(source, Image.Image):
        img = _decode_upright(source, "image")
    elif isinstance(source, np.ndarray):
        img = _image_from_array(source)
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file {path!r} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a directory, not an image file")
        try:
            with Image.open(path) as opened:
                img = _decode_upright(opened, repr(path))
        except UnidentifiedImageError as exc:
            raise ValueError(f"{path!r} is not an image file Pillow can read") from exc
        except Image.DecompressionBombError as exc:
            # A header claiming over ~178 million pixels: corrupt, or too big to decode.
            raise ValueError(f"{path!r} is too large to decode: {exc}") from exc
        except OSError as exc:
            raise ValueError(f"{path!r} is truncated or corrupt: {exc}") from exc
    if img.width == 0 or img.height == 0:
        raise ValueError(f"image has {img.width}x{img.height} pixels; it needs at least 1x1")
    return _to_rgb(img)


def _decode_upright(img: Image.Image, name: str) -> Image.Image:
    """Decoded copy of ``img``, turned upright by its EXIF orientation.

    Applies to paths and to images the caller opened, so ``load_image(path)`` and
    ``load_image(Image.open(path))`` agree.
    """
    try:
        img.load()  # decode now, so a truncated file fails here, not in `transform`
    except (OSError, SyntaxError) as exc:  # Pillow reports broken PNG chunks as SyntaxError
        raise ValueError(f"{name} is truncated or corrupt: {exc}") from exc
    try:
        return ImageOps.exif_transpose(img)  # a copy: the caller's image is untouched
    except Exception:  # noqa: BLE001 - any EXIF failure means the same: ignore the EXIF
        # Corrupt EXIF metadata (Pillow raises struct.error, SyntaxError, ...) while the
        # pixels decoded fine: keep them as stored, as image viewers do.
        return img.copy()


def _image_from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ValueError(f"numpy image must be uint8 (H, W, 3), got dtype {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        if array.size == 0:
            raise ValueError(f"numpy image of shape {array.shape} has 0 pixels")
        return Image.fromarray(np.ascontiguousarray(array))
    raise ValueError(
        f"numpy image must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}"
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB view of any Pillow mode; transparent pixels are composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: scale to 8 bits by the mode's range, not by clipping.
        array = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    return img.convert("RGB")


def preprocess_image(img: str | os.PathLike[str] | Image.Image | np.ndarray) -> torch.Tensor:
    """Preprocesses an image for model inference.

    Args:
        img: anything :func:`load_image` accepts.

    Returns:
        float32 CPU tensor of shape ``(1, 3, 224, 224)``, normalized with the ImageNet
        mean and std: channel ``c`` lies in ``[-mean[c] / std[c], (1 - mean[c]) / std[c]]``,
        i.e. roughly [-2.12, 2.64]. The caller's image is not modified.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_image`.
    """
    if transform is None:
        raise NotImplementedError("Task 2: define `transform` in preprocessing.py")
    input_tensor = transform(load_image(img))
    input_tensor = input_tensor.unsqueeze(0)  # Add batch dimension
    return input_tensor
