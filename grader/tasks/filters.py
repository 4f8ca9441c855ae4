"""Task 5: filter visualisation by activation maximisation.

Probe
    ``visualize_filter`` is called twice, each time on a fresh copy of the trusted
    model, with ``torch.manual_seed(seed)`` first and ``image_size``, ``iterations``,
    ``lr`` and ``seed`` from the settings: filter 3 of ``"conv1"`` (the layer passed
    by NAME) and filter 5 of ``layer2.0.conv1`` (the layer passed as the MODULE of
    that model copy). The returned image is min-max normalised for display, so the
    optimised image itself is never returned; instead the probe registers its own
    forward pre-hook for the stem convolution ``conv1`` (every forward pass, even one
    cut short at the target layer, starts there; a global module hook filtered to
    ``Conv2d(3, ...)``, so a ``deepcopy`` of the model is seen too) that keeps the
    input of the first and of the last forward call and counts the calls. The hook
    is removed right after the call, before :func:`grader.probing.model_facts`, so
    the facts show only hooks the student left. Recorded per case: the first and
    last input ``(1, 3, S, S)``, the returned image, the call counts and the model
    facts. ``plot_filter_grid`` is then called on a fresh model with 3 layers x
    filters (7, 19, 42) at 2 iterations on a 32x32 image (the grid's titles and
    cells are checked, not the optimisation); the figure is reduced to
    :func:`grader.probing.figure_facts` and closed.

Checks (the activation is recomputed here, with the trusted model, from the inputs)
    ``activation_rises``: the target filter's mean activation for the last input
    exceeds the one for the first input, by at least a quarter of the rise the
    reference achieves. ``activation_level``: the last input's activation reaches
    the reference's start plus 0.8 x the reference's gain (same seed, so the same
    starting noise; a ratio of raw activations would mean nothing where they are
    near zero or negative). Each case is half of a check's points. Six Adam steps at
    lr 0.1 raise both filters far above their start (conv1 #3: 0.00 -> 1.75,
    layer2.0.conv1 #5: 0.09 -> 6.9 on the stand-in), so:

    - ``loss = +mean`` (wrong sign): the activation falls; both fail;
    - no ``optimizer.step()`` / optimising a copy: first == last input; both fail;
    - the wrong filter (``filter_index + 1``) or the wrong layer: the target filter
      barely moves (or falls); both fail;
    - the image never run through a ResNet at all: no forward call is seen; both
      fail with that message;
    - the hook never removed: ``hooks_removed`` names the module;
    - ``model.train()`` or an optimizer over the model's parameters: BatchNorm
      running statistics or weights change the state digest (``model_untouched``).
      Gradients left in the parameters' ``.grad`` are allowed: the handout's own
      ``loss.backward()`` leaves them there;
    - the raw image returned (not normalised) or the wrong size: ``output_format``;
    - grid titles without the filter number, or fewer than 9 image cells: ``grid``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from grader.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_figure,
)
from grader.probing import (
    ProbeContext,
    call,
    closing_figures,
    figure_facts,
    mean_activation,
    model_facts,
    new_record,
    put_tensor,
)
from grader.records import Record
from grader.tasks.model import trusted_digest

POINTER = "Task 5: visualize_filter in filters.py"
POINTER_GRID = "Task 5: plot_filter_grid in filters.py"

# (case key, layer name, filter index, how the layer is passed). One case passes the
# name, the other the module: the template accepts both.
CASES: tuple[tuple[str, str, int, str], ...] = (
    ("conv1_f3", "conv1", 3, "name"),
    ("layer2_f5", "layer2.0.conv1", 5, "module"),
)
# Grid probe: the default layers and filter numbers that appear in no ResNet layer
# name, so a title such as "layer2.0.conv1" cannot pass for a filter number.
GRID_LAYERS: tuple[str, ...] = ("conv1", "layer2.0.conv1", "layer4.2.conv2")
GRID_FILTERS: tuple[int, ...] = (7, 19, 42)
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


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("filters")
    record = new_record("filters")
    s = ctx.settings
    record.data["settings"] = {"image_size": s.image_size, "iterations": s.filter_iterations,
                               "lr": s.filter_lr, "seed": s.seed}
    cases: dict[str, Any] = {}
    for key, layer, filter_index, passed_as in CASES:
        model = ctx.fresh_model()
        target = layer if passed_as == "name" else model.get_submodule(layer)
        watcher = _InputWatcher(model)
        torch.manual_seed(s.seed)
        try:
            image = call(record, key, mod.visualize_filter, model, target, filter_index,
                         s.filter_iterations, s.filter_lr, image_size=s.image_size, seed=s.seed)
        finally:
            watcher.remove()
        info: dict[str, Any] = {"layer": layer, "filter": filter_index, "passed_as": passed_as,
                                "forward_calls": watcher.calls,
                                "forward_calls_on_given_model": watcher.calls_on_given}
        for which, tensor in (("first", watcher.first), ("last", watcher.last)):
            if tensor is not None:
                record.tensors[f"{key}_{which}"] = tensor
        info["input_shape"] = watcher.shape
        put_tensor(record, f"{key}_image", image)
        info["model"] = model_facts(model)
        cases[key] = info
        del model, image
    record.data["cases"] = cases

    model = ctx.fresh_model()
    with closing_figures():
        torch.manual_seed(s.seed)
        fig = call(record, "grid", mod.plot_filter_grid, model, list(GRID_LAYERS),
                   list(GRID_FILTERS), iterations=GRID_ITERATIONS, lr=s.filter_lr,
                   image_size=GRID_IMAGE_SIZE, seed=s.seed)
        if record.data["calls"]["grid"]["ok"]:
            figure_facts(record, "grid", fig)
    return record


class _InputWatcher:
    """The probe's own forward pre-hook: first and last input of the stem convolution.

    Registered for every module (``register_module_forward_pre_hook``) and filtered to
    ``Conv2d`` layers with 3 input channels, ResNet-34's ``conv1`` and nothing else, so
    it also sees a student who optimises through ``copy.deepcopy(model)`` (the image
    is what is graded, not which copy of the network it went through).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.calls_on_given = 0
        self.first: torch.Tensor | None = None
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
            if self.first is None:
                self.first = copy
            self.last = copy

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- checks


