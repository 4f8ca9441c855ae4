"""Tools for probes: call untrusted functions and turn what comes back into plain data.

A probe never lets a student object escape into the record: tensors must be
exactly ``torch.Tensor`` (no subclasses), numbers and strings are copied into
builtin types, figures are reduced to facts and PNG bytes.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import io
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image

from grader.errors import ImplementationError  # noqa: F401 (raised here; importable from here as before)
from grader.paths import TEMPLATE_DIR
from grader.probe.records import Record, plain, type_name
from grader.refdata.weights import ResolvedWeights
from grader.settings import ProbeSettings

MAX_TRACEBACK = 4000


@dataclass
class ProbeContext:
    """What a probe may use: the implementation, trusted inputs and a scratch folder."""

    impl: Any  # grader.probe.implementation.Implementation
    weights: ResolvedWeights
    settings: ProbeSettings
    fixtures_dir: Path
    scratch: Path
    device: str = "cpu"
    _base_model: torch.nn.Module | None = field(default=None, repr=False)
    # Task module -> how a handout-shaped module was adapted (grader.probe.handout_shape).
    adapted: dict[str, list[str]] = field(default_factory=dict, repr=False)
    # Seconds the submission's top-level code may run (grader.probe.top_level), or None: not run.
    run_top_level: float | None = None

    def module(self, name: str) -> ModuleType:
        """The implementation's module ``name`` (e.g. ``"filters"``).

        A handout-shaped module is first adapted (:func:`grader.probe.handout_shape.adapt`). A
        function the template declares but the module does not define is then added as a
        stub raising ``AttributeError`` with a clear message, so a missing function costs
        the checks of its own calls only, not the whole task's probe.

        Raises:
            ImplementationError: the module is missing or fails to import.
        """
        module = self.impl.module(name)
        if name not in self.adapted:
            from grader.probe.handout_shape import adapt

            # Once per imported module, whichever context asks first (pytest makes one per task).
            done = self.impl.__dict__.setdefault("adaptations", {})
            if name not in done:
                done[name] = []
                adapt(name, module, self.module, done[name], run=self.top_level_run)
            self.adapted[name] = done[name]
        namespace = module.__dict__
        for function in template_functions(name):
            if function not in namespace:
                namespace[function] = _missing_function(name, function)
        return module

    def top_level_run(self) -> Any:
        """The submission's top-level code run once with the offline stand-ins
        (:func:`grader.probe.top_level.run_top_level`, on the variant's photo), or None when
        ``run_top_level`` is off or the submission has no top-level code (a package)."""
        if self.run_top_level is None:
            return None
        cache = self.impl.__dict__
        if "top_level_run" not in cache:
            from grader.probe.top_level import read_source, run_top_level

            source = read_source(self.impl.root)
            cache["top_level_run"] = None if source is None else run_top_level(
                source, filename=str(self.impl.root / "top_level.py"),
                workdir=self.scratch / "top_level",
                photo=(self.fixtures_dir / "images" / self.settings.photo).read_bytes(),
                seconds=self.run_top_level)
        return cache["top_level_run"]

    def fresh_model(self) -> torch.nn.Module:
        """A private copy of the trusted ResNet-34 (eval) for one student call."""
        if self._base_model is None:
            self._base_model = self.weights.build_model()
        return copy.deepcopy(self._base_model).to(self.device)




@functools.cache
def template_functions(module: str) -> tuple[str, ...]:
    """The public functions ``student_template/<module>.py`` defines (parsed, not imported)."""
    try:
        tree = ast.parse((TEMPLATE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ()
    return tuple(node.name for node in tree.body
                 if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"))


def _missing_function(module: str, function: str) -> Callable[..., Any]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError(f"{module}.py defines no function {function}(); copy its "
                             f"signature from student_template/{module}.py and implement it")

    missing.__name__ = missing.__qualname__ = function
    missing.__lab3_missing__ = True  # type: ignore[attr-defined]  # grader.check.top_level_checks
    return missing


_CHECKPOINT: Callable[[Record, bool], None] | None = None
# The tensors the last checkpoint saved (task, names and objects): unchanged, only the JSON
# is rewritten, so a task's many calls do not rewrite its images each time.
_saved_tensors: tuple[str, tuple[tuple[str, int], ...]] | None = None


def set_checkpoint(save: Callable[[Record, bool], None] | None) -> None:
    """Have :func:`call` save the record so far before each student call (``lab3 grade``'s
    child does), with that call marked as cut by the time limit: a task that runs out of
    time keeps what it recorded before the call that overran, as ``pytest --impl``
    (no time limit) would have."""
    global _CHECKPOINT
    _CHECKPOINT = save


def _save_checkpoint(record: Record, pending: str) -> None:
    global _saved_tensors
    tensors = (record.task, tuple((k, id(v)) for k, v in record.tensors.items()))
    changed = tensors != _saved_tensors
    calls = record.data.get("calls")
    data = {**record.data, "calls": {
        **(calls if isinstance(calls, dict) else {}),
        pending: {"ok": False, "timeout": True, "seconds": None,
                  "message": "cut by the time limit before it returned"}}}
    try:
        _CHECKPOINT(Record(task=record.task, data=data, tensors=dict(record.tensors)), changed)
        _saved_tensors = tensors
    except Exception:  # noqa: BLE001 - a checkpoint that cannot be written only loses itself
        pass


def new_record(task: str) -> Record:
    return Record(task=task, data={"calls": {}})


def call(record: Record, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` and note in ``record.data["calls"][name]`` whether it returned or raised.

    Returns what ``fn`` returned, or ``None`` when it raised. The exception's
    type, message and a capped traceback go into the record; ``NotImplementedError``
    is marked so checks can say "not implemented yet" instead of "crashed".
    ``SystemExit`` and ``KeyboardInterrupt`` raised by student code are recorded
    like any error rather than ending the grader.
    """
    if _CHECKPOINT is not None:
        _save_checkpoint(record, name)
    start = time.perf_counter()
    outcome: dict[str, Any] = {"ok": True}
    result = None
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # the student's failure is data, not ours
        if isinstance(exc, KeyboardInterrupt) and not _raised_by_student(exc):
            raise
        outcome = {
            "ok": False,
            "not_implemented": isinstance(exc, NotImplementedError),
            "error_type": type(exc).__name__,
            "message": _safe_str(exc)[:2000],
            "traceback": student_traceback(exc)[-MAX_TRACEBACK:],
        }
    outcome["seconds"] = round(time.perf_counter() - start, 4)
    record.data["calls"][name] = outcome
    return result


def _raised_by_student(exc: BaseException) -> bool:
    return exc.__traceback__ is not None and exc.__traceback__.tb_next is not None


def _safe_str(exc: BaseException) -> str:
    try:
        return str.__str__(str(exc))
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break the probe
        return f"<{type(exc).__name__} with an unprintable message>"


def student_traceback(exc: BaseException) -> str:
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        # Drop the grader's own frames so the student sees where *their* code failed.
        frames = [f for f in frames if "/grader/" not in f.filename.replace("\\", "/")]
        lines = traceback.format_list(frames)
        lines.append(f"{type(exc).__name__}: {_safe_str(exc)}")
        return "".join(lines)
    except Exception:  # noqa: BLE001
        return f"{type(exc).__name__}"


def put_tensor(record: Record, name: str, value: Any, *, max_elements: int = 4_000_000) -> bool:
    """Store ``value`` as tensor ``name`` if it is exactly a ``torch.Tensor`` (or ndarray).

    Records ``data["types"][name]`` = the real type name, shape and dtype either
    way, so checks can explain what came back. Returns True when stored.
    """
    types = record.data.setdefault("types", {})
    info: dict[str, Any] = {"type": type_name(value)}
    tensor: torch.Tensor | None = None
    if type(value) is torch.Tensor:
        # Only dense tensors with data: meta, sparse and nested tensors cannot be copied
        # (their .to()/.contiguous() raise) and are described instead.
        if value.is_meta or value.is_nested or value.layout is not torch.strided:
            kind = "meta" if value.is_meta else "nested" if value.is_nested else str(value.layout)
            info["type"] = f"torch.Tensor ({kind}, not a dense tensor with data)"
        else:
            tensor = value
    elif type(value) is np.ndarray and value.dtype.kind in "fiub":
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        info["numpy"] = True
    if tensor is not None:
        info.update(
            shape=list(tensor.shape),
            dtype=str(tensor.dtype).removeprefix("torch."),
            device=str(tensor.device),
            requires_grad=bool(tensor.requires_grad),
        )
        if tensor.numel() > max_elements:
            info["too_large"] = True
            tensor = None
        else:
            tensor = tensor.detach().to("cpu", copy=True).contiguous()
            if tensor.dtype not in (torch.float32, torch.float64, torch.int64, torch.uint8,
                                    torch.bool, torch.int32, torch.float16):
                tensor = tensor.to(torch.float32)
            record.tensors[name] = tensor
    types[name] = info
    return tensor is not None


def model_facts(model: torch.nn.Module) -> dict[str, Any]:
    """Facts a check needs about a model after a student call: mode, hooks, weights digest."""
    hooks = []
    for mod_name, module in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks"):
            count = len(getattr(module, kind, {}) or {})
            if count:
                hooks.append({"module": mod_name or "<model>", "kind": kind.strip("_"),
                              "count": count})
    training = sorted(n or "<model>" for n, m in model.named_modules() if m.training)
    grads = sorted(n for n, p in model.named_parameters() if p.grad is not None)
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    return {
        "type": type_name(model),
        "training_modules": training[:50],
        "n_training_modules": len(training),
        "hooks": hooks[:50],
        "params_with_grad": grads[:50],
        "params_frozen": frozen[:50],
        "weights_sha256": state_digest(model),
    }


def state_digest(model: torch.nn.Module) -> str:
    """sha256 over the model's state dict (names and float32 bytes, key order)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@contextmanager
def closing_figures() -> Iterator[None]:
    """Close every pyplot figure opened inside the block (student code may use ``plt``).

    Record figure facts inside the block; closing afterwards keeps pyplot's figure
    registry from growing over many submissions graded in one process.
    """
    plt = sys.modules.get("matplotlib.pyplot")
    before = set(plt.get_fignums()) if plt is not None else set()
    try:
        yield
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)


def figure_facts(record: Record, name: str, fig: Any, *, dpi: int = 50) -> bool:
    """Reduce a matplotlib figure to facts and a PNG.

    ``data["figures"][name]``: number of axes, per visible axes its title, whether
    it holds an image, and the pixel standard deviation of its rendered area (0
    for a blank cell). The PNG goes into tensor ``f"{name}_png"`` (uint8 bytes).
    The raw data of each axes' images (``AxesImage.get_array()``, in drawing order) go
    into tensors ``f"{name}_ax{i}_im{j}"`` (``i``: the axes' index in ``axes``), described
    by ``axes[i]["images"]`` (see :func:`_axes_images`), so checks compare what a cell
    shows with the reference's, not how it looks.
    Accepts a Figure or a ``(Figure, axes)`` tuple as Captum returns. Returns
    False (with the reason recorded) when ``fig`` is not a matplotlib figure.
    """
    from matplotlib.figure import Figure

    # Exact types: a Figure subclass could report axes it does not draw.
    if type(fig) is tuple and fig and type(fig[0]) is Figure:
        fig = fig[0]
    figures = record.data.setdefault("figures", {})
    if type(fig) is not Figure:
        figures[name] = {"error": f"expected a matplotlib Figure, got {type_name(fig)}"}
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # render off-screen whatever backend the figure was made with
    fig.set_dpi(dpi)
    fig.canvas.draw()
    pixels = np.array(fig.canvas.buffer_rgba())[..., :3]  # uint8 copy: the canvas may be reused
    height = pixels.shape[0]
    axes: list[dict[str, Any]] = []
    budget = [MAX_FIGURE_IMAGES]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_window_extent()
        x0, x1 = max(int(box.x0), 0), min(int(box.x1), pixels.shape[1])
        y0, y1 = max(int(height - box.y1), 0), min(int(height - box.y0), height)
        region = pixels[y0:y1, x0:x1]
        axes.append({
            "title": plain(ax.get_title()),
            "has_image": bool(ax.images) or bool(ax.collections),
            "axis_on": bool(ax.axison),
            "pixel_std": float(region.std(dtype=np.float64)) if region.size else 0.0,
            "size": [int(x1 - x0), int(y1 - y0)],
            "images": _axes_images(record, f"{name}_ax{len(axes)}", ax, budget),
        })
    figures[name] = {"n_axes": len(axes), "axes": axes, "suptitle": plain(
        fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else "")}
    # Encode the canvas drawn above: fig.savefig would lay out and draw every artist a
    # second time (about half of this function's cost on Task 7's figures, measured).
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    record.tensors[f"{name}_png"] = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    return True


# Raw image data kept per figure: at most this many arrays (the record holds at most
# grader.probe.records.MAX_TENSORS tensors), three per axes (Captum's blended_heat_map draws
# two), each at most MAX_IMAGE_SIDE pixels a side (larger ones keep every k-th row
# and column, k the smallest step that fits: deterministic, no interpolation).
MAX_FIGURE_IMAGES = 64
MAX_IMAGES_PER_AXES = 3
MAX_IMAGE_SIDE = 128


def _axes_images(record: Record, prefix: str, ax: Any, budget: list[int]) -> list[dict[str, Any]]:
    """Store the data of ``ax``'s images as float32 tensors ``f"{prefix}_im{j}"``.

    Returns one entry per image: ``type`` (its class), and when stored ``tensor`` (the
    name), ``shape`` (before subsampling), ``dtype`` (numpy's, e.g. ``uint8``: a check
    may rescale 0-255 data) and ``step`` (the subsampling stride, 1 for none). Only
    exact ``AxesImage`` artists holding a numeric ndarray or masked array shaped
    ``(H, W)`` or ``(H, W, 3|4)`` are stored (masked values as their data); anything
    else is described by its type only.
    """
    from matplotlib.image import AxesImage

    entries: list[dict[str, Any]] = []
    for j, artist in enumerate(list(ax.images)[:MAX_IMAGES_PER_AXES]):
        entry: dict[str, Any] = {"type": type_name(artist)}
        entries.append(entry)
        if type(artist) is not AxesImage or budget[0] <= 0:
            continue
        array = artist.get_array()
        if type(array) not in (np.ndarray, np.ma.MaskedArray):
            entry["array_type"] = type_name(array)
            continue
        data = np.ma.getdata(array)
        if (type(data) is not np.ndarray or data.dtype.kind not in "fiub"
                or data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] not in (3, 4))
                or 0 in data.shape):
            entry["shape"] = [int(d) for d in getattr(data, "shape", ())][:4]
            continue
        step = max(1, -(-max(data.shape[:2]) // MAX_IMAGE_SIDE))
        kept = np.array(data[::step, ::step], dtype=np.float32)  # a copy
        key = f"{prefix}_im{j}"
        record.tensors[key] = torch.from_numpy(np.ascontiguousarray(kept))
        budget[0] -= 1
        entry.update(tensor=key, shape=[int(d) for d in data.shape], dtype=str(data.dtype),
                     step=step)
    return entries


def mean_activation(
    model: torch.nn.Module, layer: str, filter_index: int, images: torch.Tensor
) -> torch.Tensor:
    """Mean activation of one filter of ``layer`` for each image, via a truncated pass.

    Returns:
        float32 tensor ``(N,)``. Used by trusted code only (checks and reference).
    """
    module = dict(model.named_modules())[layer]
    captured: dict[str, torch.Tensor] = {}

    class _Stop(Exception):
        pass

    def hook(_m: torch.nn.Module, _i: Any, out: torch.Tensor) -> None:
        captured["out"] = out
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            try:
                model(images)
            except _Stop:
                pass
    finally:
        handle.remove()
    return captured["out"][:, filter_index].mean(dim=(1, 2)).float()
