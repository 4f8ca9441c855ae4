"""Task 2: ``reference.preprocessing`` — ImageNet preprocessing and the given ``load_image``.

Parametrized over ``fixtures/images/manifest.json`` (see ``conftest.py``): ``valid_image``
is every photo and edge case, ``bad_image`` every input that must raise.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from reference.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_image,
    preprocess_image,
    transform,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def unnormalize(batch: torch.Tensor) -> torch.Tensor:
    """Back to [0, 1] RGB: the inverse of ``Normalize``."""
    return batch * STD + MEAN


def rgb_array(source) -> np.ndarray:
    return np.asarray(load_image(source))


# --- the transform ------------------------------------------------------------------------


def test_transform_is_resize_centercrop_totensor_normalize():
    assert [type(t) for t in transform.transforms] == [
        transforms.Resize,
        transforms.CenterCrop,
        transforms.ToTensor,
        transforms.Normalize,
    ]


def test_resize_scales_the_shorter_side_to_256():
    # Resize(256), torchvision's own preprocessing; the handout's wording also admits
    # Resize((256, 256)), which the grader accepts but the reference does not use.
    assert transform.transforms[0].size == 256


def test_center_crop_is_224_square():
    assert tuple(transform.transforms[1].size) == (224, 224)


def test_normalize_uses_the_imagenet_mean_and_std():
    normalize = transform.transforms[3]
    assert list(normalize.mean) == [0.485, 0.456, 0.406]
    assert list(normalize.std) == [0.229, 0.224, 0.225]


def test_center_crop_keeps_the_middle_of_a_wide_image():
    # 512x256: red | green | green | blue quarters. Resize(256) leaves it as is and the
    # 224 crop (x 144..368) sees only green; a squashing Resize((256, 256)) would not.
    array = np.zeros((256, 512, 3), np.uint8)
    array[:, :128] = (255, 0, 0)
    array[:, 128:384] = (0, 255, 0)
    array[:, 384:] = (255, 0, 255)
    rgb = unnormalize(preprocess_image(array))
    torch.testing.assert_close(
        rgb, torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 224, 224)
    )


def test_constant_image_becomes_the_normalized_constant():
    colour = (10, 128, 250)
    out = preprocess_image(Image.new("RGB", (300, 260), colour))
    expected = (torch.tensor(colour) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    torch.testing.assert_close(out, expected.view(1, 3, 1, 1).expand(1, 3, 224, 224))


# --- every valid fixture ------------------------------------------------------------------


def test_preprocess_returns_a_1x3x224x224_float32_batch(valid_image):
    out = preprocess_image(valid_image.path)
    assert out.shape == (1, 3, 224, 224)
    assert out.dtype == torch.float32
    assert out.device.type == "cpu"


def test_preprocess_output_is_finite(valid_image):
    assert torch.isfinite(preprocess_image(valid_image.path)).all()


def test_preprocess_output_lies_in_the_normalized_range(valid_image):
    rgb = unnormalize(preprocess_image(valid_image.path))
    assert rgb.min() >= -1e-5 and rgb.max() <= 1 + 1e-5


def test_load_image_returns_rgb(valid_image):
    img = load_image(valid_image.path)
    assert img.mode == "RGB" and img.width >= 1 and img.height >= 1


def test_pil_image_gives_the_same_tensor_as_its_path(valid_image):
    # Also for exif_rotate6.jpg: an image the caller opened is turned upright too.
    with Image.open(valid_image.path) as img:
        from_pil = preprocess_image(img)
    torch.testing.assert_close(from_pil, preprocess_image(valid_image.path), rtol=0, atol=0)


def test_numpy_array_gives_the_same_tensor_as_the_path(photo):
    array = np.asarray(Image.open(photo.path).convert("RGB"))  # (H, W, 3) uint8
    torch.testing.assert_close(
        preprocess_image(array), preprocess_image(photo.path), rtol=0, atol=0
    )


def test_preprocess_does_not_modify_the_callers_image(photo):
    with Image.open(photo.path) as img:
        img.load()
        before = (img.mode, img.size, img.tobytes())
        preprocess_image(img)
        assert (img.mode, img.size, img.tobytes()) == before


# --- specific edge cases ------------------------------------------------------------------


def test_exif_orientation_6_is_applied(image_path):
    # Stored 160x80 with a red square top-left; orientation 6 = rotate 90 deg clockwise.
    array = rgb_array(image_path("exif_rotate6.jpg")).astype(int)
    assert array.shape == (160, 80, 3)
    red, blue = np.array([255, 0, 0]), np.array([0, 0, 255])
    assert np.abs(array[5:35, 45:75] - red).max() < 40  # top-right: red
    assert np.abs(array[5:35, 5:35] - blue).max() < 40  # top-left: blue


def test_grayscale_becomes_three_equal_channels(image_path):
    array = rgb_array(image_path("gray_L.png"))
    assert np.array_equal(array[..., 0], array[..., 1])
    assert np.array_equal(array[..., 0], array[..., 2])


def test_rgba_transparent_pixels_are_composited_on_white(image_path):
    array = rgb_array(image_path("rgba_transparent.png"))
    assert (array[:, 100:] == 255).all()


def test_rgba_opaque_pixels_keep_their_colour(image_path):
    path = image_path("rgba_transparent.png")
    expected = np.asarray(Image.open(path))[:, :100, :3]
    assert np.array_equal(rgb_array(path)[:, :100], expected)


def test_palette_indices_become_palette_colours(image_path):
    path = image_path("palette_P.png")
    with Image.open(path) as img:
        palette = np.array(img.getpalette()[:24]).reshape(8, 3)
        indices = np.asarray(img)
    assert np.array_equal(rgb_array(path), palette[indices])


def test_palette_transparency_is_composited_on_white(image_path):
    array = rgb_array(image_path("palette_transparent.gif"))
    assert (array[:, :80] == 255).all()
    assert (array[:, 80:] == (30, 144, 255)).all()


def test_16bit_grayscale_is_scaled_not_clipped_to_white(image_path):
    # Column x holds x * 257 of 65535; scaled to 8 bits it must read x again.
    array = rgb_array(image_path("gray16_I16.png"))
    assert np.array_equal(array[0, :, 0], np.arange(256))
    assert (array == 255).mean() < 0.01


def test_1x1_image_becomes_a_constant_tensor(image_path):
    out = preprocess_image(image_path("tiny_1x1.png"))
    expected = (torch.tensor([200, 30, 90]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    torch.testing.assert_close(out, expected.view(1, 3, 1, 1).expand(1, 3, 224, 224))


def test_cmyk_jpeg_becomes_rgb(image_path):
    assert load_image(image_path("cmyk.jpg")).mode == "RGB"


# --- numpy arrays and in-memory images ----------------------------------------------------


def test_numpy_grayscale_array_is_accepted():
    array = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    assert np.array_equal(rgb_array(array), np.repeat(array[..., None], 3, axis=2))


def test_numpy_rgba_array_is_composited_on_white():
    array = np.zeros((4, 6, 4), np.uint8)  # black, fully transparent
    assert (rgb_array(array) == 255).all()


def test_non_contiguous_numpy_array_is_accepted():
    array = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    flipped = array[:, ::-1]
    assert np.array_equal(rgb_array(flipped), np.ascontiguousarray(flipped))


BAD_ARRAYS = {
    "float32": np.zeros((8, 8, 3), np.float32),
    "two-channels": np.zeros((8, 8, 2), np.uint8),
    "four-dims": np.zeros((1, 8, 8, 3), np.uint8),
    "zero-height": np.zeros((0, 8, 3), np.uint8),
}


@pytest.mark.parametrize("array", BAD_ARRAYS.values(), ids=BAD_ARRAYS.keys())
def test_bad_numpy_array_raises_value_error(array):
    with pytest.raises(ValueError, match="numpy image"):
        preprocess_image(array)


def test_zero_pixel_pil_image_raises_value_error():
    with pytest.raises(ValueError, match="0x5 pixels"):
        load_image(Image.new("RGB", (0, 5)))


# --- bad inputs ---------------------------------------------------------------------------


def test_bad_input_raises_its_expected_error_naming_the_file(bad_image):
    with pytest.raises(bad_image.error_type, match=re.escape(repr(str(bad_image.path)))):
        load_image(bad_image.path)


def test_preprocess_image_raises_the_same_error_for_bad_input(bad_image):
    with pytest.raises(bad_image.error_type):
        preprocess_image(str(bad_image.path))


def test_truncated_image_opened_by_the_caller_raises_value_error(image_path):
    # Image.open is lazy; load_image must decode it, not leave the failure to transform.
    lazy = Image.open(image_path("truncated.jpg"))
    with lazy, pytest.raises(ValueError, match="truncated"):
        load_image(lazy)


def test_directory_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5, 0.8, 0.95, 0.99])
def test_cut_off_file_raises_value_error_or_loads(valid_image, tmp_path, fraction):
    # Any prefix of a valid file either decodes (formats that tolerate a missing
    # tail) or raises ValueError: never an exception of another type.
    data = valid_image.path.read_bytes()
    cut = tmp_path / f"cut{valid_image.path.suffix}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    try:
        img = load_image(cut)
    except ValueError:
        return
    assert img.mode == "RGB"


def test_corrupt_exif_metadata_still_loads_the_pixels(tmp_path):
    # A DateTime entry retagged as ColorMap (0x0140): Pillow parses the EXIF but
    # cannot re-serialize it, so exif_transpose fails; the pixels are still fine.
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0132] = "2020:01:01 00:00:00"
    raw = exif.tobytes().replace(b"\x01\x32\x00\x02", b"\x01\x40\x00\x02")
    path = tmp_path / "bad_exif.jpg"
    Image.new("RGB", (40, 20), (0, 200, 0)).save(path, exif=raw, quality=95)
    img = load_image(path)
    assert img.mode == "RGB" and img.size in {(40, 20), (20, 40)}


# --- the fixtures themselves --------------------------------------------------------------


def read_manifest(folder) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["images"]


def test_manifest_lists_every_file_in_the_images_folder(image_path):
    folder = image_path("grace_hopper.jpg").parent
    listed = {entry["file"] for entry in read_manifest(folder)}
    on_disk = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert on_disk == listed - {"missing.jpg"}


def test_fixture_kinds_and_errors_are_consistent(valid_image):
    assert valid_image.expect_error is None
    assert valid_image.path.is_file()


def test_bad_fixtures_name_an_error_and_exist_unless_missing(bad_image):
    assert bad_image.expect_error in {"ValueError", "FileNotFoundError"}
    assert bad_image.path.exists() == (bad_image.expect_error != "FileNotFoundError")


def test_fixture_images_fit_the_size_budget(image_path):
    folder = image_path("grace_hopper.jpg").parent
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3_000_000


def test_fixtures_readme_documents_every_file(image_path):
    folder = image_path("grace_hopper.jpg").parent
    readme = (folder.parent / "README.md").read_text(encoding="utf-8")
    listed = [entry["file"] for entry in read_manifest(folder)]
    assert [f for f in listed if f"`{f}`" not in readme] == []
