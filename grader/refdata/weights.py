"""Offline resolution of the ResNet-34 weights.

Nothing here downloads. ``resolve_weights("auto")`` picks, in order:

1. an explicit checkpoint (``spec`` is a path, or ``$LAB3_WEIGHTS`` holds one);
2. the real ``resnet34-b627a593.pth`` in the user's torch hub cache, its sha256
   verified against the ``b627a593`` prefix torchvision publishes;
3. the stand-in: ResNet-34 with weights drawn from ``numpy.random.RandomState``,
   whose stream is frozen across numpy versions, so it is bit-identical on every
   machine.

``activate(weights)`` points ``TORCH_HOME`` at a private folder that holds the
resolved checkpoint under torchvision's file name, so code written as the
handout writes it, ``models.resnet34(weights=ResNet34_Weights.IMAGENET1K_V1)``,
loads the resolved weights without a download. The user's own cache is only
ever read, never written.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from grader.errors import WeightsError
from grader.files import atomic_path, atomic_write

CHECKPOINT_NAME = "resnet34-b627a593.pth"
# Marks a torch home made by activate(): a child process inheriting TORCH_HOME must not take
# it for the user's own hub cache (it holds the stand-in under the pretrained file's name).
PRIVATE_MARKER = ".lab3-private-torch-home"
PRETRAINED_SHA256_PREFIX = "b627a593"
# v2: the fc rows are orthogonal to the features every image shares, so the stand-in's top-1
# differs between photos (v1 gave every photo the same class, which made Task 3 and the
# targets of Tasks 6-9 meaningless offline).
STANDIN_VERSION = 2
STANDIN_SEED = 20251129
# Directions of the pooled features shared by all images, measured on a frozen batch of
# smooth noise; projected out of the classifier so that what differs between images decides.
STANDIN_SHARED_DIRECTIONS = 8
# sha256 over the stand-in's tensors (key order, float32 little-endian bytes);
# fixed here so every machine can prove it built the same stand-in.
STANDIN_FINGERPRINT = "0b4a54e184ac224676c5dc102755ad4bb65ac004b5db83f891d2a8943a1c3fc4"

WeightsKind = Literal["pretrained", "standin", "checkpoint"]
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.pth?$")


@dataclass(frozen=True)
class ResolvedWeights:
    """Weights chosen for this run.

    ``kind`` is ``"pretrained"`` (torchvision's IMAGENET1K_V1 file),
    ``"standin"`` (deterministic random weights) or ``"checkpoint"`` (a file given
    explicitly). ``path`` is the checkpoint file, ``sha256`` its digest (for the
    stand-in: the fingerprint of its tensors).
    """

    kind: WeightsKind
    path: Path
    sha256: str

    @property
    def id(self) -> str:
        """Short stable key: ``standin-v2``, ``pretrained-b627a593`` or ``checkpoint-<sha12>``."""
        if self.kind == "standin":
            return f"standin-v{STANDIN_VERSION}"
        if self.kind == "pretrained":
            return f"pretrained-{PRETRAINED_SHA256_PREFIX}"
        return f"checkpoint-{self.sha256[:12]}"

    @property
    def is_pretrained(self) -> bool:
        return self.kind == "pretrained"

    def describe(self) -> str:
        """One line for every output: which weights were used."""
        if self.kind == "standin":
            return (
                f"weights: stand-in ResNet-34 ({self.id}, deterministic random weights; "
                "predictions are not ImageNet classes)"
            )
        if self.kind == "pretrained":
            return f"weights: IMAGENET1K_V1 pretrained ({self.path}, sha256 {self.sha256[:12]}…)"
        return f"weights: checkpoint {self.path} (sha256 {self.sha256[:12]}…)"

    @property
    def torch_home(self) -> Path:
        """Private TORCH_HOME whose hub cache holds this checkpoint under torchvision's name."""
        return cache_dir() / "torch_home" / self.id

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The checkpoint's tensors (CPU, float32 parameters, int64 batch counters)."""
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def build_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """A fresh torchvision ResNet-34 holding these weights, in eval mode.

        In a child of a warm worker that preloaded these weights (:func:`preload_model`),
        a copy of that model (about 30 ms instead of 230 ms to initialise and load).
        """
        preloaded = _PRELOADED.get((str(self.path), self.sha256))
        if preloaded is not None:
            return copy.deepcopy(preloaded).to(device)
        from torchvision.models import resnet34

        model = resnet34(weights=None)
        model.load_state_dict(self.state_dict())
        return model.eval().to(device)

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "sha256": self.sha256, "path": str(self.path)}


