"""Task 5: filter visualisation by activation maximisation.

Probe (every value from the variant: ``settings.rng("filters")``, see :func:`cases`)
    ``visualize_filter`` is called twice, each time on a fresh copy of the trusted model,
    with the handout's positional ``(model, layer, filter_index, iterations, lr)`` and the
    template's ``image_size`` and ``seed`` keywords. The two cases differ in every
    argument: an early layer (``conv1`` or a ``layer1`` convolution, passed by NAME) and
    a later one (a ``layer2``/``layer3`` convolution, passed as the MODULE of that model
    copy); filter numbers drawn from 1 to C-2; 4-6 and 7-9 iterations; learning rates
    0.04-0.07 and 0.14-0.25 (never the default 0.1); two seeds of their own; sides 48 or
    56 and 64 or 72 px. The probe never seeds the global generator with the case's seed:
    it seeds it with a decoy (and restores it afterwards), so the starting noise tells
    whether ``seed`` was used. The returned image is min-max normalised for display, so
    the optimised image itself is never returned; instead the probe registers its own
    forward pre-hook for the stem convolution (every forward pass, even one cut short at
    the target layer, starts there; a global module hook filtered to ``Conv2d(3, ...)``,
    so a ``deepcopy`` of the model is seen too) that keeps the first input, the first
    input that differs from its predecessor (after one optimisation step) and the last
    input, counts the calls and the changes of input. The hook is removed right after
    the call, before :func:`grader.probe.probing.model_facts`, so the facts show only hooks the
    student left.

    ``plot_filter_grid`` is then called on a fresh model with three drawn layers (early,
    ``layer2``/``layer3``, ``layer4``) x three drawn filter numbers (10-63, so no layer
    name's digit passes for one), 2 iterations, a drawn lr of 0.5-1.0 (large, so the
    nine cells differ well beyond rounding), 32 px and a drawn seed; the figure goes
    through :func:`grader.probe.probing.figure_facts`, which keeps each axes' image data. Then
    the student's ``visualize_filter`` is called once per cell with the grid's arguments
    (the layer as a module), recording its image and its first and last inputs.

Checks (each case is half of a check's points; layer, filter and settings come from the
reference's record, i.e. the grader's own table; activations are recomputed here with
the trusted model from the recorded inputs)
    - ``activation_rises``: the target filter's mean activation for the last input
      exceeds the one for the first input by at least a quarter of the reference's rise.
      A wrong sign of the loss or a missing ``optimizer.step()`` gives <= 0.
    - ``activation_level``: the last input's activation reaches the reference's start plus
      0.8 x the reference's gain. Optimising another filter (``filter_index`` ignored or
      shifted) or another layer (a hard-coded one) barely moves the target filter.
    - ``seed``: the first input is ``torch.randn(1, 3, S, S)`` after
      ``torch.manual_seed(seed)`` (the grader draws it itself). Ignoring ``seed`` gives
      the decoy's noise, hard-coding one gives another seed's, ignoring ``image_size``
      another shape.
    - ``iterations``: the number of distinct images fed to the model is the reference's
      (one per Adam step) or one more (a final measurement pass). Hard-coding the count
      (e.g. 50) or an off-by-one loop is seen, whatever the activation reached.
    - ``lr``: the first Adam step moves each pixel by about ``lr``; its 90th percentile
      must be within 0.8-1.25 x the reference's. The two drawn rates are 2-6x apart and
      both away from 0.1, so a hard-coded rate fails at least one case.
    - ``output_format``, ``hooks_removed``, ``model_untouched`` pay per case only when
      that case's ``activation_level`` passes: an (S, S, 3) float image in [0, 1] (the raw
      image or a hard-coded size fails), no hook left on the model, and weights,
      BatchNorm statistics and eval mode unchanged (gradients left in ``.grad`` are
      allowed: the handout's own ``loss.backward()`` leaves them).
    - ``grid``: per cell, the data a figure axes shows (``AxesImage.get_array()``, uint8
      rescaled) equals the student's own ``visualize_filter`` image for that layer and
      filter, and that call starts from the grid seed's noise and its inputs raise that
      filter (recomputed, at least a quarter of the reference's rise): images replayed
      from another variant's records or drawn without the grid's seed earn nothing.
      Cells are matched by content, so the layout is free; random
      images, a grid that ignores ``seed``/``lr``/``iterations`` or draws other filters
      earn nothing for those cells. Titles earn nothing but are the handout's ("filter
      number in subplot title"): when a matched cell's title lacks its filter number
      the check pays half.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from grader.check.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_figure,
)
from grader.probe.handout_shape import HANDOUT_FILTER_SIZE, handout_visualize_filter
from grader.probe.probing import (
    ProbeContext,
    call,
    closing_figures,
    figure_facts,
    mean_activation,
    model_facts,
    new_record,
    put_tensor,
)
from grader.probe.records import Record
from grader.settings import ProbeSettings
from grader.tasks.model import trusted_digest

POINTER = "Task 5: visualize_filter in filters.py"
POINTER_GRID = "Task 5: plot_filter_grid in filters.py"

# Layers the two cases draw from (ResNet-34's convolutions, no 1x1 downsample): an early
# one (passed by name) and a later one (passed as a module). Channels per stage below.
EARLY_LAYERS: tuple[str, ...] = (
    "conv1", *(f"layer1.{b}.conv{c}" for b in range(3) for c in (1, 2)))
LATER_LAYERS: tuple[str, ...] = tuple(
    f"layer{stage}.{b}.conv{c}" for stage, blocks in ((2, 4), (3, 6))
    for b in range(blocks) for c in (1, 2))
LATE_LAYERS: tuple[str, ...] = tuple(f"layer4.{b}.conv{c}" for b in range(3) for c in (1, 2))
CHANNELS = {"conv1": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
# Grid: 2 iterations on 32x32 with a large lr: the nine cells differ far beyond rounding.
GRID_ITERATIONS = 2
GRID_IMAGE_SIZE = 32
# Largest input the conv1 hook keeps (a 224x224 image is 150k values).
MAX_INPUT_ELEMENTS = 3 * 512 * 512

# A student's rise must reach this fraction of the reference's rise from the same
# start (the reference rises by many times this margin; a wrong sign or a missing
# step gives <= 0).
MIN_RISE_FRACTION = 0.25
# activation_level: last - first must reach this fraction of the reference's gain.
LEVEL_FRACTION = 0.8
# seed: the first input equals the seeded noise to within this (float rounding only).
SEED_ATOL = 1e-5
# lr: the first step's 90th percentile over the reference's, allowed range.
LR_RATIO = (0.8, 1.25)
# grid: a cell shows an image when its data (0-1 scale) is within CELL_TOLERANCE of it
# at all but CELL_MISMATCH of the values (uint8 rounding is 1/255).
CELL_TOLERANCE = 0.01
CELL_MISMATCH = 0.005


def _channels(layer: str) -> int:
    return CHANNELS[layer.split(".")[0]]


def cases(settings: ProbeSettings) -> list[dict[str, Any]]:
    """The two ``visualize_filter`` calls of ``settings``' variant (drawn from its stream).

    Each: ``key``, ``layer``, ``filter``, ``passed_as`` (``"name"`` or ``"module"``),
    ``iterations``, ``lr``, ``seed``, ``image_size`` and ``decoy`` (the seed of the global
    generator during the call, never the case's).
    """
    rng = settings.rng("filters")
    out = []
    for i, (layers, passed_as, iterations, lr, sizes) in enumerate((
            (EARLY_LAYERS, "name", (4, 6), (0.04, 0.07), (48, 56)),
            (LATER_LAYERS, "module", (7, 9), (0.14, 0.25), (64, 72)))):
        layer = rng.choice(layers)
        seed, decoy = rng.sample(range(1000, 2**31), 2)
        out.append({
            "key": f"case{i}", "layer": layer, "passed_as": passed_as,
            "filter": rng.randrange(1, _channels(layer) - 1),
            "iterations": rng.randint(*iterations),
            "lr": round(rng.uniform(*lr), 3),
            "seed": seed, "decoy": decoy,
            "image_size": rng.choice(sizes),
        })
    return out


def grid_spec(settings: ProbeSettings) -> dict[str, Any]:
    """The ``plot_filter_grid`` call of ``settings``' variant: layers, filters, lr, seed, ..."""
    rng = settings.rng("filters:grid")
    seed, decoy = rng.sample(range(1000, 2**31), 2)
    return {
        "layers": [rng.choice(EARLY_LAYERS), rng.choice(LATER_LAYERS), rng.choice(LATE_LAYERS)],
        "filters": rng.sample(range(10, 64), 3),
        "iterations": GRID_ITERATIONS, "lr": round(rng.uniform(0.5, 1.0), 3),
        "image_size": GRID_IMAGE_SIZE, "seed": seed, "decoy": decoy,
    }


def seeded_noise(seed: int, size: int) -> torch.Tensor:
    """``torch.randn(1, 3, size, size)`` right after ``torch.manual_seed(seed)`` (CPU)."""
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("filters")
    record = new_record("filters")
    infos: dict[str, Any] = {}
    accepts = filter_keywords(getattr(mod, "visualize_filter", None))
    handout = "image_size" not in accepts
    record.data["signature"] = "handout" if handout else "template"
    if accepts != {"image_size", "seed"}:
        record.data["adapted"] = [
            "visualize_filter has no `" + "` or `".join(sorted({"image_size", "seed"} - accepts))
            + "` parameter (the handout's signature has neither): it was called with the "
            "layer module "
            "(or, if that raised, its name) after torch.manual_seed(seed)"
            + (f", and judged at the handout's {HANDOUT_FILTER_SIZE} px" if handout else "")]
    for spec in cases(ctx.settings):
        key = spec["key"]
        if handout:
            spec = dict(spec, image_size=HANDOUT_FILTER_SIZE, passed_as="module")
        model = ctx.fresh_model()
        target = spec["layer"] if spec["passed_as"] == "name" else model.get_submodule(
            spec["layer"])
        watcher = _InputWatcher(model)
        try:
            with torch.random.fork_rng(devices=[]):
                if accepts == {"image_size", "seed"}:
                    torch.manual_seed(spec["decoy"])
                    image = call(record, key, mod.visualize_filter, model, target,
                                 spec["filter"], spec["iterations"], spec["lr"],
                                 image_size=spec["image_size"], seed=spec["seed"])
                else:  # its noise comes from the global generator: the probe seeds it
                    image = call(record, key, _handout_call(mod.visualize_filter, watcher),
                                 model, spec["layer"], spec["seed"], spec["filter"],
                                 spec["iterations"], spec["lr"],
                                 **({"image_size": spec["image_size"]} if not handout else {}))
        finally:
            watcher.remove()
        info = dict(spec, forward_calls=watcher.calls,
                    forward_calls_on_given_model=watcher.calls_on_given,
                    distinct_inputs=watcher.distinct, input_shape=watcher.shape)
        watcher.store(record, key)
        put_tensor(record, f"{key}_image", image)
        info["model"] = model_facts(model)
        infos[key] = info
        del model, image
    record.data["cases"] = infos

    grid = grid_spec(ctx.settings)
    record.data["grid"] = grid
    model = ctx.fresh_model()
    with closing_figures():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(grid["decoy"])
            fig = call(record, "grid", mod.plot_filter_grid, model, list(grid["layers"]),
                       list(grid["filters"]), iterations=grid["iterations"], lr=grid["lr"],
                       image_size=grid["image_size"], seed=grid["seed"])
        if record.data["calls"]["grid"]["ok"]:
            figure_facts(record, "grid", fig)
        del fig
    if record.data["calls"]["grid"]["ok"] and not handout:
        # What the student's own visualize_filter gives for each cell, and its inputs.
        model = ctx.fresh_model()
        for i, (layer, number) in enumerate(_grid_cells(grid)):
            key = f"cell{i}"
            watcher = _InputWatcher(model)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(grid["decoy"])
                    image = call(record, key, mod.visualize_filter, model,
                                 model.get_submodule(layer), number, grid["iterations"],
                                 grid["lr"], image_size=grid["image_size"], seed=grid["seed"])
            finally:
                watcher.remove()
            watcher.store(record, key)
            put_tensor(record, f"{key}_image", image)
    return record


def filter_keywords(function: Any) -> set[str]:
    """Which of the template's keywords ``image_size`` and ``seed`` ``visualize_filter``
    accepts (both with ``**kwargs``; neither for the handout's signature)."""
    if handout_visualize_filter(function):
        return set()
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {"image_size", "seed"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return {"image_size", "seed"}
    return {"image_size", "seed"} & set(parameters)


def _handout_call(function: Any, watcher: _InputWatcher):
    """Call ``function`` the handout's way: the layer as a module of ``model`` after
    ``torch.manual_seed(seed)``; if that raises (a student who, reading the handout's
    ``layer: str``, looks the layer up by name), once more with the name, from the same
    seed and with the watcher cleared."""
    def run(model: torch.nn.Module, layer: str, seed: int, *args: Any, **kwargs: Any) -> Any:
        torch.manual_seed(seed)
        try:
            return function(model, model.get_submodule(layer), *args, **kwargs)
        except Exception as first:  # noqa: BLE001 - the other reading of `layer` is tried next
            watcher.reset()
            torch.manual_seed(seed)
            try:
                return function(model, layer, *args, **kwargs)
            except Exception:  # noqa: BLE001 - the module's error is the one to report
                raise first from None

    run.__name__ = getattr(function, "__name__", "visualize_filter")
    return run


def _grid_cells(grid: dict[str, Any]) -> list[tuple[str, int]]:
    return [(layer, number) for layer in grid["layers"] for number in grid["filters"]]


class _InputWatcher:
    """The probe's own forward pre-hook on the stem convolution: the inputs fed to the model.

    Registered for every module (``register_module_forward_pre_hook``) and filtered to
    ``Conv2d`` layers with 3 input channels, ResNet-34's ``conv1`` and nothing else, so
    it also sees a student who optimises through ``copy.deepcopy(model)`` (the image
    is what is graded, not which copy of the network it went through). Keeps row 0 of
    the first input, of the first input that differs from its predecessor (``step``:
    after one optimisation step) and of the last; counts calls and distinct inputs
    (an input that differs from its predecessor starts a new one).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.calls_on_given = 0
        self.distinct = 0
        self.first: torch.Tensor | None = None
        self.step: torch.Tensor | None = None
        self.last: torch.Tensor | None = None
        self.shape: list[int] | None = None
        self._stem = model.conv1
        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if type(module) is not torch.nn.Conv2d or module.in_channels != 3:
            return
        self.calls += 1
        self.calls_on_given += module is self._stem
        x = args[0] if args else None
        if (type(x) is not torch.Tensor or x.is_meta or x.is_nested
                or x.layout is not torch.strided):
            return  # the convolution itself will reject it; nothing the grader can keep
        self.shape = [int(d) for d in x.shape]
        if x.dim() == 4 and x.shape[0] >= 1 and x[:1].numel() <= MAX_INPUT_ELEMENTS:
            # Row 0 only: visualize_filter optimises a single image.
            copy = x[:1].detach().to("cpu", torch.float32, copy=True).contiguous()
            if self.last is None or copy.shape != self.last.shape or not torch.equal(
                    copy, self.last):
                self.distinct += 1
                if self.first is None:
                    self.first = copy
                elif self.step is None:
                    self.step = copy
            self.last = copy

    def reset(self) -> None:
        """Forget what was seen (a call retried from the start)."""
        self.calls = self.calls_on_given = self.distinct = 0
        self.first = self.step = self.last = None
        self.shape = None

    def store(self, record: Record, key: str) -> None:
        stored: list[torch.Tensor] = []
        for which in ("first", "step", "last"):
            tensor = getattr(self, which)
            if tensor is not None:
                # The same input can be first/step and last: safetensors refuses to save
                # two names sharing memory, so each name gets its own copy.
                if any(tensor is t for t in stored):
                    tensor = tensor.clone()
                stored.append(tensor)
                record.tensors[f"{key}_{which}"] = tensor

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- checks


def _as_judged(student: Record, reference: Record, ctx: CheckContext) -> Record:
    """The reference to judge ``student`` against: the reference's own record, or, for a
    ``visualize_filter`` with the handout's signature (which always works at 224 px), the
    same cases at 224 px, computed here by the reference's own optimisation (trusted code,
    the grader's process) from the same seeds, layers, filters, iterations and rates."""
    if student.data.get("signature") != "handout":
        return reference
    cases = {key: dict(spec, image_size=HANDOUT_FILTER_SIZE, passed_as="module")
             for key, spec in reference.data["cases"].items()}
    tensors = dict(reference.tensors)
    for key, spec in cases.items():
        tensors.update({f"{key}_{which}": tensor for which, tensor in
                        _handout_reference_inputs(ctx, spec).items()})
    return Record(task=reference.task, data={**reference.data, "cases": cases}, tensors=tensors)


_HANDOUT_REFERENCE: dict[tuple[Any, ...], dict[str, torch.Tensor]] = {}


def _handout_reference_inputs(ctx: CheckContext, spec: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The first, second and last image the reference feeds the model in case ``spec`` at
    224 px (cached per trusted model and case: every check of a submission asks)."""
    from reference.filters import maximize_activation

    model = ctx.trusted_model()
    size, seed = HANDOUT_FILTER_SIZE, spec["seed"]
    key = (id(model), spec["layer"], spec["filter"], spec["iterations"], spec["lr"], seed)
    if key not in _HANDOUT_REFERENCE:
        def after(steps: int) -> torch.Tensor:
            image, _ = maximize_activation(model, spec["layer"], spec["filter"], steps,
                                           spec["lr"], image_size=size, seed=seed)
            return image.detach().to("cpu", torch.float32).contiguous()

        # The last image fed is the one before the last step (each step follows a forward).
        _HANDOUT_REFERENCE[key] = {"first": seeded_noise(seed, size), "step": after(1),
                                   "last": after(spec["iterations"] - 1)}
    return _HANDOUT_REFERENCE[key]


def _spec(reference: Record, key: str) -> dict[str, Any]:
    """The grader's own settings of case ``key``: from the reference's record, never the
    student's."""
    return reference.data["cases"][key]


def _case(record: Record, key: str) -> dict[str, Any]:
    infos = record.data.get("cases")
    info = infos.get(key) if isinstance(infos, dict) else None
    if not isinstance(info, dict):
        raise CheckFailed(f"{POINTER}: the grader recorded nothing for {key}")
    return info


def _keys(reference: Record) -> list[str]:
    return sorted(reference.data["cases"])


def _describe(spec: dict[str, Any]) -> str:
    layer = spec["layer"]
    arg = repr(layer) if spec["passed_as"] == "name" else f"model.get_submodule({layer!r})"
    return (f"visualize_filter(model, {arg}, {spec['filter']}, {spec['iterations']}, "
            f"{spec['lr']}, image_size={spec['image_size']}, seed={spec['seed']})")


def _inputs(record: Record, key: str, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first and last input the model saw in call ``key``, validated."""
    try:
        require_call(record, key, POINTER)
    except CheckFailed as exc:
        raise CheckFailed(f"{what}: {str(exc).removeprefix(POINTER + ': ')}") from None
    info = _case(record, key) if key.startswith("case") else {}
    first = record.tensors.get(f"{key}_first")
    last = record.tensors.get(f"{key}_last")
    if first is None or last is None:
        if key.startswith("case") and info.get("forward_calls"):
            raise CheckFailed(
                f"{what} fed the model an input of shape {info.get('input_shape')}; feed it "
                "one image shaped (1, 3, image_size, image_size)")
        raise CheckFailed(
            f"{what} never ran the model; optimise the image through the `model` "
            "argument: model(image) with a forward hook on the layer")
    if first.dim() != 4 or first.shape[1] != 3 or not torch.isfinite(last).all():
        raise CheckFailed(f"{what}: the image fed to the model is not a finite (1, 3, H, W) "
                          "tensor")
    return first, last


def _activations(record: Record, key: str, layer: str, index: int, what: str,
                 ctx: CheckContext) -> tuple[float, float]:
    """Target filter's mean activation for the first and the last input the model saw."""
    first, last = _inputs(record, key, what)
    model = ctx.trusted_model()
    start = float(mean_activation(model, layer, index, first)[0])
    end = float(mean_activation(model, layer, index, last)[0])
    return start, end


def _per_case(student: Record, reference: Record, judge, advice: str) -> Outcome:
    """Average ``judge(key, spec, what)`` -> (score, message) over the cases.

    The message lists each failing case once; ``advice`` follows only when a case was
    judged (a call that raised already says what to fix).
    """
    scores, messages, judged_failure = [], [], False
    for key in _keys(reference):
        spec = _spec(reference, key)
        what = _describe(spec)
        try:
            score, message = judge(key, spec, what)
        except CheckFailed as exc:
            scores.append(0.0)
            messages.append((0.0, str(exc)))
            continue
        judged_failure |= score < 1.0
        scores.append(score)
        messages.append((score, message))
    fraction = sum(scores) / len(scores)
    failing = [m for s, m in messages if s < 1.0]
    if not failing:
        return passed("; ".join(m for _, m in messages))
    return partial(fraction, "; ".join(failing) + (f": {advice}" if judged_failure else ""))


def _both(student: Record, reference: Record, key: str, spec: dict[str, Any], what: str,
          ctx: CheckContext) -> tuple[tuple[float, float], tuple[float, float]]:
    ref = _activations(reference, key, spec["layer"], spec["filter"], "the reference", ctx)
    got = _activations(student, key, spec["layer"], spec["filter"], what, ctx)
    return got, ref


def _rises(got: tuple[float, float], ref: tuple[float, float]) -> bool:
    rise = got[1] - got[0]
    return rise > 0 and rise >= MIN_RISE_FRACTION * (ref[1] - ref[0])


def _level_reached(got: tuple[float, float], ref: tuple[float, float]) -> bool:
    # Measured from the reference's start: same seed, same starting noise.
    return got[1] >= ref[0] + LEVEL_FRACTION * (ref[1] - ref[0])


def check_activation_rises(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def judge(key, spec, what):
        got, ref = _both(student, reference, key, spec, what, ctx)
        if _rises(got, ref):
            return 1.0, f"{what}: activation rose from {got[0]:.3g} to {got[1]:.3g}"
        return 0.0, (f"{what}: activation went from {got[0]:.3g} to {got[1]:.3g} (the "
                     f"reference: {ref[0]:.3g} to {ref[1]:.3g})")

    return _per_case(student, reference, judge, (
        "the loss must be -mean(activation[0, filter_index]) and you must call "
        "optimizer.step() on the image each iteration"))


def check_activation_level(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def judge(key, spec, what):
        got, ref = _both(student, reference, key, spec, what, ctx)
        if _level_reached(got, ref):
            return 1.0, f"{what}: activation {got[1]:.3g} (reference {ref[1]:.3g})"
        needed = ref[0] + LEVEL_FRACTION * (ref[1] - ref[0])
        return 0.0, (f"{what}: activation reached {got[1]:.3g}, below {needed:.3g} (80% of "
                     f"the reference's gain, which reaches {ref[1]:.3g} from the same seed)")

    return _per_case(student, reference, judge, (
        "optimise only the image, on filter `filter_index` of `layer`, with "
        "Adam([image], lr=lr) for `iterations` steps from torch.randn(1, 3, image_size, "
        "image_size)"))


def check_seed(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def judge(key, spec, what):
        first, _ = _inputs(student, key, what)
        want = seeded_noise(spec["seed"], spec["image_size"])
        if first.shape == want.shape and torch.allclose(first, want, rtol=0, atol=SEED_ATOL):
            return 1.0, f"{what}: started from the noise of seed {spec['seed']}"
        if first.shape != want.shape:
            return 0.0, f"{what}: the first image has shape {tuple(first.shape)}, not " \
                        f"{tuple(want.shape)}"
        return 0.0, f"{what}: the first image is not the noise of seed {spec['seed']}"

    return _per_case(student, reference, judge, (
        "start from torch.randn(1, 3, image_size, image_size) right after "
        "torch.manual_seed(seed) when seed is given"))


def check_iterations(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def judge(key, spec, what):
        _inputs(student, key, what)
        expected = int(_case(reference, key)["distinct_inputs"])
        got = _case(student, key).get("distinct_inputs")
        if isinstance(got, int) and expected <= got <= expected + 1:
            return 1.0, f"{what}: {got} optimisation steps seen"
        return 0.0, (f"{what}: the model saw {got} different images, the reference "
                     f"{expected} (one per Adam step)")

    return _per_case(student, reference, judge, (
        "run exactly `iterations` steps: for _ in range(iterations), one forward pass and "
        "one optimizer.step() each"))


def _first_step(record: Record, key: str) -> float | None:
    first, step = record.tensors.get(f"{key}_first"), record.tensors.get(f"{key}_step")
    if first is None or step is None or first.shape != step.shape:
        return None
    return float(torch.quantile((step - first).abs().double().flatten(), 0.9))


def check_lr(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def judge(key, spec, what):
        _inputs(student, key, what)
        want = _first_step(reference, key)
        got = _first_step(student, key)
        if got is None:
            return 0.0, f"{what}: the image never changed between forward passes"
        low, high = LR_RATIO
        if want and low <= got / want <= high:
            return 1.0, f"{what}: first step {got:.3g} (lr {spec['lr']})"
        return 0.0, (f"{what}: the first step moved the pixels by {got:.3g} (90th "
                     f"percentile), the reference's by {want:.3g} at lr={spec['lr']}")

    return _per_case(student, reference, judge, (
        "give the optimizer the lr you were given: torch.optim.Adam([image], lr=lr, "
        "weight_decay=1e-6)"))


def _main_passed(student: Record, reference: Record, key: str, ctx: CheckContext) -> bool:
    spec = _spec(reference, key)
    try:
        got, ref = _both(student, reference, key, spec, _describe(spec), ctx)
    except CheckFailed:
        return False
    return _level_reached(got, ref)


def _secondary(student: Record, reference: Record, ctx: CheckContext, problem, ok: str,
               advice: str) -> Outcome:
    """Per case: ``problem(key, what)`` -> message or None, paid only when that case's
    activation_level passes. Problems are reported for every case that returned."""
    keys = _keys(reference)
    returned = []
    for key in keys:
        try:
            require_call(student, key, POINTER)
            returned.append(key)
        except CheckFailed as exc:
            first_failure = exc
    if not returned:
        raise first_failure
    earned, problems, unpaid = 0, [], []
    for key in keys:
        what = _describe(_spec(reference, key))
        found = problem(key, what)
        if found:
            problems.append(found)
        main = _main_passed(student, reference, key, ctx)
        if not main:
            unpaid.append(what)
        earned += bool(main and not found)
    if earned == len(keys):
        return passed(ok)
    parts = []
    if problems:
        parts.append("; ".join(problems) + f": {advice}")
    if unpaid:
        parts.append("pays only for a call whose activation_level passes, not "
                     f"{', '.join(unpaid)}")
    return partial(earned / len(keys), "; ".join(parts))


def check_output_format(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def problem(key, what):
        try:
            require_call(student, key, POINTER)
        except CheckFailed:
            return None  # the activation checks already say why
        found = _image_problem(student, f"{key}_image", _spec(reference, key)["image_size"])
        return f"{what} {found}" if found else None

    return _secondary(student, reference, ctx, problem,
                      "images are (image_size, image_size, 3) floats in [0, 1]",
                      "return postprocess_filter(image)")


def _image_problem(record: Record, name: str, size: int) -> str | None:
    types = record.data.get("types", {})
    info = types.get(name, {}) if isinstance(types, dict) else {}
    image = record.tensors.get(name)
    if image is None:
        got = info.get("type", "nothing") if isinstance(info, dict) else "nothing"
        return (f"returned {got}; return the numpy array of postprocess_filter(image) "
                f"shaped ({size}, {size}, 3)")
    if tuple(image.shape) != (size, size, 3):
        return (f"returned shape {tuple(image.shape)}; return ({size}, {size}, 3) "
                "(height, width, RGB), the image_size you were given, via postprocess_filter")
    if not image.is_floating_point():
        return f"returned dtype {image.dtype}; return floats in [0, 1]"
    if not torch.isfinite(image).all():
        return "returned NaN or infinite values; normalise with (img - min) / (max - min)"
    low, high = float(image.min()), float(image.max())
    if low < -1e-6 or high > 1 + 1e-6:
        return (f"returned values in [{low:.3g}, {high:.3g}]; normalise to [0, 1] with "
                "postprocess_filter")
    return None


def check_hooks_removed(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def problem(key, what):
        hooks = _case(student, key).get("model", {}).get("hooks") or []
        left = [f"a {hook.get('kind', 'hook').replace('_', ' ')} is still registered on "
                f"{hook.get('module')} after {what}" for hook in hooks]
        return "; ".join(left) or None

    return _secondary(student, reference, ctx, problem, "no hook left on the model",
                      "call handle.remove() (in a finally block)")


def check_model_untouched(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    reference = _as_judged(student, reference, ctx)

    def problem(key, what):
        facts = _case(student, key).get("model", {})
        found = []
        if facts.get("weights_sha256") != trusted_digest(ctx):
            found.append(f"{what} changed the model's weights or BatchNorm statistics")
        training = facts.get("training_modules") or []
        if training:
            found.append(
                f"{what} left {facts.get('n_training_modules', len(training))} modules in "
                f"training mode (e.g. {', '.join(map(str, training[:3]))})")
        return "; ".join(found) or None

    return _secondary(student, reference, ctx, problem, "weights and eval mode unchanged",
                      "optimise only the image (Adam([image])) and leave the model in eval "
                      "mode (never call model.train())")


def _unit(record: Record, entry: Any) -> torch.Tensor | None:
    """An axes image's recorded data on a 0-1 scale (integer data / 255)."""
    if not isinstance(entry, dict):
        return None
    tensor = record.tensors.get(entry.get("tensor"))
    if tensor is None:
        return None
    tensor = tensor.double()
    return tensor / 255.0 if str(entry.get("dtype", "")).startswith(("uint", "int")) else tensor


def _same_image(got: torch.Tensor | None, want: torch.Tensor) -> bool:
    if got is None or got.shape != want.shape:
        return False
    bad = ~((got - want).abs() <= CELL_TOLERANCE)  # NaN counts as bad
    return int(bad.sum()) <= CELL_MISMATCH * want.numel()


def _expected_cells(student: Record, reference: Record, ctx: CheckContext
                    ) -> tuple[list[torch.Tensor | None], list[str]]:
    """Per grid cell, the student's own visualize_filter image for it when that call
    starts from the grid seed's noise and its inputs raise the cell's filter
    (recomputed); else None with the reason."""
    grid = reference.data["grid"]
    size = int(grid["image_size"])
    expected, reasons = [], []
    for i, (layer, number) in enumerate(_grid_cells(grid)):
        key = f"cell{i}"
        what = f"visualize_filter(model, {layer!r}, {number}) with the grid's arguments"
        try:
            ref = _activations(reference, key, layer, number, "the reference", ctx)
            got = _activations(student, key, layer, number, what, ctx)
        except CheckFailed as exc:
            expected.append(None)
            reasons.append(str(exc))
            continue
        first, _ = _inputs(student, key, what)
        noise = seeded_noise(int(grid["seed"]), size)
        if first.shape != noise.shape or not torch.allclose(first, noise, rtol=0,
                                                             atol=SEED_ATOL):
            expected.append(None)
            reasons.append(f"{what} does not start from the noise of the grid's seed")
            continue
        image = student.tensors.get(f"{key}_image")
        if not _rises(got, ref) or image is None or _image_problem(student, f"{key}_image",
                                                                   size):
            expected.append(None)
            reasons.append(f"{what} does not raise that filter or returns no image")
            continue
        expected.append(image.double())
    return expected, reasons


def check_grid(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    facts = require_figure(student, "grid", "grid", POINTER_GRID,
                           "return the Figure holding the grid")
    grid = reference.data["grid"]
    cells = [ax for ax in facts.get("axes", []) if isinstance(ax, dict) and ax.get("has_image")]
    wanted = _grid_cells(grid)
    expected, reasons = _expected_cells(student, reference, ctx)
    free = list(range(len(cells)))
    matched, untitled = 0, []
    for (_, number), want in zip(wanted, expected, strict=True):
        if want is None:
            continue
        for j in free:
            images = cells[j].get("images") or []
            if images and _same_image(_unit(student, images[-1]), want):
                free.remove(j)
                matched += 1
                if not re.search(rf"(?<!\d){number}(?!\d)", str(cells[j].get("title", ""))):
                    untitled.append(str(cells[j].get("title", "")))
                break
    problems = []
    if len(cells) != len(wanted):
        problems.append(f"the figure has {len(cells)} image cells; draw {len(grid['layers'])} "
                        f"x {len(grid['filters'])} (one row per layer, one column per filter)")
    if matched < len(wanted):
        problems.append(
            f"{len(wanted) - matched} of {len(wanted)} cells do not show what your "
            "visualize_filter gives for their layer and filter with the grid's iterations, "
            "lr, image_size and seed" + (f" ({reasons[0]})" if reasons else ""))
    if untitled:
        problems.append(
            f"{len(untitled)} cells lack their filter number in the title (titles: "
            f"{untitled[:9]}); title each cell with the filter number it shows, e.g. "
            "f'{layer} #{filter_index}'")
    fraction = matched / len(wanted) * (0.5 if untitled else 1.0)
    if not problems:
        return passed("3x3 grid: each cell shows its filter, titled with its number")
    return partial(fraction, "; ".join(problems))


CHECKS = {
    "activation_rises": check_activation_rises,
    "activation_level": check_activation_level,
    "seed": check_seed,
    "iterations": check_iterations,
    "lr": check_lr,
    "output_format": check_output_format,
    "hooks_removed": check_hooks_removed,
    "model_untouched": check_model_untouched,
    "grid": check_grid,
}
