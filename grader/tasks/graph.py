"""Task 4: the model graph and its convolution layer names.

Probe
    ``render_model_graph(model, ctx.scratch / "graph", image_size=S)`` once, with
    the small probe size ``S`` (the autograd graph has the same nodes at any input
    size) and, as ``model``, the trusted ResNet-34 cut to the blocks the variant
    keeps (:func:`kept_blocks`: block 0 of each stage, with the three downsample
    convolutions, plus one more block, drawn from the variant's stream, in two of
    the stages; each kept block keeps its name, e.g. ``layer3.4``). While the
    function runs, graphviz's ``render``, ``pipe`` and ``save`` are wrapped
    (:func:`capturing_sources`) so the probe keeps the DOT source of the graph the
    student drew; without a capture, a returned ``.dot`` file's text. The source
    goes into the record as bytes; the checks parse it in the grader's process
    (:func:`source_facts`: node count, names of the parameter nodes). Recorded
    besides: the returned path (relative to the scratch folder), whether that file
    exists, its suffix and size, and for a PNG (by its signature, not its name)
    the facts Pillow reads: format, width, height, mode, the pixel standard
    deviation of a grayscale copy downsampled to at most 1024 px, and a thumbnail
    (at most 256 px) for feedback pages. Most of this task's cost is Graphviz
    rasterizing the PNG: the full ResNet-34 graph is a 3941x9923 PNG, the cut one
    about 2500x4200. ``conv_layer_names(model)`` is called on a fresh full model
    and on the variant's cut.

Parameters probed, and why each value separates right from wrong
    - ``model`` (render_model_graph): the variant's cut; its parameter names say
      which blocks were kept, so a graph of another model (the student's own
      ResNet-34, the practice cut, any big PNG with no graph behind it) does not
      have the reference's parameter names or node count for the same model;
    - ``model`` (conv_layer_names): the full ResNet-34 (36 names) and the cut
      (16 names, with variant block numbers): a typed-in list fails the cut;
    - ``out_path``: the scratch folder; a file written elsewhere earns nothing.

Why this catches the mistakes (tests/harness/tasks/test_graph_checks.py):
    - a blank, tiny or missing PNG: the file facts (size below 200x200, pixel std
      ~0) name the problem; they are messages, the points need the source;
    - ``make_dot`` without ``params``: the source names no parameters;
    - a ``conv_layer_names`` that misses the 3 downsample convolutions (or adds
      other layers): compared name by name with the reference's.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PosixPath, WindowsPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from grader.check.checking import CheckContext, CheckFailed, Outcome, partial, passed, require_call
from grader.probe.probing import ProbeContext, call, new_record
from grader.probe.records import Record, plain, type_name
from grader.settings import ProbeSettings

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
MAX_SOURCES = 8
STAGES = ("layer1", "layer2", "layer3", "layer4")
STAGE_BLOCKS = (3, 4, 6, 3)  # ResNet-34's blocks per stage


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("graph")
    record = new_record("graph")
    target = ctx.scratch / "graph"
    for stale in (target.with_suffix(".png"), target.with_suffix(".dot"), target):
        if stale.is_file():
            stale.unlink()
    keep = kept_blocks(ctx.settings)
    record.data["kept_blocks"] = keep
    with capturing_sources() as sources:
        out = call(record, "render_model_graph", mod.render_model_graph,
                   graph_model(ctx, keep), target, image_size=ctx.settings.image_size)
    record.data["graph"] = _graph_info(record, out, ctx.scratch)
    default = target.with_suffix(".png")
    record.data["default_png_exists"] = default.is_file()
    if "path" not in record.data["graph"] and default.is_file():
        # Wrong return value but the PNG was written: its facts still earn part of the points.
        record.data["graph_default"] = _graph_info(record, default, ctx.scratch)
    _record_sources(record, sources, record.data["graph"], ctx.scratch)

    for key, model in (("conv_names", ctx.fresh_model()),
                       ("conv_names_cut", graph_model(ctx, keep))):
        names = call(record, key, mod.conv_layer_names, model)
        info: dict[str, Any] = {"type": type_name(names)}
        if type(names) in (list, tuple):
            items = list(names)
            info["length"] = len(items)
            info["names"] = [plain(n) for n in items[:MAX_NAMES]]
        record.data[key] = info
    return record


def kept_blocks(settings: ProbeSettings) -> dict[str, list[int]]:
    """Which residual blocks of each stage the variant's graph model keeps.

    Block 0 of every stage (it holds the stage's downsample, so the channels still fit),
    plus one more block, drawn from the variant's stream, in two of the four stages: the
    parameter names (``layer3.4.conv1.weight``) and the node count of the graph say which
    model was drawn, and the graph stays a third of the full ResNet-34's.
    """
    rng = settings.rng("graph")
    extra = rng.sample(range(len(STAGE_BLOCKS)), 2)
    return {f"layer{s + 1}": [0] + ([rng.randrange(1, n)] if s in extra else [])
            for s, n in enumerate(STAGE_BLOCKS)}


def graph_model(ctx: ProbeContext, keep: dict[str, list[int]] | None = None) -> torch.nn.Module:
    """A fresh trusted ResNet-34 keeping only the blocks ``keep`` names (eval mode).

    Still a torchvision ``ResNet`` with the trusted weights and the usual names
    (``conv1``, ``layer2.0.downsample.0``, ``layer3.4.conv2``, ``fc``): each kept block keeps
    its index. Without ``keep``, the first block of each stage.
    """
    keep = keep or {stage: [0] for stage in STAGES}
    model = ctx.fresh_model()
    for stage in STAGES:
        blocks = getattr(model, stage)
        setattr(model, stage, torch.nn.Sequential(OrderedDict(
            (str(i), blocks[i]) for i in keep[stage])))
    return model


@contextmanager
def capturing_sources() -> Iterator[list[tuple[str, str]]]:
    """Note the DOT source of every graph graphviz renders, pipes or saves inside the block.

    Yields a list that receives ``(method, source)`` per call (``source`` is the graph's
    own text, read before graphviz runs); the methods are restored afterwards.
    """
    import graphviz.piping
    import graphviz.rendering
    import graphviz.saving

    sources: list[tuple[str, str]] = []
    patched = [(graphviz.rendering.Render, "render"), (graphviz.piping.Pipe, "pipe"),
               (graphviz.saving.Save, "save")]
    originals = [(cls, name, cls.__dict__[name]) for cls, name in patched]

    def wrap(name: str, original: Any) -> Any:
        def capture(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                text = self.source
                if type(text) is str and len(sources) < MAX_SOURCES:
                    sources.append((name, str.__str__(text)[:MAX_DOT_BYTES]))
            except Exception:  # noqa: BLE001 - a graph that cannot say its source is no fact
                pass
            return original(self, *args, **kwargs)

        capture.__wrapped__ = original  # type: ignore[attr-defined]
        return capture

    for cls, name, original in originals:
        setattr(cls, name, wrap(name, original))
    try:
        yield sources
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def _record_sources(record: Record, sources: list[tuple[str, str]], graph: dict[str, Any],
                    scratch: Path) -> None:
    """Store the graph's DOT source as bytes: the last one graphviz rendered, piped or saved
    during the call, else the returned ``.dot`` file's text. The checks parse it."""
    text = sources[-1][1] if sources else None
    how = sources[-1][0] if sources else None
    if text is None and graph.get("kind") == "dot" and not graph.get("outside_scratch"):
        try:
            text = (scratch / graph["path"]).read_bytes()[:MAX_DOT_BYTES].decode(
                "utf-8", errors="replace")
            how = "file"
        except (OSError, KeyError, TypeError):
            text = None
    record.data["graph_source"] = {"captured": len(sources), "how": how}
    if text:
        record.tensors["graph_source"] = torch.frombuffer(bytearray(text.encode("utf-8")),
                                                          dtype=torch.uint8)


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


_NODE = re.compile(r"^\s*(\w+)\s*\[", re.M)
_PARAM = re.compile(r'\[label="([^"\n]+)\n \([^)"]*\)"[^\]]*fillcolor=lightblue', re.M)


def source_facts(record: Record) -> dict[str, Any] | None:
    """Node count and parameter names of the DOT source recorded in ``record`` (parsed
    here, in the grader's process), or None when no source was recorded.

    torchviz writes one ``<id> [label=...]`` statement per node and labels each parameter
    node (light blue) ``"<name>\\n (<shape>)"`` when ``make_dot`` is given ``params``.
    """
    raw = record.tensors.get("graph_source")
    if type(raw) is not torch.Tensor or raw.dtype != torch.uint8 or raw.dim() != 1:
        return None
    text = bytes(raw[:MAX_DOT_BYTES].tolist()).decode("utf-8", errors="replace")
    if "digraph" not in text[:200]:
        return None
    return {"nodes": len(set(_NODE.findall(text)) - {"graph", "node", "edge"}),
            "params": sorted(set(_PARAM.findall(text)))}


def _source_problem(student: Record, reference: Record) -> tuple[str | None, str]:
    """(problem, summary): whether the student's graph is of the model it was given."""
    ref = source_facts(reference)
    if ref is None or not ref["params"]:
        raise CheckFailed("no reference graph source recorded (grader set-up problem)")
    got = source_facts(student)
    if got is None:
        return ("the grader saw no graph source from render_model_graph: draw "
                "make_dot(model(x), params=dict(model.named_parameters())) of the model you "
                "are given and save it with dot.render(out_path, format='png')"), ""
    params, want = set(got["params"]), set(ref["params"])
    if not params:
        return ("the graph names no parameters: pass params=dict(model.named_parameters()) "
                "to make_dot"), ""
    if params != want:
        missing, extra = sorted(want - params), sorted(params - want)
        parts = [f"the graph's parameters are not those of the model it was given "
                 f"({len(params)} named, the model has {len(want)})"]
        if missing:
            parts.append(f"missing {_few(missing)}")
        if extra:
            parts.append(f"not in the model: {_few(extra)}")
        return "; ".join(parts) + "; draw the `model` argument, not a model of your own", ""
    nodes, ref_nodes = got["nodes"], ref["nodes"]
    if abs(nodes - ref_nodes) > DOT_NODE_TOLERANCE * ref_nodes:
        return (f"the graph has {nodes} nodes, the reference's graph of the same model "
                f"{ref_nodes}; draw make_dot of the model's output"), ""
    return None, f"{len(params)} parameters and {nodes} nodes, as the reference's graph"


def check_graph_png(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    """The file's facts (a readable, non-blank PNG at the returned path) say what is wrong;
    the points need the graph's source to be of the model the probe gave."""
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
        what = f"a {info.get('width')}x{info.get('height')} PNG of the graph"
    elif kind == "dot" and ref.get("kind") == "dot":
        what = "Graphviz is not installed here, so a .dot is accepted"
    elif kind == "dot":
        raise CheckFailed("render_model_graph wrote .dot source, not a PNG; install Graphviz "
                          "(apt-get install graphviz) and render with format='png'")
    else:
        raise CheckFailed(f"{info.get('path')!r} is not a PNG file; render with format='png'")
    problem, summary = _source_problem(student, reference)
    if problem:
        raise CheckFailed(f"{what}, but {problem}")
    return partial(fraction, f"{what}: {summary}{note}")


def check_conv_names(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    """All of the names, in order, for the full ResNet-34 and for the variant's cut of it."""
    counts = []
    for key, what in (("conv_names", "the ResNet-34"), ("conv_names_cut", "the cut ResNet-34")):
        counts.append(_names_match(student, reference, key, what))
    return passed(f"all Conv2d layer names, in order: {counts[0]} of the ResNet-34, "
                  f"{counts[1]} of a model keeping some of its blocks")


def _names_match(student: Record, reference: Record, key: str, what: str) -> int:
    """The number of names when ``conv_layer_names``'s list for ``key`` is the reference's;
    raises CheckFailed saying what differs otherwise."""
    require_call(student, key, POINTER_NAMES)
    expected = (reference.data.get(key) or {}).get("names")
    if not isinstance(expected, list):
        raise CheckFailed("no reference conv names recorded (grader set-up problem)")
    info = student.data.get(key) or {}
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
        return len(names)
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    parts = [f"for {what}: {len(names)} names, expected {len(expected)}"]
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
