"""Task 1: ``reference.model`` — the pretrained ResNet-34 and the ImageNet labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet

from reference.model import load_labels, load_model, normalize_label, same_label


@pytest.fixture(scope="module")
def loaded_model(resolved_weights) -> torch.nn.Module:
    return load_model("cpu")


def handout_json(labels: dict[int, str]) -> dict[str, list[str]]:
    """Labels in the handout's file format: ``{"159": ["n...", "Rhodesian_ridgeback"]}``.

    The WordNet ids are placeholders (the real file is not shipped); only the
    format matters here.
    """
    return {str(i): [f"n{i:08d}", name.replace(" ", "_")] for i, name in labels.items()}


# --- load_model ---------------------------------------------------------------------------


def test_load_model_returns_torchvision_resnet34(loaded_model):
    assert isinstance(loaded_model, ResNet)
    blocks = [len(getattr(loaded_model, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 4, 6, 3]  # ResNet-34's BasicBlocks per stage
    assert loaded_model.fc.out_features == 1000


def test_load_model_puts_every_module_in_eval_mode(loaded_model):
    assert not any(module.training for module in loaded_model.modules())


def test_load_model_holds_the_imagenet1k_v1_weights(loaded_model, trusted_model):
    # trusted_model holds the resolved weights; load_model must load the same ones
    # through torchvision's IMAGENET1K_V1 entry.
    expected = trusted_model.state_dict()
    actual = loaded_model.state_dict()
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=0, msg=name)


def test_load_model_puts_the_model_on_the_requested_device(loaded_model):
    assert {p.device for p in loaded_model.parameters()} == {torch.device("cpu")}


def test_load_model_does_not_download(resolved_weights, monkeypatch):
    def no_download(url, *args, **kwargs):
        raise AssertionError(f"load_model tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    assert isinstance(load_model("cpu"), ResNet)


@pytest.mark.gpu
def test_load_model_on_cuda_gives_the_same_logits(loaded_model):
    x = torch.linspace(-2, 2, 3 * 224 * 224).reshape(1, 3, 224, 224)
    cuda_model = load_model("cuda")
    assert {p.device.type for p in cuda_model.parameters()} == {"cuda"}
    with torch.inference_mode():
        torch.testing.assert_close(
            cuda_model(x.cuda()).cpu(), loaded_model(x), rtol=1e-3, atol=1e-3
        )


# --- load_labels: default (the weights' metadata) -----------------------------------------


def test_default_labels_have_int_keys_0_to_999_in_order(labels):
    assert list(labels) == list(range(1000))


def test_default_labels_are_nonempty_strings(labels):
    assert all(isinstance(name, str) and name.strip() for name in labels.values())


@pytest.mark.parametrize(
    ("index", "name"),
    [(0, "tench"), (159, "Rhodesian ridgeback"), (652, "military uniform"), (999, "toilet tissue")],
    ids=["0-tench", "159-ridgeback", "652-uniform", "999-toilet-tissue"],
)
def test_default_labels_name_known_classes(labels, index, name):
    assert labels[index] == name


def test_default_labels_match_the_handouts_naming_via_same_label(labels):
    assert same_label(labels[159], "Rhodesian_ridgeback")


# --- load_labels: a JSON file in the handout's format -------------------------------------


def test_handout_json_labels_are_accepted(labels, tmp_path):
    path = tmp_path / "imagenet_class_index.json"
    path.write_text(json.dumps(handout_json(labels)), encoding="utf-8")
    loaded = load_labels(path)
    assert list(loaded) == list(range(1000))
    assert loaded[159] == "Rhodesian_ridgeback"
    assert all(same_label(loaded[i], labels[i]) for i in range(1000))


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "Path"])
def test_json_path_may_be_str_or_pathlike(labels, tmp_path, as_type):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(handout_json(labels)), encoding="utf-8")
    assert load_labels(as_type(path))[0] == "tench"


def test_json_with_fewer_than_1000_entries_is_accepted(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"0": ["n01440764", "tench"], "2": ["n01484850", "great_white_shark"]}')
    assert load_labels(path) == {0: "tench", 2: "great_white_shark"}


MALFORMED_JSON = {
    "syntax-error": b'{"0": ["n01440764", "tench"],}',
    "not-utf8": '{"0": ["n01440764", "tench\xe9"]}'.encode("latin-1"),
    "top-level-list": b'[["n01440764", "tench"]]',
    "empty-object": b"{}",
    "value-is-a-string": b'{"0": "tench"}',
    "value-too-short": b'{"0": ["tench"]}',
    "value-is-an-object": b'{"0": {"name": "tench"}}',
    "name-not-a-string": b'{"0": ["n01440764", 7]}',
    "name-empty": b'{"0": ["n01440764", " "]}',
    "key-not-an-index": b'{"zero": ["n01440764", "tench"]}',
    "negative-key": b'{"-1": ["n01440764", "tench"]}',
    "duplicate-index": b'{"1": ["n01", "a"], "01": ["n02", "b"]}',
}


@pytest.mark.parametrize("content", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_raises_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad_labels.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_labels(path)


def test_missing_json_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_labels(tmp_path / "absent.json")


# --- normalize_label / same_label (given helpers) -----------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Rhodesian_ridgeback", "Rhodesian ridgeback"),
        ("military_uniform", "Military  Uniform"),
        ("tench", " tench "),
    ],
    ids=["underscore-vs-space", "case-and-double-space", "surrounding-space"],
)
def test_same_label_accepts_both_naming_styles(a, b):
    assert same_label(a, b)


def test_same_label_rejects_different_classes():
    assert not same_label("tabby", "tiger_cat")


def test_normalize_label_is_lowercase_with_single_spaces():
    assert normalize_label("Rhodesian_ridgeback") == "rhodesian ridgeback"