def _case(record: Record, key: str) -> dict[str, Any]:
    cases = record.data.get("cases")
    info = cases.get(key) if isinstance(cases, dict) else None
    if not isinstance(info, dict):
        raise CheckFailed(f"{POINTER}: the grader recorded nothing for {key}")
    return info


def _describe(info: dict[str, Any]) -> str:
    layer = info.get("layer")
    arg = repr(layer) if info.get("passed_as") == "name" else f"model.get_submodule({layer!r})"
    return f"visualize_filter(model, {arg}, {info.get('filter')})"


def _activations(record: Record, key: str, ctx: CheckContext) -> tuple[float, float]:
    """Target filter's mean activation for the first and the last input the model saw."""
    info = _case(record, key)
    what = _describe(info)
    try:
        require_call(record, key, POINTER)
    except CheckFailed as exc:
        raise CheckFailed(f"{what}: {str(exc).removeprefix(POINTER + ': ')}") from None
    if not info.get("forward_calls"):
        raise CheckFailed(
            f"{what} never ran the model; optimise the image through the `model` "
            "argument: model(image) with a forward hook on the layer"
        )
    first = record.tensors.get(f"{key}_first")
    last = record.tensors.get(f"{key}_last")
    if first is None or last is None:
        raise CheckFailed(
            f"{what} fed the model an input of shape {info.get('input_shape')}; feed it "
            "one image shaped (1, 3, image_size, image_size)"
        )
    if first.dim() != 4 or first.shape[1] != 3 or not torch.isfinite(last).all():
        raise CheckFailed(f"{what}: the image fed to the model is not a finite (1, 3, H, W) "
                          "tensor")
    model = ctx.trusted_model()
    # The layer and filter come from the grader's own table, not from the record.
    layer, index = next((name, number) for k, name, number, _ in CASES if k == key)
    start = float(mean_activation(model, layer, index, first)[0])
    end = float(mean_activation(model, layer, index, last)[0])
    return start, end


def _per_case(student: Record, reference: Record, ctx: CheckContext, judge, advice: str
              ) -> Outcome:
    """Average ``judge(what, student (start, end), reference (start, end))`` over the cases.

    The message lists each failing case once; ``advice`` follows only when a case was
    judged (a call that raised already says what to fix).
    """
    scores, messages, judged_failure = [], [], False
    for key, *_ in CASES:
        try:
            ref = _activations(reference, key, ctx)
            what = _describe(_case(student, key))
            got = _activations(student, key, ctx)
        except CheckFailed as exc:
            scores.append(0.0)
            messages.append((0.0, str(exc)))
            continue
        score, message = judge(what, got, ref)
        judged_failure |= score < 1.0
        scores.append(score)
        messages.append((score, message))
    fraction = sum(scores) / len(scores)
    failing = [m for s, m in messages if s < 1.0]
    if not failing:
        return passed("; ".join(m for _, m in messages))
    return partial(fraction, "; ".join(failing) + (f": {advice}" if judged_failure else ""))


def _judge_rise(what: str, got: tuple[float, float], ref: tuple[float, float]):
    rise, ref_rise = got[1] - got[0], ref[1] - ref[0]
    if rise >= MIN_RISE_FRACTION * ref_rise and rise > 0:
        return 1.0, f"{what}: activation rose from {got[0]:.3g} to {got[1]:.3g}"
    return 0.0, (f"{what}: activation went from {got[0]:.3g} to {got[1]:.3g} (the "
                 f"reference: {ref[0]:.3g} to {ref[1]:.3g})")


