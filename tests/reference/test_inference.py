"""Task 3: ``reference.inference`` — ``predict`` and ``predict_batch``.

With the stand-in weights the predicted classes mean nothing, so these tests check
the pipeline against the model itself; class semantics are under ``pretrained``.
A forward pass costs ~0.1 s on a CPU, so results are computed once per module and
shared; behaviour that does not depend on the image is checked on one photo.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from reference.inference import predict, predict_batch
from reference.model import same_label
from reference.preprocessing import preprocess_image

SCORE_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
ONE_PHOTO = "grace_hopper.jpg"


def rgb_of(path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


@pytest.fixture(scope="module")
def predictions(trusted_model, labels) -> Callable[[object], tuple[str, int, float]]:
    """``predict`` on a path, memoised per path for this module."""
    cache: dict = {}

    def predicted(path):
        if path not in cache:
            cache[path] = predict(trusted_model, path, labels)
        return cache[path]

    return predicted


# --- predict ------------------------------------------------------------------------------


def test_predict_returns_str_int_float(predictions, photo):
    label, index, score = predictions(photo.path)
    assert type(label) is str and type(index) is int and type(score) is float


def test_predict_label_is_the_name_of_the_index(predictions, labels, photo):
    label, index, _ = predictions(photo.path)
    assert 0 <= index < 1000 and label == labels[index]


def test_predict_score_is_a_probability(predictions, photo):
    _, _, score = predictions(photo.path)
    assert 0.0 <= score <= 1.0


def test_predict_is_the_top1_softmax_of_the_model(trusted_model, predictions, photo):
    with torch.inference_mode():
        probabilities = torch.softmax(trusted_model(preprocess_image(photo.path)), dim=1)
    top_score, top_index = probabilities.max(dim=1)
    _, index, score = predictions(photo.path)
    assert index == int(top_index)
    torch.testing.assert_close(score, float(top_score), **SCORE_TOLERANCE)


def test_predict_gives_the_same_result_for_a_pil_image(trusted_model, labels, predictions, photo):
    assert predict(trusted_model, rgb_of(photo.path), labels) == predictions(photo.path)


def test_predict_gives_the_same_result_for_an_array(trusted_model, labels, predictions, photo):
    array = np.asarray(rgb_of(photo.path))
    assert predict(trusted_model, array, labels) == predictions(photo.path)


def test_predict_is_deterministic(trusted_model, labels, predictions, image_path):
    path = image_path(ONE_PHOTO)
    assert predict(trusted_model, path, labels) == predictions(path)


def test_predict_runs_the_model_once_on_one_224_image(spy, labels, image_path):
    predict(spy, image_path(ONE_PHOTO), labels)
    assert [call.shape for call in spy.calls] == [(1, 3, 224, 224)]


def test_predict_runs_under_inference_mode(spy, labels, image_path):
    predict(spy, image_path(ONE_PHOTO), labels)
    assert spy.calls[0].inference_mode and not spy.calls[0].grad_enabled


def test_predict_feeds_the_input_on_the_models_device(spy, labels, image_path):
    predict(spy, image_path(ONE_PHOTO), labels)
    assert spy.calls[0].device == next(spy.parameters()).device


def test_predict_leaves_weights_and_buffers_unchanged(
    trusted_model, labels, image_path, fingerprint_of
):
    before = fingerprint_of(trusted_model)
    predict(trusted_model, image_path(ONE_PHOTO), labels)
    assert fingerprint_of(trusted_model) == before


def test_predict_leaves_the_mode_and_grads_unchanged(
    trusted_model, labels, image_path, training_flags_of
):
    before = training_flags_of(trusted_model)
    predict(trusted_model, image_path(ONE_PHOTO), labels)
    assert training_flags_of(trusted_model) == before
    assert all(p.grad is None for p in trusted_model.parameters())


@pytest.mark.parametrize("bad", ["not_an_image.jpg", "missing.jpg"])
def test_predict_propagates_load_errors(spy, labels, image_path, bad):
    with pytest.raises((ValueError, FileNotFoundError)):
        predict(spy, image_path(bad), labels)
    assert spy.calls == []


@pytest.mark.gpu
def test_predict_on_cuda_matches_cpu(trusted_model, labels, predictions, image_path):
    path = image_path(ONE_PHOTO)
    label, index, score = predict(copy.deepcopy(trusted_model).cuda(), path, labels)
    cpu_label, cpu_index, cpu_score = predictions(path)
    assert (label, index) == (cpu_label, cpu_index)
    torch.testing.assert_close(score, cpu_score, rtol=1e-3, atol=1e-3)


# --- predict_batch ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_inputs(image_path) -> list:
    """Photos and edge cases as paths, str, PIL and numpy: sizes, modes, kinds all differ."""
    return [
        image_path("grace_hopper.jpg"),
        str(image_path("chelsea.jpg")),
        rgb_of(image_path("coffee.jpg")),
        np.asarray(rgb_of(image_path("astronaut.jpg"))),
        image_path("gray16_I16.png"),
        image_path("exif_rotate6.jpg"),
    ]


@pytest.fixture(scope="module")
def batched(trusted_model, labels, batch_inputs) -> list:
    return predict_batch(trusted_model, batch_inputs, labels)


def test_predict_batch_agrees_with_predict_per_image(trusted_model, labels, batch_inputs, batched):
    single = [predict(trusted_model, img, labels) for img in batch_inputs]
    assert [r[:2] for r in batched] == [r[:2] for r in single]
    torch.testing.assert_close([r[2] for r in batched], [r[2] for r in single], **SCORE_TOLERANCE)


def test_predict_batch_runs_one_forward_pass_over_the_stack(spy, labels, batch_inputs):
    predict_batch(spy, batch_inputs, labels)
    assert [call.shape for call in spy.calls] == [(len(batch_inputs), 3, 224, 224)]


def test_predict_batch_runs_under_inference_mode(spy, labels, batch_inputs):
    predict_batch(spy, batch_inputs[:1], labels)
    assert spy.calls[0].inference_mode and not spy.calls[0].grad_enabled


def test_predict_batch_returns_one_str_int_float_per_image(batch_inputs, batched):
    assert len(batched) == len(batch_inputs)
    assert all(
        type(label) is str and type(index) is int and type(score) is float
        for label, index, score in batched
    )


def test_predict_batch_keeps_the_input_order(trusted_model, labels, batch_inputs, batched):
    backward = predict_batch(trusted_model, batch_inputs[::-1], labels)
    assert [r[:2] for r in backward] == [r[:2] for r in batched[::-1]]


def test_predict_batch_of_one_equals_predict(trusted_model, labels, predictions, image_path):
    path = image_path(ONE_PHOTO)
    assert predict_batch(trusted_model, [path], labels) == [predictions(path)]


def test_predict_batch_of_nothing_returns_an_empty_list_without_running(spy, labels):
    assert predict_batch(spy, [], labels) == []
    assert spy.calls == []


def test_predict_batch_with_a_bad_image_raises_before_running(spy, labels, image_path):
    with pytest.raises(ValueError):
        predict_batch(spy, [image_path("chelsea.jpg"), image_path("truncated.jpg")], labels)
    assert spy.calls == []


# --- with the real weights ----------------------------------------------------------------

# Top-1 classes of IMAGENET1K_V1 for the fixture photos (sets where neighbours compete).
PRETRAINED_TOP1 = {
    "grace_hopper.jpg": {"military uniform"},
    "chelsea.jpg": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee.jpg": {"espresso", "cup", "coffee mug"},
}


@pytest.mark.pretrained
@pytest.mark.parametrize("file", PRETRAINED_TOP1, ids=list(PRETRAINED_TOP1))
def test_pretrained_model_names_the_photo(predictions, image_path, file):
    label, _, _ = predictions(image_path(file))
    assert any(same_label(label, expected) for expected in PRETRAINED_TOP1[file]), label