# Models built once by a warm worker (grader.run.warm_worker_process) before it forks its children,
# keyed by (checkpoint path, sha256).
_PRELOADED: dict[tuple[str, str], torch.nn.Module] = {}


def preload_model(weights: ResolvedWeights) -> None:
    """Build ``weights``' model once, for :meth:`ResolvedWeights.build_model` to copy.

    Called by a warm worker, which must stay free of OpenMP threads until it forks:
    it builds with one intra-op thread, so no parallel region (and no thread team)
    is ever entered.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _PRELOADED[(str(weights.path), weights.sha256)] = weights.build_model()
    finally:
        torch.set_num_threads(threads)


def cache_dir() -> Path:
    """Folder for the stand-in checkpoint, private torch homes and cached records.

    ``$LAB3_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/lab3``, else ``~/.cache/lab3``.
    """
    if env := os.environ.get("LAB3_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lab3"


def parse_weights_spec(value: str) -> str:
    """argparse/pytest type: ``auto``, ``standin`` or an existing checkpoint path."""
    if value in ("auto", "standin", "pretrained"):
        return value
    if not Path(value).is_file():
        raise argparse.ArgumentTypeError(
            f"--weights {value!r}: expected auto, standin, pretrained or the path of an "
            "existing .pth checkpoint"
        )
    return value


def resolve_weights(spec: str | os.PathLike[str] | None = None) -> ResolvedWeights:
    """Resolve ``spec`` (default ``$LAB3_WEIGHTS`` or ``"auto"``) to weights on disk.

    ``"auto"``: explicit path in ``$LAB3_WEIGHTS`` if that is a path, else the real
    checkpoint in the user's hub cache, else the stand-in. ``"standin"`` forces the
    stand-in, ``"pretrained"`` requires the real checkpoint.

    Raises:
        WeightsError: the path does not exist, its hash does not match the hash in
            its file name, it is not a ResNet-34 state dict, or ``"pretrained"`` was
            asked for and the real checkpoint is not in the hub cache.
    """
    spec = str(spec) if spec is not None else os.environ.get("LAB3_WEIGHTS", "auto")
    if spec == "standin":
        return standin_weights()
    if spec == "pretrained":
        found = _find_pretrained()
        if found is None:
            raise WeightsError(
                f"--weights pretrained: {CHECKPOINT_NAME} is not in the torch hub cache "
                f"({_user_hub_checkpoints()}); copy it there or pass its path with --weights"
            )
        return found
    if spec != "auto":
        return checkpoint_weights(Path(spec))
    return _find_pretrained() or standin_weights()


def checkpoint_weights(path: Path) -> ResolvedWeights:
    """Weights from an explicit file, verified.

    A file named like torchvision's checkpoints (``name-<hex>.pth``) must have a
    sha256 starting with that hex; the IMAGENET1K_V1 file counts as ``pretrained``.

    Raises:
        WeightsError: missing file, hash mismatch, or not a ResNet-34 state dict.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise WeightsError(f"weights checkpoint {path} does not exist; check the --weights path")
    digest = _sha256_file(path)
    match = _HASH_IN_NAME.search(path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsError(
            f"weights checkpoint {path}: sha256 {digest[:12]}… does not start with "
            f"{match.group(1)!r} as its file name says; the file is corrupt or not the "
            "published checkpoint, download it again"
        )
    kind: WeightsKind = (
        "pretrained" if digest.startswith(PRETRAINED_SHA256_PREFIX) else "checkpoint"
    )
    weights = ResolvedWeights(kind=kind, path=path, sha256=digest)
    try:
        weights.build_model()
    except Exception as exc:
        raise WeightsError(
            f"weights checkpoint {path} is not a torchvision ResNet-34 state dict ({exc}); "
            "pass a file saved with torch.save(model.state_dict())"
        ) from exc
    return weights


def standin_weights() -> ResolvedWeights:
    """The deterministic stand-in, built once and cached on disk (verified on each use)."""
    path = cache_dir() / f"standin-v{STANDIN_VERSION}" / CHECKPOINT_NAME
    if path.is_file():
        fingerprint = _fingerprint(torch.load(path, map_location="cpu", weights_only=True))
        if fingerprint == _expected_standin_fingerprint():
            return ResolvedWeights(kind="standin", path=path, sha256=fingerprint)
    state = make_standin_state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return ResolvedWeights(kind="standin", path=path, sha256=_fingerprint(state))


def make_standin_state_dict() -> dict[str, torch.Tensor]:
    """ResNet-34's state dict filled from a frozen random stream.

    Each tensor is drawn from its own ``RandomState(STANDIN_SEED + i)`` in
    torchvision's key order, in float64 and then rounded to float32, so the bytes
    are the same on every platform. Scales keep activations of order one through
    all 16 residual blocks (the residual branch's last BatchNorm is damped), so
    attributions and filter visualisations behave like a trained network's
    numerically even though the predictions mean nothing. The classifier is then
    made blind to what every image shares (:func:`_decorrelate_classifier`), so
    different photos get different top-1 classes.
    """
    from torchvision.models import resnet34

    template = resnet34(weights=None).state_dict()
    state: dict[str, torch.Tensor] = {}
    for i, (name, ref) in enumerate(template.items()):
        rng = np.random.RandomState(STANDIN_SEED + i)
        shape = tuple(ref.shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[name] = torch.zeros((), dtype=torch.int64)
            continue
        if name.startswith("fc."):
            fan_in = template["fc.weight"].shape[1]
            values = rng.standard_normal(shape)
            if leaf == "weight":
                # Rows orthogonal to the all-ones vector: pooled ReLU features share a
                # large positive mean, which would otherwise pick one class for every image.
                values = (values - values.mean(axis=1, keepdims=True)) * (1.5 / np.sqrt(fan_in))
            else:
                values = values * 0.1
        elif ref.ndim == 4:  # convolution: He initialisation over fan-in
            fan_in = shape[1] * shape[2] * shape[3]
            values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:  # BatchNorm
            damp = 0.3 if _is_residual_tail(name) else 1.0
            noise = rng.standard_normal(shape)
            values = {
                "weight": damp * (1.0 + 0.1 * noise),
                "bias": 0.1 * noise,
                "running_mean": 0.1 * noise,
                "running_var": 1.0 + 0.1 * np.abs(noise),
            }[leaf]
        state[name] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    state["fc.weight"] = _decorrelate_classifier(state)
    return state


def _decorrelate_classifier(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The fc weight with the pooled features' shared directions projected out.

    A random ResNet's pooled ReLU features share a large image-independent part, which
    alone would pick the same class for every image. The shared part is measured in
    float64 on a frozen batch of smooth noise (16 images, 64 px): float64 summation-order
    differences (~1e-16) vanish when the result is rounded to float32, so every machine
    builds the same bytes (the fingerprint proves it). Returns ``(1000, 512)`` float32.
    """
    from torchvision.models import resnet34

    model = resnet34(weights=None)
    model.load_state_dict(state)
    model = model.double().eval()
    model.fc = torch.nn.Identity()
    rng = np.random.RandomState(STANDIN_SEED - 1)
    low = torch.from_numpy(rng.standard_normal((16, 3, 8, 8)))
    noise = torch.nn.functional.interpolate(low, size=64, mode="bilinear", align_corners=False)
    with torch.no_grad():
        features = model(noise).numpy()  # (16, 512)
    # The mean and the leading directions of variation over noise: what no photo changes much.
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    basis, _ = np.linalg.qr(np.column_stack(
        [features.mean(axis=0), *vt[: STANDIN_SHARED_DIRECTIONS - 1]]))
    weight = state["fc.weight"].double().numpy()
    projected = weight - (weight @ basis) @ basis.T
    projected *= np.linalg.norm(weight) / np.linalg.norm(projected)
    return torch.from_numpy(np.ascontiguousarray(projected, dtype=np.float32))


def _is_residual_tail(name: str) -> bool:
    # The BatchNorm that closes a BasicBlock's residual branch (layerX.Y.bn2).
    return bool(re.fullmatch(r"layer\d\.\d+\.bn2\.weight", name))


@contextmanager
def activated(weights: ResolvedWeights) -> Iterator[Path]:
    """Context manager form of :func:`activate`; restores ``TORCH_HOME`` on exit."""
    previous = os.environ.get("TORCH_HOME")
    try:
        yield activate(weights)
    finally:
        if previous is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = previous


def activate(weights: ResolvedWeights) -> Path:
    """Point ``TORCH_HOME`` at a private folder holding ``weights`` as IMAGENET1K_V1.

    Returns the private torch home. Afterwards
    ``resnet34(weights=ResNet34_Weights.IMAGENET1K_V1)`` loads ``weights`` from
    disk (torch hub checks hashes only when it downloads).
    """
    home = weights.torch_home
    home.mkdir(parents=True, exist_ok=True)
    (home / PRIVATE_MARKER).touch()
    target = home / "hub" / "checkpoints" / CHECKPOINT_NAME
    if not (target.exists() and target.resolve() == weights.path.resolve()):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.lnk")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(weights.path)
        os.replace(tmp, target)
    os.environ["TORCH_HOME"] = str(home)
    # A hub dir set with torch.hub.set_dir() would take precedence over TORCH_HOME.
    torch.hub._hub_dir = None
    return home


def _user_hub_checkpoints() -> Path:
    home = os.environ.get("TORCH_HOME")
    if home and (
        Path(home).resolve().is_relative_to(cache_dir().resolve())
        or (Path(home) / PRIVATE_MARKER).exists()
    ):
        home = None  # a private home of ours (maybe another cache's), not the user's
    base = Path(home) if home else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "torch"
    return base / "hub" / "checkpoints"


def _find_pretrained() -> ResolvedWeights | None:
    path = _user_hub_checkpoints() / CHECKPOINT_NAME
    if not path.is_file():
        return None
    digest = _sha256_file(path)
    if not digest.startswith(PRETRAINED_SHA256_PREFIX):
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}… does not start with {PRETRAINED_SHA256_PREFIX}; "
            "the cached checkpoint is corrupt: delete it and download it again, or pass "
            "--weights standin"
        )
    return ResolvedWeights(kind="pretrained", path=path.resolve(), sha256=digest)


def _sha256_file(path: Path) -> str:
    """sha256 of a file, memoised on disk by (path, size, mtime): the 87 MB hash costs ~0.3 s."""
    stat = path.stat()
    memo_file = cache_dir() / "sha256-memo.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return memo[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = digest
    try:
        atomic_write(memo_file, json.dumps(memo).encode())
    except OSError:
        pass  # a read-only cache only costs the re-hash next time
    return digest


def _fingerprint(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name, tensor in state.items():
        h.update(name.encode())
        dtype = "<f4" if tensor.is_floating_point() else "<i8"
        h.update(tensor.detach().cpu().contiguous().numpy().astype(dtype).tobytes())
    return h.hexdigest()


def _expected_standin_fingerprint() -> str:
    return STANDIN_FINGERPRINT


STANDIN_CAPTION = "stand-in weights: not ImageNet predictions"


def mark_standin(fig: object, weights: ResolvedWeights) -> object:
    """Say in ``fig`` itself that it was drawn with the stand-in weights; returns ``fig``.

    A line :data:`STANDIN_CAPTION` is added under the figure's suptitle (or becomes it), so a
    figure shown or saved away from its context (``python -m reference``'s PNGs, the
    notebook) never passes stand-in predictions off as ImageNet ones. Nothing changes for
    other weights, for what is not a matplotlib Figure, or when the line is already there.
    """
    from matplotlib.figure import Figure

    if weights.kind != "standin" or not isinstance(fig, Figure):
        return fig
    # fig._suptitle: get_suptitle() needs matplotlib 3.8, pyproject allows 3.7.
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if STANDIN_CAPTION not in title:
        if title:
            fig._suptitle.set_text(f"{title}\n{STANDIN_CAPTION}")
        else:
            fig.suptitle(STANDIN_CAPTION, color="tab:red")
    return fig
