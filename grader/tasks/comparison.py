"""Task 9: comparison of attribution algorithms.

Probe
    The variant's photo crop at ``comparison_size`` (32x32: every algorithm still differs
    from every other, and the student's Occlusion sweep, the costliest call, stays near
    200 forward passes of 32 px). From ``settings.rng("comparison")`` the probe draws:

    - ``target``: the class of rank 2-10 in the trusted model's ranking of this input
      (computed before any student call). Never the top-1, so a map of the argmax (or of
      a hard-coded class) is another map: Saliency of the top-1 differs from the target's
      by ~90% of its maximum on the stand-in.
    - ``n_steps`` in 5..9: IG with 4-8 Gauss-Legendre steps differs from IG with 50 by
      8-18% of its maximum (measured on the stand-in), far outside the 0.2% tolerance,
      so "n_steps ignored" is another map.
    - two seeds far from small numbers. ``compare_attributions`` is called on a fresh
      model copy, never after seeding the global generators for the student: ``compare``
      (seed A); then, only when it returned a key the grader verifies as a random
      algorithm (:data:`RANDOM_ALGORITHMS`), ``repeat`` (seed A again) and ``reseed``
      (seed B). A random algorithm that ignores ``seed`` either repeats nothing
      (unseeded: ``repeat`` differs) or never changes (hard-coded seed: ``reseed``
      equals ``compare``); a deterministic map under a random algorithm's name (an IG
      variant called "GradientShap") never changes either.

    Of each returned exact ``dict`` the first :data:`MAX_ALGORITHMS` entries are recorded
    (exact ``str`` keys, exact dense tensors). ``plot_comparison`` is called with the
    student's own maps (or the grader's rebuilt copies, or :func:`stand_in_maps`) and the
    figure is reduced to :func:`grader.probe.probing.figure_facts` plus, per visible axes, its
    title and the data arrays of its images (:func:`_record_panels`).

Checks (the grader's maps are computed here with the trusted model, on the reference
record's inputs, target and n_steps; nothing the student reports about itself is trusted)
    ``algorithms`` (main): each key is mapped to an algorithm by its normalised name
    (:func:`algorithm_of`: "Integrated Gradients", "IG", "integrated_gradients" alike).
    Recognised algorithms are verified by content (:data:`VERIFIERS`):

    - exact, up to :data:`EXACT_RTOL` of the map's maximum: Saliency (|grad| or grad),
      InputXGradient, GuidedBackprop, Deconvolution, IntegratedGradients (zero baseline,
      the given n_steps, any Captum ``method``);
    - GradCam / LayerGradCam: equal to Grad-CAM of one of the model's conv layers, blocks
      or stages (one pass with hooks), with or without ReLU, upsampled by any
      ``F.interpolate`` mode; GuidedGradCam likewise times GuidedBackprop;
    - Occlusion: the window and stride are read off the map's own grid (the positions
      where its values change must be exactly where Captum's windows start and end:
      random, smooth or gradient maps change everywhere or nowhere on a grid), and the
      map's value at six pixels (its maximum, its minimum, four drawn from the variant's
      seed) must equal the mean logit drop of the patches covering each, recomputed (a few
      dozen rows instead of the student's sweep) with a zero baseline, else with the
      constant baseline the map's corner implies (fitted: a 1/4-step scan of [-3, 3] plus
      the input's mean, min and max, then Illinois steps; ``baselines=inputs.mean()``,
      ``-1.0`` pass). A zero-baseline map of another class fails ("Occlusion of class k");
      a grid no constant baseline explains (a blurred-image baseline) is listed "graded
      by hand", never counted nor failed silently. Every honest window and stride passes
      (square or not, overlapping or not, per channel or over all channels);
    - GradientShap and NoiseTunnel/SmoothGrad/VarGrad (baselines, stdevs, sample counts
      left open) are judged by content, not by reproducibility: the map must be random
      (not the same in all three calls: a hard-coded seed, or a deterministic map under
      the name, fails), must not equal a noise-free map within :data:`EXACT_RTOL`
      (zero-baseline IG at n_steps or 50, any Captum method; for NoiseTunnel also |grad|,
      grad, InputXGradient, GuidedBackprop), and must correlate with the grader's maps:
      Pearson with IG >= :data:`GRADIENT_SHAP_MIN_R` (0.15; measured on the stand-in,
      both variants, 4 targets: zero/blurred/mean/zero+input baselines 0.4-1.0, N(0, 1)
      noise baselines with 5-10 samples 0.03-0.5; random maps < 0.07 over 500 draws), or
      best of IG, |grad|, grad, IG², grad², InputXGradient, GuidedBackprop >=
      :data:`NOISE_TUNNEL_MIN_R` (honest measured 0.52-0.98). A random map below the
      threshold is "graded by hand". Same seed -> same map and other seed -> other map
      are asked by ``outputs`` (torch-only seeding fails it, with a message to seed numpy:
      Captum's GradientShap draws with numpy).

    Algorithms Captum cannot run on torchvision's ResNet-34 or whose maps cannot be
    recomputed from the map (DeepLift, Lime, KernelShap, FeatureAblation, ...) and names
    the grader does not recognise earn nothing automatically and are listed "graded by
    hand". Score: distinct verified algorithms (one per algorithm, however many keys) / 5.

    ``outputs`` and ``figure`` pay only when ``algorithms`` passes. ``outputs``: every
    entry a finite float tensor shaped like the input (or ``(1, 1, H, W)``), and every
    random algorithm's map the same under the same seed and other under another.
    ``figure``: for each name given to ``plot_comparison``, a panel titled with it whose
    image data is that map (|Pearson|
    >= :data:`PANEL_MIN_R` with one of its 2-D views: channel sum, |.| sum, max |.|);
    titles alone earn nothing.

Cost: one student call at 32 px, three when a random algorithm is returned (the
reference returns GradientShap, so it pays three), plus the grader's maps: one gradient
pass per deterministic algorithm, one IG run of n_steps, one hooked pass for every
Grad-CAM layer, and a few dozen 32 px rows for Occlusion.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
)

from grader.check.checking import (
    CheckContext,
    CheckFailed,
    Outcome,
    partial,
    passed,
    require_call,
    require_figure,
)
from grader.probe.inputs import probe_inputs
from grader.probe.probing import ProbeContext, call, closing_figures, figure_facts, new_record, put_tensor
from grader.probe.records import Record, plain, type_name
from grader.tasks.attribution_viz import trusted_attributions

POINTER = "Task 9: compare_attributions in comparison.py"
POINTER_PLOT = "Task 9: plot_comparison in comparison.py"
REQUIRED_ALGORITHMS = 5
# At most this many entries are recorded (and checked); more is not more credit.
MAX_ALGORITHMS = 12
# Maps normalised to max |value| 1 that agree within this are the same algorithm.
SAME_MAP_ATOL = 1e-3
STAND_IN_NAMES: tuple[str, ...] = ("Alpha", "Bravo", "Charlie", "Delta", "Echo")
CALLS = ("compare", "repeat", "reseed")
# Algorithms verified by their seed behaviour: the seed calls run only when one is returned.
RANDOM_ALGORITHMS = frozenset({"GradientShap", "NoiseTunnel"})
# Target rank drawn in [2, 10] of the trusted model's ranking (1 = top-1).
TARGET_RANKS = (2, 10)
N_STEPS_RANGE = (5, 9)
# Deterministic algorithms: |student - grader| <= EXACT_RTOL * max|grader| everywhere.
# Batching (internal_batch_size, perturbations_per_eval) moves maps by ~1e-6 of their
# maximum; the nearest wrong map measured (IG with 16 steps instead of 9) is 1.5% away.
EXACT_RTOL = 2e-3
# Pearson correlation thresholds, measured on the stand-in over two targets (see the
# module docstring): honest choices' minimum, halved-ish; random maps stay below 0.05.
# GradientShap: honest maps with zero, blurred or mean baselines reach 0.4-1.0; with
# N(0, 1) noise baselines and 5-10 samples 0.03-0.5 (measured over 8 seeds, 4 targets,
# both variants); random maps stay below 0.07 (500 draws, 32 px). Below it a map that
# changes with the seed is graded by hand, never counted nor failed.
GRADIENT_SHAP_MIN_R = 0.15
NOISE_TUNNEL_MIN_R = 0.4
# A panel shows a map when |Pearson| of its image data with a 2-D view of the map is this.
PANEL_MIN_R = 0.9
# Occlusion grids (window and stride per dimension) whose corner patch is recomputed.
MAX_OCCLUSION_GRIDS = 64
# Constant Occlusion baselines: fitted on the corner for this many windows, with this
# many Illinois steps after the scan; zero-baseline maps of another class tried.
OCCLUSION_FIT_WINDOWS = 4
OCCLUSION_FIT_STEPS = 12
OCCLUSION_OTHER_CLASSES = 6
# A map that changes with the seed differs by more than this fraction of its maximum.
SEED_CHANGE_RTOL = 1e-6


def stand_in_maps(size: int) -> dict[str, torch.Tensor]:
    """Five distinct grader-made ``(1, 3, size, size)`` maps for ``plot_comparison``."""
    base = trusted_attributions(size)
    return {name: base.roll(shifts=7 * i, dims=-1) * (i + 1)
            for i, name in enumerate(STAND_IN_NAMES)}


def probe_parameters(settings: Any) -> dict[str, int]:
    """The variant's target rank, n_steps and two seeds (all from ``settings.rng``)."""
    rng = settings.rng("comparison")
    rank = rng.randint(*TARGET_RANKS)
    n_steps = rng.randint(*N_STEPS_RANGE)
    seed_a = rng.randrange(1000, 2**31)
    seed_b = rng.randrange(1000, 2**31)
    while seed_b == seed_a:
        seed_b = rng.randrange(1000, 2**31)
    return {"rank": rank, "n_steps": n_steps, "seed": seed_a, "other_seed": seed_b}


