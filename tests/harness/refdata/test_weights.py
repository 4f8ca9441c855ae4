"""Offline weights resolution (grader/refdata/weights.py)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet34_Weights, resnet34

from grader.refdata import weights as W

_FINGERPRINT_SCRIPT = (
    "from grader.refdata.weights import make_standin_state_dict, _fingerprint;"
    "print(_fingerprint(make_standin_state_dict()))"
)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lab3 cache and an empty user hub cache, so nothing of the machine leaks in."""
    cache = tmp_path / "lab3-cache"
    monkeypatch.setenv("LAB3_CACHE_DIR", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "user-torch"))
    monkeypatch.delenv("LAB3_WEIGHTS", raising=False)
    return cache


def test_standin_is_identical_in_two_fresh_processes(tmp_path: Path) -> None:
    prints = []
    for i in range(2):
        env = {**os.environ, "LAB3_CACHE_DIR": str(tmp_path / f"c{i}")}
        out = subprocess.run([sys.executable, "-c", _FINGERPRINT_SCRIPT], env=env,
                             capture_output=True, text=True, check=True)
        prints.append(out.stdout.strip())
    assert prints[0] == prints[1] == W.STANDIN_FINGERPRINT


def test_auto_without_real_checkpoint_is_the_standin(private_cache: Path) -> None:
    weights = W.resolve_weights("auto")
    assert weights.kind == "standin"
    assert weights.id == f"standin-v{W.STANDIN_VERSION}"
    assert "stand-in" in weights.describe()


def test_corrupt_cached_standin_is_rebuilt(private_cache: Path) -> None:
    path = W.standin_weights().path
    state = torch.load(path, weights_only=True)
    state["conv1.weight"] += 1.0
    torch.save(state, path)
    assert W.standin_weights().sha256 == W.STANDIN_FINGERPRINT


def test_explicit_checkpoint_is_used(private_cache: Path, tmp_path: Path) -> None:
    state = W.make_standin_state_dict()
    state["fc.bias"] = torch.arange(1000, dtype=torch.float32)
    path = tmp_path / "finetuned.pth"
    torch.save(state, path)
    weights = W.resolve_weights(str(path))
    assert weights.kind == "checkpoint"
    assert torch.equal(weights.build_model().fc.bias, state["fc.bias"])
    assert str(path) in weights.describe()


def test_checkpoint_with_wrong_hash_is_refused(private_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / W.CHECKPOINT_NAME
    torch.save(W.make_standin_state_dict(), path)
    with pytest.raises(W.WeightsError, match="does not start with 'b627a593'"):
        W.resolve_weights(str(path))


def test_corrupt_real_checkpoint_in_hub_cache_is_refused(private_cache: Path, tmp_path: Path) -> None:
    hub = tmp_path / "user-torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / W.CHECKPOINT_NAME).write_bytes(b"not the real weights")
    with pytest.raises(W.WeightsError, match="corrupt"):
        W.resolve_weights("auto")


def test_not_a_resnet34_checkpoint_is_refused(private_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(W.WeightsError, match="not a torchvision ResNet-34 state dict"):
        W.resolve_weights(str(path))


def test_missing_checkpoint_path_is_refused(private_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.resolve_weights(str(tmp_path / "nope.pth"))


def test_pretrained_required_but_absent_says_where_to_put_it(private_cache: Path) -> None:
    with pytest.raises(W.WeightsError, match="not in the torch hub cache"):
        W.resolve_weights("pretrained")


@pytest.mark.parametrize("spec", ["resnet", "/no/such/file.pth"])
def test_weights_option_rejects_bad_values(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected auto, standin"):
        W.parse_weights_spec(spec)


def test_handout_code_loads_resolved_weights_without_download(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    weights = W.standin_weights()
    with W.activated(weights) as home:
        model = resnet34(weights=ResNet34_Weights.IMAGENET1K_V1)
        assert os.environ["TORCH_HOME"] == str(home)
    expected = weights.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_activation_never_writes_the_user_cache(private_cache: Path, tmp_path: Path) -> None:
    with W.activated(W.standin_weights()) as home:
        assert home.is_relative_to(private_cache)
    assert not (tmp_path / "user-torch").exists()


def test_an_inherited_private_torch_home_is_not_the_users_cache(
    private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child with another LAB3_CACHE_DIR inherits TORCH_HOME pointing at a parent's private
    home, where the stand-in sits under the pretrained file's name: still the stand-in."""
    monkeypatch.setenv("LAB3_CACHE_DIR", str(tmp_path / "parent-cache"))
    parent_home = W.activate(W.standin_weights())
    monkeypatch.setenv("LAB3_CACHE_DIR", str(tmp_path / "child-cache"))
    monkeypatch.setenv("TORCH_HOME", str(parent_home))
    assert W.resolve_weights("auto").kind == "standin"


def test_a_preloaded_model_is_copied_for_each_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(W, "_PRELOADED", {})
    weights = W.resolve_weights("standin")
    W.preload_model(weights)
    first, second = weights.build_model(), weights.build_model()
    assert first is not second and not first.training
    fresh = dict(first.state_dict())
    for name, tensor in second.state_dict().items():
        assert torch.equal(tensor, fresh[name]), name
    with torch.no_grad():
        first.fc.weight.zero_()  # what one probe's student does to its copy...
    assert bool(second.fc.weight.abs().sum() > 0)  # ...never reaches the next copy


@pytest.mark.parametrize("size", [224, 64, 32])
def test_standin_top1_differs_between_the_photos(size: int) -> None:
    # Task 3 and the targets of Tasks 6-9 mean something offline only if the stand-in's
    # prediction depends on the image (v1 gave every photo one class).
    from PIL import Image
    from torchvision import transforms

    from grader.probe.inputs import IMAGENET_MEAN, IMAGENET_STD, image_paths

    prep = transforms.Compose([
        transforms.Resize(256 if size == 224 else size), transforms.CenterCrop(size),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    photos = image_paths("photo")
    batch = torch.stack([prep(Image.open(p).convert("RGB")) for p in photos])
    with torch.inference_mode():
        top1 = W.standin_weights().build_model()(batch).argmax(dim=1).tolist()
    assert len(set(top1)) == len(photos), dict(zip([p.name for p in photos], top1, strict=True))
