"""Shared helpers for the reference solution's tests (Tasks 1-4).

- The fixture images of ``fixtures/images/manifest.json``, split by kind:
  :func:`photos`, :func:`edge_cases`, :func:`bad_inputs`. A test that takes an
  argument named ``photo``, ``edge_image``, ``valid_image`` (photos and edge cases)
  or ``bad_image`` is parametrized over those entries, with the file names as ids.
- Skips for the markers ``pretrained``, ``graphviz`` and ``gpu``, each with a
  one-line reason.
- :class:`ForwardSpy` (fixture ``spy``) and :func:`fingerprint` to check what a
  function did to a model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = ROOT / "fixtures" / "images"
MANIFEST_PATH = IMAGES_DIR / "manifest.json"


@dataclass(frozen=True)
class FixtureImage:
    """One entry of ``manifest.json``."""

    file: str
    kind: str  # "photo" | "edge" | "bad"
    description: str
    expect_error: str | None  # None | "ValueError" | "FileNotFoundError"

    @property
    def path(self) -> Path:
        return IMAGES_DIR / self.file

    @property
    def error_type(self) -> type[Exception] | None:
        return {None: None, "ValueError": ValueError, "FileNotFoundError": FileNotFoundError}[
            self.expect_error
        ]


@cache
def manifest() -> tuple[FixtureImage, ...]:
    """Every manifest entry, in manifest order."""
    entries = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["images"]
    return tuple(FixtureImage(**entry) for entry in entries)


def fixture_images(*kinds: str) -> list[FixtureImage]:
    return [entry for entry in manifest() if entry.kind in kinds]


def photos() -> list[FixtureImage]:
    """Real photographs (kind ``photo``)."""
    return fixture_images("photo")


def edge_cases() -> list[FixtureImage]:
    """Valid but unusual generated images (kind ``edge``)."""
    return fixture_images("edge")


def bad_inputs() -> list[FixtureImage]:
    """Paths that must raise their ``expect_error`` (kind ``bad``)."""
    return fixture_images("bad")


def fixture_image(file: str) -> FixtureImage:
    """The manifest entry of ``file``."""
    return next(entry for entry in manifest() if entry.file == file)


_PARAMETRIZED_ARGS = {
    "photo": ("photo",),
    "edge_image": ("edge",),
    "valid_image": ("photo", "edge"),
    "bad_image": ("bad",),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname, kinds in _PARAMETRIZED_ARGS.items():
        if argname in metafunc.fixturenames:
            entries = fixture_images(*kinds)
            metafunc.parametrize(argname, entries, ids=[entry.file for entry in entries])


@pytest.fixture(autouse=True)
def _skip_by_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("pretrained"):
        weights = request.getfixturevalue("resolved_weights")
        if not weights.is_pretrained:
            pytest.skip(f"needs the real IMAGENET1K_V1 weights; {weights.describe()}")
    if request.node.get_closest_marker("graphviz") and shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot on PATH (sudo apt-get install graphviz)")
    if request.node.get_closest_marker("gpu") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(scope="session")
def labels(resolved_weights) -> dict[int, str]:
    """The reference's default labels (torchvision's category names)."""
    from reference.model import load_labels

    return load_labels()


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (names and bytes) of ``model``."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=False).items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def training_flags(model: torch.nn.Module) -> dict[str, bool]:
    """``{module name: module.training}`` for every module of ``model``."""
    return {name: module.training for name, module in model.named_modules()}


@dataclass(frozen=True)
class ForwardCall:
    """What a forward pass saw: its input and autograd's state."""

    shape: tuple[int, ...]
    device: torch.device
    inference_mode: bool
    grad_enabled: bool


class ForwardSpy(torch.nn.Module):
    """Wraps a model and records each forward call; the wrapped model is not modified."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner  # a submodule, so .parameters() reach the wrapped model's
        self.calls: list[ForwardCall] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(
            ForwardCall(
                shape=tuple(x.shape),
                device=x.device,
                inference_mode=torch.is_inference_mode_enabled(),
                grad_enabled=torch.is_grad_enabled(),
            )
        )
        return self.inner(x)


@pytest.fixture
def spy(trusted_model: torch.nn.Module) -> ForwardSpy:
    """``trusted_model`` behind a :class:`ForwardSpy`."""
    return ForwardSpy(trusted_model)


@pytest.fixture
def spy_on():
    """``spy_on(model)``: ``model`` behind a :class:`ForwardSpy`."""
    return ForwardSpy


@pytest.fixture(scope="session")
def image_path():
    """``image_path(file)``: the path of a fixture image listed in the manifest."""

    def path_of(file: str) -> Path:
        return fixture_image(file).path

    return path_of


@pytest.fixture
def fingerprint_of():
    """:func:`fingerprint` as a fixture, for test modules (they do not import conftest)."""
    return fingerprint


@pytest.fixture
def training_flags_of():
    """:func:`training_flags` as a fixture."""
    return training_flags