# --------------------------------------------------------------------------- probe


def probe(ctx: ProbeContext) -> Record:
    mod = ctx.module("comparison")
    record = new_record("comparison")
    s = ctx.settings
    params = probe_parameters(s)
    inputs, display = probe_inputs(s.comparison_size, s)
    record.data["input_shape"] = list(inputs.shape)
    record.tensors["inputs"] = inputs.clone()
    record.data.update(target_rank=params["rank"], n_steps=params["n_steps"],
                       seeds=[params["seed"], params["other_seed"]])
    seeds = {"compare": params["seed"], "repeat": params["seed"], "reseed": params["other_seed"]}
    results: dict[str, Any] = {}
    for name in CALLS:
        model = ctx.fresh_model()
        if name == "compare":
            # The target, ranked by the trusted model before any student call.
            with torch.inference_mode():
                ranking = model(inputs.to(ctx.device))[0].argsort(descending=True)
            target = int(ranking[params["rank"] - 1])
            record.data["target"] = target
        elif not _needs_seed_calls(results["compare"]):
            break  # no random algorithm to repeat: the seed calls would prove nothing
        results[name] = call(record, name, mod.compare_attributions, model,
                             inputs.to(ctx.device, copy=True), target,
                             n_steps=params["n_steps"], seed=seeds[name])
        del model
    result = results["compare"]
    entries, own_dict = _record_entries(record, result, tuple(inputs.shape))
    for name in CALLS[1:]:
        _record_again(record, name, results.get(name), entries)
    if own_dict:
        given = result
        record.data["plot_given"] = "own"
    else:
        # Only maps plot_comparison's docstring promises it: (1, 3, H, W), finite.
        given = {e["name"]: record.tensors[e["tensor"]].clone() for e in entries
                 if e.get("valid")}
        record.data["plot_given"] = "rebuilt" if given else "stand_in"
        given = given or stand_in_maps(s.comparison_size)
    names = [str.__str__(k) for k in dict.keys(given)][:MAX_ALGORITHMS]
    record.data["plot_names"] = names
    # What each name was given: the grader's copy of the map (the student may edit theirs).
    for i, value in enumerate(list(dict.values(given))[:MAX_ALGORITHMS]):
        if type(value) is torch.Tensor:
            record.tensors[f"given_{i}"] = value.detach().to("cpu", torch.float32, copy=True)
    del results, result
    with closing_figures():
        fig = call(record, "plot", mod.plot_comparison, given, display.clone())
        if record.data["calls"]["plot"]["ok"]:
            figure_facts(record, "comparison", fig)
            _record_panels(record, fig)
        del fig
    return record


