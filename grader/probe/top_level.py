"""Run a handout-shaped submission's top-level code, offline, and describe what it made.

The handout asks for much of the lab as top-level code (load the model and labels,
predict its photo, render the graph, the filter grid, IG, NoiseTunnel, the comparison).
When an instructor asks for it (``lab3 grade --run-top-level``, ``pytest --impl X
--lab3-run-top-level``), the probing process (the sandboxed child in ``lab3 grade``) runs
that code once, top to bottom, as ``__main__``, with offline stand-ins for what the
handout downloads:

- ``requests`` (``get``, ``Session.request``, ...) and ``urllib.request.urlopen``: the
  handout's labels URL is answered with the label file in the handout's format
  (``{"0": ["n00000000", "tench"], ...}``, torchvision's names); an image URL (the
  handout's photo, any ``.jpg``/``.jpeg``/``.png`` URL, any ``images.*`` host) with a
  photo of the grader's choosing (the variant's); any other URL raises
  ``requests.ConnectionError`` saying that the grader is offline;
- ``plt.show()`` does nothing (the figures stay open, to be described); ``input()`` raises;
- the weights: ``resnet34(weights=IMAGENET1K_V1)`` already loads the grader's resolved
  weights from disk (:func:`grader.refdata.weights.activate`).

The run has a time budget (SIGALRM in the main thread); what the code defined before an
error or the budget is kept, and the error says where it stopped. Nothing here awards
points: :func:`evidence` turns the run into plain facts (globals by type and shape,
files written, figures), and :mod:`grader.probe.handout_shape` uses the run's ``model`` and
``labels`` for Task 1 where the submission defines no ``load_model``/``load_labels``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from grader.errors import OfflineError, RunTimeout

HANDOUT_LABELS_URL = ("https://s3.amazonaws.com/deep-learning-models/image-models/"
                      "imagenet_class_index.json")
HANDOUT_PHOTO_URL = "https://images.pexels.com/photos/20816519/pexels-photo-20816519.jpeg"
# Written by grader.submission.notebook.write_package beside the generated modules: the submission's
# code in order (notebook cells, or the script), magics removed. Not a module: never imported.
TOP_LEVEL_FILE = "top_level_source.txt"
RUN_SECONDS = 300.0
MAX_OUTPUT = 20_000
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclass
class TopLevelRun:
    """What running the top-level code left behind.

    Attributes:
        namespace: the code's globals after the run (also after an error: what it had
            defined by then).
        error: ``"NameError: ... (line 12)"`` when the code raised or ran out of time,
            else None.
        figures: the matplotlib figures open after the run.
        files: the files the code wrote in its working folder, relative paths.
        urls: the URLs the code asked for, each with what the stand-in answered.
        seconds: how long the run took.
        output: the start of what it printed (capped).
    """

    namespace: dict[str, Any]
    error: str | None
    figures: list[Any] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""


@functools.cache
def handout_labels_json() -> bytes:
    """The handout's label file, offline: 1000 entries ``{"i": [wnid, name]}``, torchvision's
    names with spaces as underscores (as the original file writes them)."""
    from torchvision import models

    categories = models.ResNet34_Weights.IMAGENET1K_V1.meta["categories"]
    return json.dumps({str(i): [f"n{i:08d}", name.replace(" ", "_")]
                       for i, name in enumerate(categories)}).encode()


def _is_image_url(url: str) -> bool:
    parsed = urlparse(url)
    return (parsed.path.lower().endswith(_IMAGE_SUFFIXES)
            or (parsed.hostname or "").startswith("images.") or url == HANDOUT_PHOTO_URL)


def answer(url: str, photo: bytes, labels: bytes) -> tuple[bytes, str]:
    """(body, content type) the stand-ins give for ``url``.

    Raises:
        OfflineError: a URL that is neither the handout's labels nor an image.
    """
    if url.split("?")[0] == HANDOUT_LABELS_URL or url.endswith("imagenet_class_index.json"):
        return labels, "application/json"
    if _is_image_url(url):
        return photo, "image/png"
    raise OfflineError(f"the grader runs offline and answers only the handout's labels and "
                       f"photo URLs, not {url[:120]}")


@contextlib.contextmanager
def offline_stand_ins(photo: bytes, labels: bytes, urls: list[str]) -> Iterator[None]:
    """Patch ``requests``, ``urllib.request.urlopen``, ``plt.show`` and ``input`` for the
    run (restored afterwards); ``urls`` collects what was asked."""
    import builtins
    import urllib.request

    import matplotlib.pyplot as plt

    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def respond(url: str) -> tuple[bytes, str]:
        try:
            body, kind = answer(url, photo, labels)
        except OfflineError:
            urls.append(f"{url[:200]} -> refused (offline)")
            raise
        urls.append(f"{url[:200]} -> {'labels' if kind == 'application/json' else 'photo'}")
        return body, kind

    try:
        import requests
    except ImportError:  # the dependency is declared; a broken environment still runs
        requests = None
    if requests is not None:
        def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            try:
                body, kind = respond(str(url))
            except OfflineError as exc:
                raise requests.ConnectionError(str(exc)) from None
            response = requests.Response()
            response.status_code = 200
            response._content = body
            response.headers["Content-Type"] = kind
            response.url = str(url)
            response.raw = io.BytesIO(body)
            response.encoding = "utf-8"
            return response

        patch(requests.sessions.Session, "request", request)

    def urlopen(url: Any, *args: Any, **kwargs: Any) -> Any:
        target = url.full_url if hasattr(url, "full_url") else str(url)
        body, _ = respond(target)
        return io.BytesIO(body)

    def no_input(*args: Any, **kwargs: Any) -> str:
        raise EOFError("the grader runs the code without a keyboard: input() is not available")

    patch(urllib.request, "urlopen", urlopen)
    patch(plt, "show", lambda *args, **kwargs: None)
    patch(builtins, "input", no_input)
    try:
        yield
    finally:
        for owner, name, value in reversed(patches):
            setattr(owner, name, value)


def offline_for(ctx: Any, urls: list[str]) -> contextlib.AbstractContextManager[None]:
    """:func:`offline_stand_ins` for a probe of ``ctx`` (its variant's photo): a function the
    submission wrote around the handout's downloads gets the offline answers too."""
    photo = (ctx.fixtures_dir / "images" / ctx.settings.photo).read_bytes()
    return offline_stand_ins(photo, handout_labels_json(), urls)


@contextlib.contextmanager
def _budget(seconds: float) -> Iterator[None]:
    """Raise :class:`RunTimeout` in the main thread after ``seconds`` (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise RunTimeout(f"stopped after its {seconds:g} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _CappedText(io.TextIOBase):
    def __init__(self, cap: int) -> None:
        self.cap, self.parts, self.size = cap, [], 0

    def write(self, text: str) -> int:
        if self.size < self.cap:
            self.parts.append(text[: self.cap - self.size])
            self.size += len(self.parts[-1])
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


def run_top_level(source: str, *, filename: str, workdir: Path, photo: bytes,
                  seconds: float = RUN_SECONDS) -> TopLevelRun:
    """Run ``source`` as ``__main__`` in ``workdir`` with the offline stand-ins.

    Returns:
        the :class:`TopLevelRun`; never raises for what the code does (its exception,
        ``SystemExit`` included, becomes ``error``).
    """
    import matplotlib.pyplot as plt

    workdir.mkdir(parents=True, exist_ok=True)
    before = set(plt.get_fignums())
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename,
                                 "__builtins__": __builtins__,
                                 "display": lambda *args, **kwargs: None}
    urls: list[str] = []
    output = _CappedText(MAX_OUTPUT)
    error = None
    start = time.monotonic()
    cwd = os.getcwd()
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        return TopLevelRun(namespace, f"{type(exc).__name__}: {exc}")
    try:
        os.chdir(workdir)
        with offline_stand_ins(photo, handout_labels_json(), urls), \
                contextlib.redirect_stdout(output), contextlib.redirect_stderr(output), \
                _budget(seconds):
            exec(code, namespace)  # the point: the submission's own code, in the sandbox
    except BaseException as exc:  # the submission's failure is data, SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        error = f"{type(exc).__name__}: {exc}"[:500] + _where(exc, filename)
    finally:
        os.chdir(cwd)
    figures = [plt.figure(n) for n in plt.get_fignums() if n not in before]
    files = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())[:50]
    return TopLevelRun(namespace, error, figures, files, urls, time.monotonic() - start,
                       output.getvalue())


def _where(exc: BaseException, filename: str) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return f" (line {frames[-1].lineno})" if frames else ""


def evidence(run: TopLevelRun, *, limit: int = 40) -> dict[str, Any]:
    """Plain facts about ``run``: per public global (modules, functions and classes left
    out) its type and, for tensors and arrays, shape and dtype; the files, figures (axes
    and image axes per figure), URLs and error. Capped; never raises."""
    import numpy as np
    import torch

    names: dict[str, Any] = {}
    for name, value in list(run.namespace.items()):
        if name.startswith("_") or len(names) >= limit or (callable(value) and not isinstance(
                value, torch.nn.Module)) or type(value).__name__ == "module":
            continue
        info: dict[str, Any] = {"type": type(value).__name__}
        if isinstance(value, torch.Tensor | np.ndarray):
            info["shape"] = [int(d) for d in value.shape]
            info["dtype"] = str(value.dtype)
        elif isinstance(value, dict | list | tuple):
            info["length"] = len(value)
        elif isinstance(value, str | int | float | bool):
            info["value"] = value if not isinstance(value, str) else value[:100]
        names[name[:60]] = info
    figures = []
    for fig in run.figures[:20]:
        axes = fig.get_axes()
        figures.append({"axes": len(axes), "image_axes": sum(bool(ax.get_images()) for ax in axes),
                        "titles": [ax.get_title()[:60] for ax in axes[:12]]})
    return {"error": run.error, "seconds": round(run.seconds, 1), "globals": names,
            "files": run.files, "figures": figures, "urls": run.urls[:20]}


def read_source(root: Path) -> str | None:
    """The top-level code staged beside a notebook's or script's modules, or None."""
    path = root / TOP_LEVEL_FILE
    if not path.is_file() or path.is_symlink():
        return None
    return path.read_bytes()[:4_000_000].decode("utf-8", errors="replace")


__all__ = ["HANDOUT_LABELS_URL", "HANDOUT_PHOTO_URL", "TOP_LEVEL_FILE", "OfflineError",
           "TopLevelRun", "answer", "evidence", "handout_labels_json", "offline_stand_ins",
           "read_source", "run_top_level"]
