"""Task 4: the model graph and its convolution layer names.

Probe
    ``render_model_graph(model, ctx.scratch / "graph", image_size=S)`` once, with
    the small probe size ``S`` (the autograd graph has the same nodes at any input
    size) and, as ``model``, the trusted ResNet-34 cut to the first block of each
    stage (:func:`graph_model`: the stem, ``layer1.0`` ... ``layer4.0`` with the
    three downsample convolutions, the head). Almost all of this task's cost is
    Graphviz rasterizing the PNG and Pillow decoding it again, and both grow with
    the number of nodes: the full ResNet-34 graph is a 3941x9923 PNG (1.2 s in
    ``dot``, 0.5 s to decode, measured), the cut one 2123x3059 (0.2 s + 0.08 s).
    The function under test runs the same code either way (forward pass,
    ``make_dot`` with the parameters, ``render``), so every mistake below shows
    the same on the smaller graph. Recorded: the
    returned path (relative to the scratch folder), whether that file exists,
    its suffix and size, and for a PNG (by its signature, not its name) the facts
    Pillow reads in the probe: format, width, height, mode, the pixel standard
    deviation of a grayscale copy downsampled to at most 1024 px, and a thumbnail
    (at most 256 px, uint8 RGB) for feedback pages. The PNG itself is not
    recorded (the ResNet-34 graph is ~4000x10000 px). For a ``.dot`` (no Graphviz)
    the node count (``[label=`` lines) and edge count (``->``) are recorded.
    ``conv_layer_names(model)`` is called once on another fresh model.

Why this catches the mistakes (tests/harness/test_graph_checks.py):
    - a blank or tiny PNG: size below 200x200 or pixel std ~0;
    - a ``conv_layer_names`` that misses the 3 downsample convolutions (or adds
      other layers): compared name by name with the reference's 36 names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PosixPath, WindowsPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from grader.checking import CheckContext, CheckFailed, Outcome, partial, passed, require_call
from grader.probing import ProbeContext, call, new_record
from grader.records import Record, plain, type_name

POINTER_RENDER = "Task 4: render_model_graph in graph.py"
POINTER_NAMES = "Task 4: conv_layer_names in graph.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SIDE = 200
MIN_PIXEL_STD = 2.0  # 0-255 grayscale at <= 1024 px; the ResNet-34 graph gives ~16
MAX_PIXELS = 200_000_000  # refuse to decode beyond this (Pillow's bomb limit is ~179 M)
MAX_DOT_BYTES = 8 * 1024 * 1024
THUMBNAIL = 256
ANALYSIS_SIDE = 1024
DOT_NODE_TOLERANCE = 0.1
MAX_NAMES = 1000


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("graph")
    record = new_record("graph")
    target = ctx.scratch / "graph"
    for stale in (target.with_suffix(".png"), target.with_suffix(".dot"), target):
        if stale.is_file():
            stale.unlink()
    out = call(record, "render_model_graph", mod.render_model_graph, graph_model(ctx), target,
               image_size=ctx.settings.image_size)
    record.data["graph"] = _graph_info(record, out, ctx.scratch)
    default = target.with_suffix(".png")
    record.data["default_png_exists"] = default.is_file()
    if "path" not in record.data["graph"] and default.is_file():
        # Wrong return value but the PNG was written: its facts still earn part of the points.
        record.data["graph_default"] = _graph_info(record, default, ctx.scratch)

    names = call(record, "conv_layer_names", mod.conv_layer_names, ctx.fresh_model())
    info: dict[str, Any] = {"type": type_name(names)}
    if type(names) in (list, tuple):
        items = list(names)
        info["length"] = len(items)
        info["names"] = [plain(n) for n in items[:MAX_NAMES]]
    record.data["conv_names"] = info
    return record


def graph_model(ctx: ProbeContext) -> torch.nn.Module:
    """A fresh trusted ResNet-34 keeping only the first block of each stage (eval mode).

    Still a torchvision ``ResNet`` with the trusted weights and the usual names
    (``conv1``, ``layer2.0.downsample.0``, ``fc``); its graph has a quarter of the nodes.
    """
    model = ctx.fresh_model()
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        setattr(model, stage, torch.nn.Sequential(getattr(model, stage)[0]))
    return model


def _graph_info(record: Record, out: Any, scratch: Path) -> dict[str, Any]:
    """Facts about the returned path and the file there (never raises)."""
    try:
        return _path_facts(record, out, scratch)
    except Exception as exc:  # noqa: BLE001 - e.g. a path with a NUL byte, an unreadable file
        return {"type": type_name(out), "error": f"{type(exc).__name__}: {exc}"[:300]}


def _path_facts(record: Record, out: Any, scratch: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type_name(out)}
    if type(out) is str:
        path = Path(str.__str__(out))
    elif type(out) in (PosixPath, WindowsPath, Path):
        path = Path(os.fspath(out))
    else:
        return info
    path = path if path.is_absolute() else Path.cwd() / path
    try:
        info["path"] = path.resolve().relative_to(scratch.resolve()).as_posix()
    except ValueError:
        info["path"] = path.name
        info["outside_scratch"] = True
    info["suffix"] = path.suffix
    info["exists"] = path.is_file()
    if not info["exists"]:
        return info
    info["bytes"] = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(PNG_SIGNATURE):
        info["kind"] = "png"
        info.update(_png_facts(record, path))
    elif info["bytes"] <= MAX_DOT_BYTES and b"digraph" in head:
        info["kind"] = "dot"
        text = path.read_bytes().decode("utf-8", errors="replace")
        info["dot_nodes"] = len(re.findall(r"\[label=", text))
        info["dot_edges"] = text.count("->")
    else:
        info["kind"] = "other"
    return info


def _png_facts(record: Record, path: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    try:
        with Image.open(path) as img:
            facts.update(format=plain(img.format), width=int(img.width), height=int(img.height),
                         mode=plain(img.mode))
            if img.width * img.height > MAX_PIXELS:
                facts["too_large"] = True
                return facts
            img.load()
            # Box-reduce first: compositing and converting 40 M pixels would cost seconds.
            factor = max(img.width, img.height) // ANALYSIS_SIDE
            small = img.reduce(factor) if factor > 1 and img.mode in ("RGBA", "RGB", "L",
                                                                        "LA") else img
            rgb = _on_white(small)
    except Exception as exc:  # noqa: BLE001 - a broken PNG is a fact, not a probe crash
        facts["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return facts
    gray = rgb.convert("L")
    gray.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    facts["pixel_std"] = float(np.asarray(gray, dtype=np.float32).std())
    thumb = rgb.copy()
    thumb.thumbnail((THUMBNAIL, THUMBNAIL))
    record.tensors["graph_thumbnail"] = torch.from_numpy(np.asarray(thumb, dtype=np.uint8).copy())
    return facts


def _on_white(img: Image.Image) -> Image.Image:
    """RGB copy; transparent pixels (Graphviz's background can be) become white."""
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


# --------------------------------------------------------------------------- checks


def _graph(record: Record) -> dict[str, Any]:
    info = record.data.get("graph")
    return info if isinstance(info, dict) else {}


def _png_problem(info: dict[str, Any]) -> str | None:
    if info.get("error"):
        return f"the PNG cannot be read ({info['error']})"
    width, height = info.get("width"), info.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return "the PNG's size could not be read"
    if info.get("too_large"):
        return f"the PNG is {width}x{height} pixels, too large to check"
    if width < MIN_SIDE or height < MIN_SIDE:
        return (f"the PNG is only {width}x{height} pixels; render the whole graph "
                "(make_dot(model(x), params=dict(model.named_parameters())).render(...))")
    std = info.get("pixel_std")
    if not isinstance(std, int | float) or std < MIN_PIXEL_STD:
        return "the PNG is blank; render the make_dot graph of the model's output"
    return None


def check_graph_png(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    require_call(student, "render_model_graph", POINTER_RENDER)
    info = _graph(student)
    ref = _graph(reference)
    fraction, note = 1.0, ""
    if info.get("error"):
        raise CheckFailed(f"the returned path could not be read ({info['error']}); return the "
                          "Path of the PNG")
    if "path" not in info:
        default = student.data.get("graph_default")
        if not isinstance(default, dict):
            raise CheckFailed(f"render_model_graph returned {info.get('type')} and wrote no "
                              "<out_path>.png; render to out_path and return its Path")
        # The PNG is there, only the return value is wrong: judge the file, half the points.
        info, fraction = default, 0.5
        note = (f"; but render_model_graph returned {_graph(student).get('type')}: return the "
                "Path of the PNG (dot.render(...) returns it)")
    if info.get("outside_scratch"):
        raise CheckFailed(f"the graph was written to {info.get('path')} outside out_path; "
                          "render to the out_path argument (plus .png)")
    if not info.get("exists"):
        raise CheckFailed(f"render_model_graph returned {info.get('path')!r}, which does not "
                          "exist")
    kind = info.get("kind")
    if kind == "png":
        problem = _png_problem(info)
        if problem:
            raise CheckFailed(problem)
        return partial(fraction, f"a {info.get('width')}x{info.get('height')} PNG of the graph"
                                 f"{note}")
    if kind == "dot" and ref.get("kind") == "dot":
        ref_nodes, nodes = ref.get("dot_nodes"), info.get("dot_nodes")
        if isinstance(ref_nodes, int) and isinstance(nodes, int) and \
                abs(nodes - ref_nodes) <= DOT_NODE_TOLERANCE * ref_nodes:
            return passed(f"Graphviz is not installed here, so a .dot is accepted: {nodes} "
                          f"nodes (reference: {ref_nodes})")
        raise CheckFailed(f"the .dot graph has {nodes} nodes, the reference's {ref_nodes}; "
                          "draw make_dot(model(x), params=dict(model.named_parameters()))")
    if kind == "dot":
        raise CheckFailed("render_model_graph wrote .dot source, not a PNG; install Graphviz "
                          "(apt-get install graphviz) and render with format='png'")
    raise CheckFailed(f"{info.get('path')!r} is not a PNG file; render with format='png'")


def check_conv_names(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    require_call(student, "conv_layer_names", POINTER_NAMES)
    expected = (reference.data.get("conv_names") or {}).get("names")
    if not isinstance(expected, list):
        raise CheckFailed("no reference conv names recorded (grader set-up problem)")
    info = student.data.get("conv_names") or {}
    names = info.get("names")
    if not isinstance(names, list):
        raise CheckFailed(f"conv_layer_names returned {info.get('type')}; return a list of str")
    if info.get("length") != len(names):
        raise CheckFailed(f"conv_layer_names returned {info.get('length')} names, expected "
                          f"{len(expected)}")
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise CheckFailed(f"conv_layer_names returned non-str items ({bad[0]!r}); return the "
                          "names from model.named_modules()")
    if names == expected:
        return passed(f"all {len(expected)} Conv2d layer names, in order")
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    parts = [f"{len(names)} names, expected {len(expected)}"]
    if missing:
        parts.append(f"missing {_few(missing)}")
    if extra:
        parts.append(f"not Conv2d layers of the model: {_few(extra)}")
    if not missing and not extra:
        i = next(i for i, (a, b) in enumerate(zip(names, expected, strict=False)) if a != b)
        parts.append(f"order differs: position {i} is {names[i]!r}, expected {expected[i]!r}")
    hint = " (the downsample.0 convolutions count too)" if any(
        "downsample" in n for n in missing) else ""
    raise CheckFailed("; ".join(parts) + hint + "; keep every nn.Conv2d of "
                      "model.named_modules(), in order")


def _few(items: list[str], n: int = 4) -> str:
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


CHECKS = {
    "graph_png": check_graph_png,
    "conv_names": check_conv_names,
}