def _needs_seed_calls(result: Any) -> bool:
    """Whether the first call returned a map the grader verifies as a random algorithm."""
    if type(result) is not dict:
        return False
    return any(type(k) is str and algorithm_of(str.__str__(k)) in RANDOM_ALGORITHMS
               for k in list(dict.keys(result))[:MAX_ALGORITHMS])


def _record_entries(record: Record, result: Any, shape: tuple[int, ...]
                    ) -> tuple[list[dict[str, Any]], bool]:
    """Record the first MAX_ALGORITHMS entries. True when ``result`` is a non-empty exact
    dict of exact str -> valid map (an exact float tensor shaped like the input, finite),
    so the student's own dict may go to plot_comparison."""
    record.data["returned"] = type_name(result)
    entries: list[dict[str, Any]] = []
    if type(result) is not dict:
        record.data["entries"] = entries
        return entries, False
    items = list(dict.items(result))
    record.data["n_entries"] = len(items)
    for i, (name, value) in enumerate(items[:MAX_ALGORITHMS]):
        key = f"algo_{i}"
        name_ok = type(name) is str
        stored = put_tensor(record, key, value)
        tensor = record.tensors.get(key)
        valid = (name_ok and stored and type(value) is torch.Tensor
                 and tuple(tensor.shape) == shape and tensor.is_floating_point()
                 and bool(torch.isfinite(tensor).all()))
        entries.append({"name": str.__str__(name) if name_ok else f"<{type_name(name)} #{i}>",
                        "name_is_str": name_ok, "tensor": key, "valid": valid})
    record.data["entries"] = plain(entries)
    own = 0 < len(items) <= MAX_ALGORITHMS and all(e["valid"] for e in entries)
    return entries, own


def _record_again(record: Record, call_name: str, result: Any,
                  entries: list[dict[str, Any]]) -> None:
    """The maps of a later call under the names of the first call's entries."""
    if type(result) is not dict:
        return
    for i, entry in enumerate(entries):
        if entry.get("name_is_str") is not True:
            continue
        value = dict.get(result, entry["name"])
        if value is not None:
            put_tensor(record, f"{call_name}_{i}", value)


def _record_panels(record: Record, fig: Any) -> None:
    """Per visible axes: its title and the data arrays of its images (at most 4 each)."""
    panels = []
    for a, ax in enumerate(fig.axes[:2 * MAX_ALGORITHMS]):
        if not ax.get_visible():
            continue
        keys = []
        for j, image in enumerate(list(ax.images)[:4]):
            try:
                array = np.ma.getdata(image.get_array())
                array = np.array(array, dtype=np.float32)
            except Exception:  # noqa: BLE001 - an odd artist is a panel without data
                continue
            if array.ndim in (2, 3) and array.size <= 1_000_000:
                key = f"panel_{a}_{j}"
                record.tensors[key] = torch.from_numpy(np.ascontiguousarray(array))
                keys.append(key)
        panels.append({"title": plain(ax.get_title()), "images": keys})
    record.data["panels"] = plain(panels)


# --------------------------------------------------------------------------- names

# Canonical algorithms, and the normalised names (lower-case letters and digits) that
# mean them: exact aliases first, then substrings in this order (guided Grad-CAM before
# Grad-CAM, noise tunnels before their base methods).
ALIASES: dict[str, tuple[str, ...]] = {
    "IntegratedGradients": ("ig", "intgrad", "integratedgradient", "integratedgradients"),
    "Saliency": ("saliency", "saliencymap", "vanillagradient", "vanillagradients",
                 "gradient", "gradients"),
    "InputXGradient": ("ixg", "inputxgradient", "inputtimesgradient", "gradientxinput",
                       "gradienttimesinput", "gradxinput", "inputxgrad"),
    "GuidedBackprop": ("gbp", "guidedbackprop", "guidedbackpropagation"),
    "Deconvolution": ("deconv", "deconvolution"),
    "GradCam": ("gradcam", "layergradcam"),
    "GuidedGradCam": ("ggc", "guidedgradcam"),
    "Occlusion": ("occlusion",),
    "GradientShap": ("gradshap", "gradientshap", "gshap"),
    "NoiseTunnel": ("noisetunnel", "smoothgrad", "smoothgradsq", "vargrad", "nt"),
    "DeepLift": ("deeplift",),
    "DeepLiftShap": ("deepliftshap",),
    "Lime": ("lime",),
    "KernelShap": ("kernelshap",),
    "FeatureAblation": ("featureablation", "ablation"),
    "ShapleyValueSampling": ("shapleyvaluesampling", "shapleyvalues", "shapley"),
    "LRP": ("lrp", "layerwiserelevancepropagation"),
    "FeaturePermutation": ("featurepermutation",),
}
_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("noisetunnel", "NoiseTunnel"), ("smoothgrad", "NoiseTunnel"), ("vargrad", "NoiseTunnel"),
    ("guidedgradcam", "GuidedGradCam"), ("gradcam", "GradCam"),
    ("guidedbackprop", "GuidedBackprop"), ("deconvolution", "Deconvolution"),
    ("deepliftshap", "DeepLiftShap"), ("deeplift", "DeepLift"),
    ("gradientshap", "GradientShap"), ("gradshap", "GradientShap"),
    ("kernelshap", "KernelShap"), ("integratedgradient", "IntegratedGradients"),
    ("inputxgradient", "InputXGradient"), ("occlusion", "Occlusion"),
    ("saliency", "Saliency"), ("featureablation", "FeatureAblation"), ("lime", "Lime"),
    ("shapley", "ShapleyValueSampling"),
)
_EXACT = {alias: algo for algo, aliases in ALIASES.items() for alias in aliases}


def _normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.casefold())


def algorithm_of(name: str) -> str | None:
    """The canonical algorithm a key names (``"Integrated Gradients"`` ->
    ``"IntegratedGradients"``), or None when the grader does not recognise it."""
    norm = _normalise_name(name)
    if norm in _EXACT:
        return _EXACT[norm]
    for part, algo in _SUBSTRINGS:
        if part in norm:
            return algo
    return None


# --------------------------------------------------------------------------- grader maps