def _judge_level(what: str, got: tuple[float, float], ref: tuple[float, float]):
    # Measured from the reference's start: same seed, same starting noise.
    needed = ref[0] + LEVEL_FRACTION * (ref[1] - ref[0])
    if got[1] >= needed:
        return 1.0, f"{what}: activation {got[1]:.3g} (reference {ref[1]:.3g})"
    return 0.0, (f"{what}: activation reached {got[1]:.3g}, below {needed:.3g} (80% of "
                 f"the reference's gain, which reaches {ref[1]:.3g} from the same seed)")


def check_activation_rises(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    return _per_case(student, reference, ctx, _judge_rise, (
        "the loss must be -mean(activation[0, filter_index]) and you must call "
        "optimizer.step() on the image each iteration"))


def check_activation_level(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    return _per_case(student, reference, ctx, _judge_level, (
        "optimise only the image, on filter `filter_index` of `layer`, with "
        "Adam([image], lr=lr) for `iterations` steps from torch.randn(1, 3, image_size, "
        "image_size)"))


def check_output_format(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    size = int(reference.data["settings"]["image_size"])
    problems = []
    for key, *_ in CASES:
        info = _case(student, key)
        what = _describe(info)
        try:
            require_call(student, key, POINTER)
        except CheckFailed as exc:
            problems.append(f"{what}: {str(exc).removeprefix(POINTER + ': ')}")
            continue
        problem = _image_problem(student, f"{key}_image", size)
        if problem:
            problems.append(f"{what} {problem}")
    if problems:
        return partial((len(CASES) - len(problems)) / len(CASES), "; ".join(problems))
    return passed(f"images are ({size}, {size}, 3) floats in [0, 1]")


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


def _require_some_call(record: Record) -> None:
    """Raise the first case's call failure when no case returned at all (e.g. the template).

    Otherwise every case is judged, a raising one too: a hook left behind by a call
    that raised halfway is still left on the model.
    """
    failures = []
    for key, *_ in CASES:
        try:
            require_call(record, key, POINTER)
            return
        except CheckFailed as exc:
            failures.append(exc)
    raise failures[0]


def check_hooks_removed(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    _require_some_call(student)
    left = []
    for key, *_ in CASES:
        hooks = _case(student, key).get("model", {}).get("hooks") or []
        for hook in hooks:
            left.append(f"a {hook.get('kind', 'hook').replace('_', ' ')} is still registered "
                        f"on {hook.get('module')} after {_describe(_case(student, key))}")
    if left:
        raise CheckFailed("; ".join(left) + ": call handle.remove() (in a finally block)")
    return passed("no hook left on the model")


def check_model_untouched(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    _require_some_call(student)
    problems = []
    for key, *_ in CASES:
        info = _case(student, key)
        facts = info.get("model", {})
        what = _describe(info)
        if facts.get("weights_sha256") != trusted_digest(ctx):
            problems.append(f"{what} changed the model's weights or BatchNorm statistics")
        training = facts.get("training_modules") or []
        if training:
            problems.append(
                f"{what} left {facts.get('n_training_modules', len(training))} modules in "
                f"training mode (e.g. {', '.join(map(str, training[:3]))})"
            )
    if problems:
        raise CheckFailed("; ".join(problems) + ": optimise only the image (Adam([image])) "
                          "and leave the model in eval mode (never call model.train())")
    return passed("weights and eval mode unchanged")


def check_grid(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    facts = require_figure(student, "grid", "grid", POINTER_GRID,
                           "return the Figure holding the grid")
    cells = [ax for ax in facts.get("axes", []) if ax.get("has_image")]
    expected = len(GRID_LAYERS) * len(GRID_FILTERS)
    problems = []
    if len(cells) != expected:
        problems.append(f"the figure has {len(cells)} image cells; draw {len(GRID_LAYERS)} "
                        f"x {len(GRID_FILTERS)} (one row per layer, one column per filter)")
    titled = 0
    for number in GRID_FILTERS:
        pattern = re.compile(rf"(?<!\d){number}(?!\d)")
        count = sum(1 for ax in cells if pattern.search(str(ax.get("title", ""))))
        titled += min(count, len(GRID_LAYERS))
    if titled < expected:
        titles = [str(ax.get("title", "")) for ax in cells][:9]
        problems.append(
            f"{expected - titled} cells lack their filter number in the title (titles: "
            f"{titles}); title each cell with the filter number it shows, e.g. "
            "f'{layer} #{filter_index}'"
        )
    if problems:
        return partial(0.5 * (len(cells) == expected) + 0.5 * titled / expected,
                       "; ".join(problems))
    return passed("3x3 grid with the filter numbers in the titles")


CHECKS = {
    "activation_rises": check_activation_rises,
    "activation_level": check_activation_level,
    "output_format": check_output_format,
    "hooks_removed": check_hooks_removed,
    "model_untouched": check_model_untouched,
    "grid": check_grid,
}