class _Maps:
    """The grader's maps for the reference record's input and target, computed lazily
    with the trusted model and kept for the three checks of one student."""

    def __init__(self, ctx: CheckContext, reference: Record) -> None:
        self.model = ctx.trusted_model()
        self.inputs = reference.tensors["inputs"].float()
        self.target = int(reference.data["target"])
        self.n_steps = int(reference.data["n_steps"])
        self.seed = int(reference.data["seeds"][0])
        self._cache: dict[str, Any] = {}

    def get(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._cache[key] = fn()
        return self._cache[key]

    def grad(self) -> torch.Tensor:
        return self.get("grad", lambda: Saliency(self.model).attribute(
            self.inputs.clone(), target=self.target, abs=False).detach())

    def guided_backprop(self) -> torch.Tensor:
        return self.get("gbp", lambda: GuidedBackprop(self.model).attribute(
            self.inputs.clone(), target=self.target).detach())

    def deconvolution(self) -> torch.Tensor:
        return self.get("deconv", lambda: Deconvolution(self.model).attribute(
            self.inputs.clone(), target=self.target).detach())

    def integrated(self, method: str = "gausslegendre", n_steps: int | None = None
                   ) -> torch.Tensor:
        steps = n_steps or self.n_steps
        return self.get(f"ig-{method}-{steps}", lambda: IntegratedGradients(self.model).attribute(
            self.inputs.clone(), target=self.target, n_steps=steps, method=method).detach())

    def sample_pixels(self, student: torch.Tensor) -> list[tuple[int, int, int]]:
        """(channel, row, column) of the map's largest and smallest value and four pixels
        drawn from the variant's seed."""
        flat = student[0]
        height, width = flat.shape[1:]
        picks = [int(flat.argmax()), int(flat.argmin())]
        rng = random.Random(f"{self.seed}:occlusion")
        picks += [rng.randrange(flat.numel()) for _ in range(4)]
        return [(i // (height * width), i // width % height, i % width) for i in picks]

    def patch_logits(self, patches: list[tuple[int, int, int, int, int, int, float]]
                     ) -> torch.Tensor:
        """F(x) - F(x with the patch (c0, y0, x0, wc, wy, wx) set to the constant b), for
        every class: ``(len(patches), classes)``, 32 rows per pass."""
        rows = []
        for c0, y0, x0, wc, wy, wx, value in patches:
            occluded = self.inputs.clone()
            occluded[:, c0:c0 + wc, y0:y0 + wy, x0:x0 + wx] = value
            rows.append(occluded)
        with torch.inference_mode():
            start = self.get("logits", lambda: self.model(self.inputs)[0].double())
            out = torch.cat([self.model(torch.cat(rows[i:i + 32]))
                             for i in range(0, len(rows), 32)]).double()
        return start - out

    def patch_drops(self, patches: list[tuple[int, int, int, int, int, int]],
                    baseline: float = 0.0, target: int | None = None) -> torch.Tensor:
        """The target's logit drop for each patch set to ``baseline``."""
        drops = self.patch_logits([(*p, baseline) for p in patches])
        return drops[:, self.target if target is None else target]

    def cams(self) -> dict[str, torch.Tensor]:
        """Grad-CAM (before ReLU) of every conv layer, block and stage, in one pass."""
        return self.get("cams", self._cams)

    def _cams(self) -> dict[str, torch.Tensor]:
        layers = {n: m for n, m in self.model.named_modules()
                  if n and (isinstance(m, torch.nn.Conv2d) or type(m).__name__ in
                            ("BasicBlock", "Bottleneck") or n in ("layer1", "layer2", "layer3",
                                                                 "layer4", "maxpool"))}
        outputs: dict[str, torch.Tensor] = {}

        def keep(name: str) -> Callable[..., None]:
            def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
                out.retain_grad()
                outputs[name] = out
            return hook

        handles = [m.register_forward_hook(keep(n)) for n, m in layers.items()]
        try:
            with torch.enable_grad():
                logits = self.model(self.inputs.clone())
                logits[:, self.target].sum().backward()
        finally:
            for handle in handles:
                handle.remove()
            self.model.zero_grad(set_to_none=True)
        cams = {}
        for name, out in outputs.items():
            if out.grad is None:
                continue
            weights = out.grad.mean(dim=(2, 3), keepdim=True)
            cams[name] = (weights * out.detach()).sum(dim=1, keepdim=True)
        return cams


def _views(candidate: torch.Tensor, shape: tuple[int, ...]) -> list[torch.Tensor]:
    """``candidate`` as a map of ``shape``: (1, 3, H, W) as is (channels repeated from
    one), (1, 1, H, W) as one channel or the channel sum."""
    if tuple(candidate.shape) == tuple(shape):
        return [candidate]
    if shape[1] == 1:
        return [candidate[:, :1], candidate.sum(dim=1, keepdim=True)]
    if candidate.shape[1] == 1:
        return [candidate.expand(shape)]
    return []


def _equal(student: torch.Tensor, candidate: torch.Tensor) -> bool:
    for view in _views(candidate, tuple(student.shape)):
        scale = float(view.abs().max())
        if float((student.double() - view.double()).abs().max()) <= EXACT_RTOL * scale + 1e-12:
            return True
    return False


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten().double()
    b = b.flatten().double()
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else 0.0


def _best_r(student: torch.Tensor, candidates: list[torch.Tensor]) -> float:
    best = -1.0
    for candidate in candidates:
        for view in _views(candidate, tuple(student.shape)):
            best = max(best, _pearson(student, view))
    return best


_MODES: tuple[tuple[str, bool | None], ...] = (
    ("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True),
    ("bicubic", False), ("bicubic", True), ("area", None),
)


def _upsampled(cam: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    out = []
    for mode, align in _MODES:
        kwargs = {} if align is None else {"align_corners": align}
        out.append(F.interpolate(cam, size=size, mode=mode, **kwargs))
    return out


# --------------------------------------------------------------------------- verifiers
# Each verifier: (student map, its maps under the same name in `repeat` and `reseed`,
# the grader's maps) -> None when verified, else why not.


def _exact(*candidates: Callable[[_Maps], torch.Tensor]) -> Callable[..., str | None]:
    def verify(student: torch.Tensor, again: dict[str, Any], maps: _Maps) -> str | None:
        if any(_equal(student, candidate(maps)) for candidate in candidates):
            return None
        return "differs from the grader's map of this algorithm for the same input and target"
    return verify


def _verify_ig(student: torch.Tensor, again: dict[str, Any], maps: _Maps) -> str | None:
    methods = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
               "riemann_middle")
    if any(_equal(student, maps.integrated(method)) for method in methods):
        return None
    return (f"differs from IntegratedGradients with a zero baseline, the given target and "
            f"n_steps={maps.n_steps}")


def _verify_grad_cam(student: torch.Tensor, again: dict[str, Any], maps: _Maps) -> str | None:
    size = tuple(student.shape[-2:])
    for cam in maps.cams().values():
        for raw in (cam, F.relu(cam)):
            if any(_equal(student, up) for up in _upsampled(raw, size)):
                return None
    return ("is not the Grad-CAM of any conv layer or block of the model for the given "
            "target, upsampled to the input size")


def _verify_guided_grad_cam(student: torch.Tensor, again: dict[str, Any], maps: _Maps
                            ) -> str | None:
    size = tuple(student.shape[-2:])
    guided = maps.guided_backprop()
    for cam in maps.cams().values():
        if any(_equal(student, guided * up) for up in _upsampled(F.relu(cam), size)):
            return None
    return ("is not GuidedBackprop times the Grad-CAM of a conv layer or block of the model "
            "for the given target")


def _changes(profile: torch.Tensor) -> frozenset[int]:
    """Positions p (1..L-1) where a map's values change between p-1 and p along its
    last dimension (``profile``: (..., L))."""
    diff = (profile[..., 1:] - profile[..., :-1]).abs()
    diff = diff.reshape(-1, diff.shape[-1]).amax(dim=0)
    tol = 1e-6 * float(profile.abs().max())
    return frozenset(int(i) + 1 for i in torch.nonzero(diff > tol).flatten())


def _grid_changes(length: int, window: int, stride: int) -> frozenset[int]:
    """Where Captum's Occlusion map changes along one dimension (window, stride): where a
    window starts or ends (Captum places ``ceil((length - window) / stride) + 1`` windows
    at multiples of ``stride``, the last one clipped)."""
    count = math.ceil((length - window) / stride) + 1
    starts = {j * stride for j in range(1, count)}
    ends = {j * stride + window for j in range(count)}
    return frozenset(p for p in starts | ends if 0 < p < length)


def _grid_candidates(length: int, changes: frozenset[int]) -> list[tuple[int, int]]:
    """(window, stride) pairs whose Occlusion grid changes exactly at ``changes``,
    fewest windows first."""
    found = []
    for window in range(1, length + 1):
        for stride in range(1, window + 1):
            if _grid_changes(length, window, stride) == changes:
                found.append((math.ceil((length - window) / stride) + 1, window, stride))
    return [(w, s) for _, w, s in sorted(found)]


def _covering(position: int, window: int, stride: int, length: int) -> list[int]:
    """Start positions of the Occlusion windows (Captum's placement) covering ``position``."""
    count = math.ceil((length - window) / stride) + 1
    return [j * stride for j in range(count) if j * stride <= position < j * stride + window]


def _fit_baselines(maps: _Maps, window: tuple[int, int, int], value: float,
                   tol: float) -> list[float]:
    """Constants b for which the first patch's logit drop equals ``value`` (the map's
    corner, covered by that patch alone): a scan of [-3, 3] in steps of 1/4 (the
    normalised inputs' range and more) and of the constants students pick (the input's
    mean, min, max), then Illinois steps on each bracket, all brackets per pass."""
    wc, wy, wx = window
    x = maps.inputs
    specials = [float(x.mean()), float(x.min()), float(x.max())]
    grid = sorted({i / 4 - 3.0 for i in range(25)} | set(specials))
    drops = maps.patch_logits([(0, 0, 0, wc, wy, wx, b) for b in grid])[:, maps.target]
    g = [float(d) - value for d in drops]
    roots = [grid[i] for i in range(len(grid)) if abs(g[i]) <= tol]
    brackets = [[grid[i], g[i], grid[i + 1], g[i + 1], 0] for i in range(len(grid) - 1)
                if g[i] * g[i + 1] < 0 and abs(g[i]) > tol and abs(g[i + 1]) > tol]
    for _ in range(OCCLUSION_FIT_STEPS):
        if not brackets:
            break
        points = [(lo * g_hi - hi * g_lo) / (g_hi - g_lo) for lo, g_lo, hi, g_hi, _ in brackets]
        values = maps.patch_logits([(0, 0, 0, wc, wy, wx, b) for b in points])[:, maps.target]
        left = []
        for bracket, point, drop in zip(brackets, points, values, strict=True):
            lo, g_lo, hi, g_hi, side = bracket
            g_point = float(drop) - value
            if abs(g_point) <= tol:
                roots.append(point)
                continue
            if g_point * g_lo < 0:  # the root is in [lo, point]
                bracket[:] = [lo, g_lo / 2 if side == -1 else g_lo, point, g_point, -1]
            else:
                bracket[:] = [point, g_point, hi, g_hi / 2 if side == 1 else g_hi, 1]
            left.append(bracket)
        brackets = left
    return roots


def _verify_occlusion(student: torch.Tensor, again: dict[str, Any], maps: _Maps) -> str | None:
    channels, height, width = student.shape[1:]
    rows = _grid_candidates(height, _changes(student.transpose(-1, -2)))
    cols = _grid_candidates(width, _changes(student))
    if not rows or not cols:
        return ("shows no occlusion grid (a sliding window's patches); use "
                "Occlusion(model).attribute(inputs, sliding_window_shapes=..., strides=...)")
    input_channels = maps.inputs.shape[1]
    per_channel = channels > 1 and not bool((student - student[:, :1]).abs().max() == 0)
    scale = float(student.abs().max())
    tol = EXACT_RTOL * scale + 1e-12
    wc = 1 if per_channel else input_channels
    factors = [1.0] if channels > 1 or per_channel else [1.0, float(input_channels)]
    pixels = maps.sample_pixels(student)
    got = torch.tensor([float(student[0, c if channels > 1 else 0, y, x])
                        for c, y, x in pixels], dtype=torch.float64)
    got_corner = float(student[0, 0, 0, 0])

    def agrees(value: torch.Tensor | float, expected: torch.Tensor | float, f: float) -> bool:
        return float(torch.as_tensor(value - f * expected).abs().max()) <= tol

    def explains(combo: tuple[int, int, int, int], baseline: float, target: int, f: float
                 ) -> bool:
        # Each sampled pixel's value is the mean logit drop of the patches covering it,
        # as Captum computes it: a few dozen rows instead of the student's sweep.
        wy, sy, wx, sx = combo
        patches, groups = [], []
        for c, y, x in pixels:
            group = [(c if per_channel else 0, y0, x0, wc, wy, wx)
                     for y0 in _covering(y, wy, sy, height)
                     for x0 in _covering(x, wx, sx, width)]
            groups.append((len(patches), len(group)))
            patches += group
        drops = maps.patch_drops(patches, baseline, target)
        expected = torch.stack([drops[i:i + n].mean() for i, n in groups])
        return agrees(got, expected, f)

    # The grid is ambiguous (every stride-1 window changes everywhere): the corner pixel
    # is covered by the first window alone whatever the stride, so one row per window
    # keeps the few combinations whose first patch explains the corner.
    combos = sorted(((wy, sy, wx, sx) for wy, sy in rows for wx, sx in cols),
                    key=lambda c: (c[0] != c[2] or c[1] != c[3], c[0] // c[1] * (c[2] // c[3])))
    combos = combos[:MAX_OCCLUSION_GRIDS]
    windows = list(dict.fromkeys((wy, wx) for wy, _, wx, _ in combos))
    corner = maps.patch_logits([(0, 0, 0, wc, wy, wx, 0.0) for wy, wx in windows])
    row_of = {w: i for i, w in enumerate(windows)}
    # 1. Zero baseline (Captum's default).
    for combo in combos:
        drop = float(corner[row_of[combo[0], combo[2]], maps.target])
        for f in factors:
            if agrees(got_corner, drop, f) and explains(combo, 0.0, maps.target, f):
                return None
    # 2. A constant baseline (``baselines=inputs.mean()``, -1, ...), fitted on the corner.
    for wy, wx in windows[:OCCLUSION_FIT_WINDOWS]:
        for f in factors:
            for baseline in _fit_baselines(maps, (wc, wy, wx), got_corner / f, tol / f):
                for combo in combos:
                    if (combo[0], combo[2]) == (wy, wx) and explains(combo, baseline,
                                                                     maps.target, f):
                        return None
    # 3. Another class's occlusion map (zero baseline): the target was not the one given.
    tried = 0
    for combo in combos:
        drops = corner[row_of[combo[0], combo[2]]]
        for f in factors:
            close = (drops * f - got_corner).abs()
            close[maps.target] = math.inf
            for k in close.argsort()[:3].tolist():
                if tried >= OCCLUSION_OTHER_CLASSES or float(close[k]) > tol:
                    break
                tried += 1
                if explains(combo, 0.0, k, f):
                    return (f"is Captum's Occlusion of class {k}, not of the given target "
                            f"{maps.target}")
    wy, sy, wx, sx = combos[0]
    return _HandGraded(
        f"shows an occlusion grid (window {wy}x{wx}, stride {sy}x{sx}) but neither a zero nor "
        "a constant baseline explains its values for the given target (a blurred-image "
        "baseline, say, cannot be recomputed)")


class _HandGraded(str):
    """A verifier's answer for a map that looks like its algorithm but that the grader
    cannot recompute: listed "graded by hand", never counted automatically."""


def _unchanged(student: torch.Tensor, other: torch.Tensor) -> bool:
    return other.shape == student.shape and float((other - student).abs().max()) <= \
        SEED_CHANGE_RTOL * float(student.abs().max())


def _random_problem(student: torch.Tensor, again: dict[str, Any]) -> str | None:
    """Why a map under a random algorithm's name is not random, or None. Reproducibility
    (same seed, same map) is not asked here: ``outputs`` asks it."""
    repeat, reseed = again.get("repeat"), again.get("reseed")
    if repeat is None or reseed is None or repeat.shape != student.shape \
            or reseed.shape != student.shape:
        return "was not returned again by the calls with the same and with another seed"
    if _unchanged(student, repeat) and _unchanged(student, reseed):
        return ("was the same map in three calls with two different seeds: a random "
                "algorithm draws from generators seeded with `seed` (not a fixed seed), and "
                "a map that never changes cannot be told from a deterministic one")
    return None


def _ig_maps(maps: _Maps) -> list[torch.Tensor]:
    """Zero-baseline IG at the given n_steps and at 50, with every Captum method."""
    methods = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
               "riemann_middle")
    return [maps.integrated(m, n) for n in dict.fromkeys((maps.n_steps, 50)) for m in methods]


def _verify_gradient_shap(student: torch.Tensor, again: dict[str, Any], maps: _Maps
                          ) -> str | None:
    problem = _random_problem(student, again)
    if problem:
        return problem
    if any(_equal(student, ig) for ig in _ig_maps(maps)):
        return "is Integrated Gradients with a zero baseline, not GradientShap"
    r = _best_r(student, [maps.integrated()])
    if r >= GRADIENT_SHAP_MIN_R:
        return None
    return _HandGraded(
        f"changes with the seed but correlates only {r:.2f} with the grader's IG (below "
        f"{GRADIENT_SHAP_MIN_R}; random maps stay below 0.07, and GradientShap with a few "
        "noise baselines and few samples can too)")


def _verify_noise_tunnel(student: torch.Tensor, again: dict[str, Any], maps: _Maps
                         ) -> str | None:
    problem = _random_problem(student, again)
    if problem:
        return problem
    grad = maps.grad()
    ig = maps.integrated()
    plain_maps = [ig, grad.abs(), grad, maps.inputs * grad, maps.guided_backprop()]
    if any(_equal(student, m) for m in plain_maps):
        return "is a noise-free map (stdevs 0?), not a noise tunnel"
    r = _best_r(student, [*plain_maps, ig**2, grad**2])
    if r >= NOISE_TUNNEL_MIN_R:
        return None
    return _HandGraded(
        f"changes with the seed but correlates only {r:.2f} at best with the grader's "
        f"noise-free maps for the given target (below {NOISE_TUNNEL_MIN_R})")


VERIFIERS: dict[str, Callable[[torch.Tensor, dict[str, Any], _Maps], str | None]] = {
    "Saliency": _exact(lambda m: m.grad().abs(), lambda m: m.grad()),
    "InputXGradient": _exact(lambda m: m.inputs * m.grad()),
    "GuidedBackprop": _exact(lambda m: m.guided_backprop()),
    "Deconvolution": _exact(lambda m: m.deconvolution()),
    "IntegratedGradients": _verify_ig,
    "GradCam": _verify_grad_cam,
    "GuidedGradCam": _verify_guided_grad_cam,
    "Occlusion": _verify_occlusion,
    "GradientShap": _verify_gradient_shap,
    "NoiseTunnel": _verify_noise_tunnel,
}
HAND_GRADED_WHY = ("Captum cannot run it on torchvision's ResNet-34 or the grader cannot "
                   "recompute its map")


# --------------------------------------------------------------------------- checks


def _entries(record: Record) -> list[dict[str, Any]]:
    require_call(record, "compare", POINTER)
    entries = record.data.get("entries")
    if record.data.get("returned") != "builtins.dict":
        raise CheckFailed(f"{POINTER}: returned {record.data.get('returned')}; return a dict "
                          "{algorithm name: attributions tensor}")
    if not isinstance(entries, list) or not entries:
        raise CheckFailed(f"{POINTER}: returned an empty dict; add one entry per algorithm")
    return entries


def _problem(record: Record, entry: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """Why one entry is not a valid map, or None."""
    name, key = entry.get("name"), entry.get("tensor")
    info = record.data.get("types", {}).get(key, {})
    tensor = record.tensors.get(key)
    if entry.get("name_is_str") is not True:
        return f"key {name} is not a str; key each map by its algorithm's name"
    if tensor is None:
        return f"{name!r} is {info.get('type')}, not a torch.Tensor"
    if info.get("numpy"):
        return f"{name!r} is a numpy array; return torch tensors"
    allowed = {shape, (shape[0], 1, *shape[2:])}
    if tuple(tensor.shape) not in allowed:
        return (f"{name!r} has shape {tuple(tensor.shape)}, not the input's {shape}; upsample "
                "layer methods with LayerAttribution.interpolate(attr, inputs.shape[-2:])")
    if not tensor.is_floating_point():
        return f"{name!r} has dtype {tensor.dtype}; return float attributions"
    if not torch.isfinite(tensor).all():
        return f"{name!r} holds NaN or infinite values"
    return None


def _same_map(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two maps are one map up to a positive or negative scale factor."""
    if a.shape != b.shape:
        return False
    a = a.double() / max(float(a.abs().max()), 1e-30)
    b = b.double() / max(float(b.abs().max()), 1e-30)
    return bool(torch.allclose(a, b, rtol=0, atol=SAME_MAP_ATOL)
                or torch.allclose(a, -b, rtol=0, atol=SAME_MAP_ATOL))


_VERDICTS: dict[tuple[int, int], tuple[Record, Record, dict[str, Any]]] = {}


def verdict(student: Record, reference: Record, ctx: CheckContext) -> dict[str, Any]:
    """Which entries are verified as which algorithm, and why the others are not.

    Returns ``{"verified": {algorithm: name}, "failed": [(name, algorithm, why)],
    "hand": [(name, algorithm or None, why)], "duplicates": [(name, algorithm)]}``.
    Kept for the other checks of the same student (the records are held, so the ids
    stay theirs).
    """
    key = (id(student), id(reference))
    cached = _VERDICTS.get(key)
    if cached is not None and cached[0] is student and cached[1] is reference:
        return cached[2]
    entries = _entries(student)
    shape = tuple(reference.data["input_shape"])
    maps = _Maps(ctx, reference)
    verified: dict[str, str] = {}
    failed: list[tuple[str, str, str]] = []
    hand: list[tuple[str, str | None, str]] = []
    duplicates: list[tuple[str, str]] = []
    repeats: list[str] = []
    seen: list[tuple[str, torch.Tensor]] = []
    for i, entry in enumerate(entries):
        name = str(entry.get("name"))
        if _problem(student, entry, shape) is not None:
            continue  # not a usable (name, map) pair; `outputs` says why
        tensor = student.tensors[entry["tensor"]].double()
        same = next((other for other, m in seen if _same_map(m, tensor)), None)
        seen.append((name, tensor))
        if same is not None:
            repeats.append(f"{name!r} repeats {same!r}")
            continue
        algorithm = algorithm_of(name)
        if algorithm is None or algorithm not in VERIFIERS:
            hand.append((name, algorithm, f"not recognised, or {HAND_GRADED_WHY}"))
            continue
        if algorithm in verified:
            duplicates.append((name, algorithm))
            continue
        again = {c: student.tensors[f"{c}_{i}"].double() for c in CALLS[1:]
                 if f"{c}_{i}" in student.tensors and student.tensors[f"{c}_{i}"]
                 .is_floating_point()}
        # An all-zero map says nothing (a ReLU'd Grad-CAM of a 1x1 stage can be zero for
        # every class): it is never verified.
        why = ("is all zeros" if not bool(tensor.abs().max() > 0)
               else VERIFIERS[algorithm](tensor, again, maps))
        if why is None:
            verified[algorithm] = name
        elif isinstance(why, _HandGraded):
            hand.append((name, algorithm, str(why)))
        else:
            failed.append((name, algorithm, why))
    failed = [f for f in failed if f[1] not in verified]
    hand = [h for h in hand if h[1] is None or h[1] not in verified]
    result = {"verified": verified, "failed": failed, "hand": hand, "duplicates": duplicates,
              "repeats": repeats}
    if len(_VERDICTS) > 8:
        _VERDICTS.clear()
    _VERDICTS[key] = (student, reference, result)
    return result


def check_algorithms(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    found = verdict(student, reference, ctx)
    verified = found["verified"]
    notes = list(found["repeats"][:4])
    notes += [f"{name!r} ({algo}) {why}" for name, algo, why in found["failed"][:4]]
    notes += [f"{name!r} counted once as {algo}" for name, algo in found["duplicates"][:3]]
    unknown = [n for n, _, why in found["hand"] if why.startswith("not recognised")]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown[:6])
        notes.append(f"{listed}: graded by hand (not recognised, or {HAND_GRADED_WHY})")
    notes += [f"{name!r} ({algo}) {why}: graded by hand" for name, algo, why in found["hand"]
              if not why.startswith("not recognised")][:4]
    count = len(verified)
    summary = (f"{count} algorithms verified against the grader's maps "
               f"(target {reference.data['target']}, n_steps {reference.data['n_steps']})"
               + (f": {', '.join(f'{n!r} = {a}' for a, n in verified.items())}" if count else ""))
    if count >= REQUIRED_ALGORITHMS:
        return passed(summary + (f"; {'; '.join(notes)}" if notes else ""))
    advice = (f"compare at least {REQUIRED_ALGORITHMS} different Captum algorithms (e.g. "
              "Saliency, IntegratedGradients, GradientShap, Occlusion, LayerGradCam, "
              "NoiseTunnel), each under its own name, for the target, n_steps and seed you "
              "are given")
    return partial(count / REQUIRED_ALGORITHMS, "; ".join([summary, *notes, advice]))


def _gate(student: Record, reference: Record, ctx: CheckContext, what: str,
          problems: list[str] | None = None) -> None:
    """Raise unless the main check passes: a format or a figure is worth nothing without
    the algorithms behind it (the message still lists ``problems``)."""
    verified = verdict(student, reference, ctx)["verified"]
    if len(verified) < REQUIRED_ALGORITHMS:
        detail = f"; also: {'; '.join(problems[:6])}" if problems else ""
        raise CheckFailed(f"{what} scores only when 'algorithms' passes ({len(verified)} of "
                          f"{REQUIRED_ALGORITHMS} algorithms verified so far){detail}")


def check_outputs(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    entries = _entries(student)
    shape = tuple(student.data.get("input_shape") or reference.data["input_shape"])
    problems = [p for p in (_problem(student, e, shape) for e in entries) if p]
    _gate(student, reference, ctx, "the output format", problems)
    for i, entry in enumerate(entries):
        name = entry.get("name")
        if _problem(student, entry, shape) or algorithm_of(str(name)) not in RANDOM_ALGORITHMS:
            continue  # the seed calls run only for random algorithms
        first = student.tensors[entry["tensor"]].double()
        repeat, reseed = (student.tensors.get(f"{c}_{i}") for c in CALLS[1:])
        if repeat is None or reseed is None:
            problems.append(f"{name!r} was not returned again with the same and another seed")
            continue
        if not _unchanged(first, repeat.double()):
            problems.append(f"{name!r} changed between two calls with the same seed: seed "
                            "numpy too (np.random.seed(seed)), not only torch: Captum's "
                            "GradientShap draws its baselines and coefficients with numpy")
        elif _unchanged(first, reseed.double()):
            problems.append(f"{name!r} did not change with another seed: seed torch and numpy "
                            "with `seed`, not with a fixed number")
    if not problems:
        return passed(f"all {len(entries)} maps are finite, shaped like the input, and the "
                      "random ones the same for the same seed and other for another")
    return partial(1 - min(len(problems), len(entries)) / len(entries),
                   "; ".join(problems[:6]) + f"; each map must be a finite float tensor shaped "
                   f"like the input {shape}; a random algorithm's map the same for the "
                   "same seed and other for another")


def _views_2d(tensor: torch.Tensor) -> list[torch.Tensor]:
    """2-D views of a (1, C, H, W) map that a panel may show."""
    maps = tensor.double()[0]
    return [maps.sum(0), maps.abs().sum(0), maps.abs().amax(0), maps.sum(0).abs(),
            maps.sum(0).clamp(min=0), -maps.sum(0).clamp(max=0)]


def _panel_shows(image: torch.Tensor, tensor: torch.Tensor) -> bool:
    """Whether an axes image's data is ``tensor`` (one of its 2-D views)."""
    data = image.double()
    if data.dim() == 3:
        if data.shape[-1] in (3, 4):
            data = data[..., :3].mean(-1)
        elif data.shape[0] in (1, 3):
            data = data.mean(0)
        else:
            return False
    height, width = tensor.shape[-2:]
    if tuple(data.shape) != (height, width):
        data = F.interpolate(data[None, None], size=(height, width), mode="area")[0, 0]
    if not torch.isfinite(data).all():
        return False
    for view in _views_2d(tensor):
        if float(view.std()) <= 1e-9 * max(float(view.abs().max()), 1e-30):
            if float(data.std()) <= 1e-6 * max(float(data.abs().max()), 1e-30):
                return True
            continue
        if abs(_pearson(data, view)) >= PANEL_MIN_R:
            return True
    return False


def check_figure(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    require_figure(student, "plot", "comparison", POINTER_PLOT, "return the Figure")
    names = [str(n) for n in student.data.get("plot_names", [])]
    if not names:
        raise CheckFailed(f"{POINTER_PLOT}: no algorithms were given to plot")
    _gate(student, reference, ctx, "the figure")
    panels = [p for p in student.data.get("panels", []) if isinstance(p, dict)]
    missing, wrong = [], []
    for i, name in enumerate(names):
        norm = _normalise_name(name)
        titled = [p for p in panels if norm and norm in _normalise_name(str(p.get("title")))]
        if not titled:
            missing.append(name)
            continue
        given = student.tensors.get(f"given_{i}")
        images = [student.tensors[k] for p in titled for k in p.get("images", [])
                  if k in student.tensors]
        if given is None or given.dim() != 4 or not any(
                _panel_shows(image, given) for image in images):
            wrong.append(name)
    if not missing and not wrong:
        return passed(f"one panel per algorithm ({len(names)}), each showing its map")
    notes = []
    if missing:
        notes.append(f"no image panel titled with {', '.join(map(repr, missing[:6]))}; draw "
                     "one panel per entry of the dict and title it with the algorithm's name "
                     "(the dict key)")
    if wrong:
        notes.append(f"the panels titled {', '.join(map(repr, wrong[:6]))} do not show the "
                     "map given under that name; draw each entry's own attributions")
    return partial(1 - (len(missing) + len(wrong)) / len(names), "; ".join(notes))


CHECKS = {
    "algorithms": check_algorithms,
    "outputs": check_outputs,
    "figure": check_figure,
}
