"""Task 9 checks (grader/tasks/comparison.py): thin comparisons lose the right points.

Every map is judged against the grader's own map of its algorithm for the probe's target
(rank 2-10 of the trusted model's ranking), n_steps and seeds, on the practice variant and
on the tests' graded variant.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion

from grader.check.checking import CheckContext
from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS, ProbeSettings
from grader.tasks import comparison as task
from tests.harness.hostile import HOSTILE_CLASSES, params

# The variants call Captum as students do; its notes on inputs and ReLU hooks are noise here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")

FULL = {c.name: c.points for c in checks_of("comparison")}  # full marks, check by check
SIZE = DEFAULT_SETTINGS.comparison_size
GATED = "scores only when 'algorithms' passes"
VARIANTS = ("practice", "graded")

# Five one-pass algorithms (a valid solution, cheap enough for many variants); the wrong
# variants below edit its result or the figure.
FAST = '''
from captum.attr import Deconvolution


def compare_attributions(model, inputs, target, *, n_steps=50, seed=0):
    cam = LayerGradCam(model, model.layer4).attribute(inputs, target=target)
    cam = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:])).expand_as(inputs)
    result = {
        "Saliency": Saliency(model).attribute(inputs, target=target),
        "InputXGradient": InputXGradient(model).attribute(inputs, target=target),
        "GuidedBackprop": GuidedBackprop(model).attribute(inputs, target=target),
        "Deconvolution": Deconvolution(model).attribute(inputs, target=target),
        "GradCAM": cam,
    }
    return {name: value.detach().clone() for name, value in result.items()}
'''


def _then(body: str) -> str:
    """FAST, then compare_attributions redefined to edit its ``result``."""
    return (FAST + "\n\nimport numpy as np\nfrom captum.attr import IntegratedGradients, "
            "NoiseTunnel, GuidedGradCam\n\n_fast = compare_attributions\n\n\n"
            "def compare_attributions(model, inputs, target, **kwargs):\n"
            "    result = _fast(model, inputs, target, **kwargs)\n"
            "    n_steps, seed = kwargs.get('n_steps', 50), kwargs.get('seed', 0)\n" + body)


def _plot_then(body: str) -> str:
    """FAST, then plot_comparison redefined to edit the reference's figure ``fig``."""
    return (FAST + "\n\n_plot = plot_comparison\n\n\n"
            "def plot_comparison(attributions, image):\n"
            "    fig = _plot(attributions, image)\n" + body)


def _instead_of_deconvolution(name: str, expression: str, before: str = "") -> str:
    """FAST with Deconvolution replaced by ``expression`` under ``name``."""
    return _then(before + "    del result['Deconvolution']\n"
                 f"    result[{name!r}] = ({expression}).detach()\n    return result\n")


GRADIENT_SHAP = ("GradientShap(model).attribute(inputs, baselines=torch.randn(8, "
                 "*inputs.shape[1:]), n_samples=n_steps, target=target)")
# Zero and input baselines (the Captum tutorial's): correlates with IG whatever the seed.
GRADIENT_SHAP_ZERO = ("GradientShap(model).attribute(inputs, baselines=torch.cat([inputs * 0, "
                      "inputs]), n_samples=20, stdevs=0.05, target=target)")
OCCLUSION_8 = ("Occlusion(model).attribute(inputs, sliding_window_shapes=(3, 8, 8), "
               "strides=(3, 4, 4), target={target}, baselines={baseline})")
BLURRED = ("    blurred = torch.nn.functional.avg_pool2d(inputs, 7, 1, 3, "
           "count_include_pad=False)\n")
SEEDED = "    torch.manual_seed(seed)\n    np.random.seed(seed)\n"

# Each wrong implementation: (source appended to comparison.py,
# {failing check: words in its message}, {failing check: expected fraction}).
# Since issue 13, outputs and figure pay only when algorithms passes (GATED).
WRONG = {
    "four_algorithms": (
        _then("    del result['GradCAM']\n    return result\n"),
        {"algorithms": "4 algorithms verified", "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "one_map_five_names": (
        _then("    return {name: result['Saliency'].clone() for name in result}\n"),
        {"algorithms": "'InputXGradient' repeats 'Saliency'", "outputs": GATED,
         "figure": GATED},
        {"algorithms": 1 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "scaled_copies": (
        _then("    return {name: result['InputXGradient'] * -(i + 1)\n"
              "            for i, name in enumerate(result)}\n"),
        {"algorithms": "0 algorithms verified", "outputs": GATED, "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "numpy_maps": (
        _then("    return {name: value.numpy() for name, value in result.items()}\n"),
        {"algorithms": "0 algorithms verified", "outputs": "numpy array", "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "channel_summed_maps": (
        # (H, W) maps: not shaped like the input.
        _then("    return {name: value[0].sum(0) for name, value in result.items()}\n"),
        {"algorithms": "0 algorithms verified", "outputs": f"has shape ({SIZE}, {SIZE})",
         "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "figure_without_titles": (
        _plot_then("    for ax in fig.axes:\n        ax.set_title('')\n    return fig\n"),
        {"figure": "title it with the algorithm's name"},
        {"figure": 0.0},
    ),
    "figure_missing_panels": (
        _plot_then("    for ax in fig.axes[3:]:\n        fig.delaxes(ax)\n    return fig\n"),
        # Axes 0 is the original image: two algorithm panels are left.
        {"figure": "'GuidedBackprop', 'Deconvolution', 'GradCAM'"},
        {"figure": 2 / 5},
    ),
    "figure_panels_redrawn_with_noise": (
        # Right titles over images of no map: titles are hints, content is graded.
        _plot_then("    import numpy as np\n"
                   "    noise = np.random.default_rng(0)\n"
                   "    for ax in fig.axes[1:]:\n"
                   "        for image in ax.images:\n"
                   "            image.set_data(noise.random(image.get_array().shape))\n"
                   "    return fig\n"),
        {"figure": "do not show the map given under that name"},
        {"figure": 0.0},
    ),
    "three_ig_variants_five_names": (
        _then("    ig = IntegratedGradients(model)\n"
              "    a = ig.attribute(inputs, target=target, n_steps=n_steps)\n"
              "    b = ig.attribute(inputs, target=target, n_steps=50)\n"
              "    c = ig.attribute(inputs, target=target, n_steps=n_steps, "
              "method='riemann_trapezoid')\n"
              "    return {'IntegratedGradients': a, 'GradientShap': b, 'Occlusion': c,\n"
              "            'Saliency': b * 1.5, 'DeepLift': c.clone()}\n"),
        {"algorithms": "'GradientShap' (GradientShap) was the same map in three calls",
         "outputs": GATED, "figure": GATED},
        {"algorithms": 1 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "hard_coded_class": (
        _then("    return _fast(model, inputs, 0, **kwargs)\n"),
        {"algorithms": "0 algorithms verified", "outputs": GATED, "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "ignores_target_argmax": (
        _then("    with torch.no_grad():\n"
              "        top1 = int(model(inputs).argmax())\n"
              "    return _fast(model, inputs, top1, **kwargs)\n"),
        {"algorithms": "0 algorithms verified", "outputs": GATED, "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "random_maps_right_titles": (
        _then("    return {name: torch.randn_like(inputs) for name in ALGORITHMS}\n"),
        {"algorithms": "0 algorithms verified", "outputs": GATED, "figure": GATED},
        {"algorithms": 0.0, "outputs": 0.0, "figure": 0.0},
    ),
    "ignores_n_steps": (
        _instead_of_deconvolution("IntegratedGradients", "IntegratedGradients(model).attribute("
                                  "inputs, target=target, n_steps=50)"),
        {"algorithms": "n_steps=", "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    # An honest GradientShap that is not reproducible counts as an algorithm (the grader
    # judges it by content) and loses the secondary `outputs` point for reproducibility.
    "ignores_seed_unseeded": (
        _instead_of_deconvolution("GradientShap", GRADIENT_SHAP_ZERO),
        {"outputs": "changed between two calls with the same seed: seed numpy too"},
        {"outputs": 4 / 5},
    ),
    "seeds_torch_only": (
        # Captum's GradientShap draws with numpy: torch.manual_seed alone repeats nothing.
        _instead_of_deconvolution("GradientShap", GRADIENT_SHAP_ZERO,
                                  "    torch.manual_seed(seed)\n"),
        {"outputs": "np.random.seed(seed)"},
        {"outputs": 4 / 5},
    ),
    "ignores_seed_hard_coded": (
        # Never changes: cannot be told from a deterministic path method filed under the name.
        _instead_of_deconvolution("GradientShap", GRADIENT_SHAP_ZERO,
                                  "    torch.manual_seed(0)\n    np.random.seed(0)\n"),
        {"algorithms": "was the same map in three calls", "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "ig_filed_as_gradient_shap_with_noise_per_call": (
        # Random, but IG up to noise far below the agreement tolerance.
        _instead_of_deconvolution("GradientShap", "IntegratedGradients(model).attribute("
                                  "inputs, target=target, n_steps=n_steps) * (1 + 1e-5 * "
                                  "torch.randn(()))"),
        {"algorithms": "is Integrated Gradients with a zero baseline", "outputs": GATED,
         "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "random_map_filed_as_gradient_shap": (
        _instead_of_deconvolution("GradientShap", "torch.randn_like(inputs)"),
        {"algorithms": "graded by hand", "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "occlusion_of_class_0": (
        _instead_of_deconvolution("Occlusion", OCCLUSION_8.format(target=0, baseline=0.0)),
        {"algorithms": "is Captum's Occlusion of class 0", "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "occlusion_blurred_baseline_graded_by_hand": (
        # Honest, but the grader cannot recompute a blurred baseline: listed for the
        # instructor (graded by hand), never failed silently.
        _instead_of_deconvolution("Occlusion", OCCLUSION_8.format(target="target",
                                                                  baseline="blurred"),
                                  BLURRED),
        {"algorithms": "neither a zero nor a constant baseline explains its values",
         "outputs": GATED, "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
    "unrecognised_name": (
        _then("    result['My favourite method'] = result.pop('Deconvolution')\n"
              "    return result\n"),
        {"algorithms": "'My favourite method': graded by hand", "outputs": GATED,
         "figure": GATED},
        {"algorithms": 4 / 5, "outputs": 0.0, "figure": 0.0},
    ),
}
# More of the same kind of mistake: run in the full suite, left out of `-m 'not slow'`.
SLOW = frozenset({"scaled_copies", "channel_summed_maps", "figure_missing_panels",
                  "numpy_maps", "unrecognised_name", "ig_filed_as_gradient_shap_with_noise_per_call",
                  "occlusion_of_class_0", "occlusion_blurred_baseline_graded_by_hand"})

# Honest rewrites: other algorithms, names, windows, layers and seeds the handout allows.
TUTORIAL = '''
import numpy as np
from captum.attr import GuidedGradCam, IntegratedGradients, NoiseTunnel


def compare_attributions(model, inputs, target, *, n_steps=50, seed=0):
    """The Captum tutorial's choices ("Model Interpretation for Pretrained Deep Learning
    Models"), keyed by human-readable names."""
    model.eval()
    torch.manual_seed(seed)
    np.random.seed(seed)
    ig = IntegratedGradients(model)
    result = {
        "Integrated Gradients": ig.attribute(inputs, target=target, n_steps=n_steps),
        "Gradient SHAP": GradientShap(model).attribute(
            inputs, n_samples=50, stdevs=0.0001,
            baselines=torch.cat([inputs * 0, inputs * 1]), target=target),
        "Occlusion": Occlusion(model).attribute(
            inputs, strides=(3, 8, 8), target=target, sliding_window_shapes=(3, 15, 15),
            baselines=0),
        "Saliency": Saliency(model).attribute(inputs, target=target),
        "Guided GradCAM": GuidedGradCam(model, model.layer3).attribute(inputs, target=target),
        "Noise Tunnel": NoiseTunnel(ig).attribute(
            inputs, nt_samples=10, nt_type="smoothgrad_sq", stdevs=0.2, target=target,
            n_steps=n_steps),
    }
    return {name: value.detach() for name, value in result.items()}
'''


def _occlusion(window: tuple[int, int, int], stride: tuple[int, int, int]) -> str:
    return _instead_of_deconvolution(
        "Occlusion", f"Occlusion(model).attribute(inputs, sliding_window_shapes={window}, "
        f"strides={stride}, baselines=0.0, target=target)")


HONEST = {
    "tutorial": TUTORIAL,
    "occlusion_5_stride_2": _occlusion((3, 5, 5), (3, 2, 2)),
    "occlusion_8_no_overlap": _occlusion((3, 8, 8), (3, 8, 8)),
    "occlusion_per_channel_4": _occlusion((1, 4, 4), (1, 2, 2)),
    "occlusion_6_by_10": _occlusion((3, 6, 10), (3, 3, 5)),
    "grad_cam_layer3_bilinear": _then(
        "    cam = LayerGradCam(model, model.layer3).attribute(inputs, target=target)\n"
        "    result['Grad-CAM'] = torch.nn.functional.interpolate(\n"
        "        cam, size=inputs.shape[-2:], mode='bilinear').detach()\n"
        "    del result['GradCAM']\n    return result\n"),
    "grad_cam_conv_no_relu_one_channel": _then(
        "    layer = model.layer2[-1].conv2\n"
        "    cam = LayerGradCam(model, layer).attribute(inputs, target=target)\n"
        "    result['layer_grad_cam'] = LayerAttribution.interpolate(\n"
        "        cam, tuple(inputs.shape[-2:]), 'bicubic').detach()\n"
        "    del result['GradCAM']\n    return result\n"),
    "smoothgrad_seeded": _instead_of_deconvolution(
        "SmoothGrad", "NoiseTunnel(Saliency(model)).attribute(inputs, nt_samples=8, "
        "nt_type='smoothgrad', stdevs=0.15, target=target)", SEEDED),
    "gradient_shap_noise_baselines": _instead_of_deconvolution(
        "gradient_shap", GRADIENT_SHAP, SEEDED),
    "gradient_shap_blurred_baseline_seeded": _instead_of_deconvolution(
        "GradientShap", "GradientShap(model).attribute(inputs, baselines=blurred, "
        "n_samples=10, stdevs=0.1, target=target)", SEEDED + BLURRED),
    "gradient_shap_zero_baseline_5_samples": _instead_of_deconvolution(
        "Gradient SHAP", "GradientShap(model).attribute(inputs, baselines=inputs * 0, "
        "n_samples=5, target=target)", SEEDED),
    "occlusion_mean_baseline": _instead_of_deconvolution(
        "Occlusion", OCCLUSION_8.format(target="target", baseline="inputs.mean().item()")),
    "occlusion_minus_one_baseline_per_channel": _instead_of_deconvolution(
        "Occlusion", "Occlusion(model).attribute(inputs, sliding_window_shapes=(1, 6, 6), "
        "strides=(1, 3, 3), target=target, baselines=-1.0)"),
    "integrated_gradients_short_name": _instead_of_deconvolution(
        "IG", "IntegratedGradients(model).attribute(inputs, target=target, n_steps=n_steps, "
        "internal_batch_size=3)"),
}
SLOW_HONEST = frozenset({"occlusion_per_channel_4", "occlusion_6_by_10",
                         "grad_cam_conv_no_relu_one_channel",
                         "occlusion_minus_one_baseline_per_channel",
                         "gradient_shap_zero_baseline_5_samples"})


@pytest.fixture(params=VARIANTS)
def settings(request, graded_test_settings: ProbeSettings) -> ProbeSettings:
    """The practice variant and the tests' graded variant."""
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_gets_full_points(grade_impl, graded_test_settings, variant: str) -> None:
    chosen = DEFAULT_SETTINGS if variant == "practice" else graded_test_settings
    graded = grade_impl("reference", tasks=["comparison"], settings=chosen)
    checks = graded.results["comparison"].checks
    assert {c.name: c.score for c in checks} == FULL, checks


def test_fast_base_of_the_variants_gets_full_points(grade_variant, settings) -> None:
    graded = grade_variant({"comparison.py": FAST}, tasks=["comparison"], settings=settings)
    assert graded.score("comparison") == graded.max_score("comparison"), \
        graded.results["comparison"].checks


@pytest.mark.parametrize("rewrite", params(HONEST, SLOW_HONEST))
def test_honest_rewrite_gets_full_points(grade_variant, settings, rewrite: str) -> None:
    graded = grade_variant({"comparison.py": HONEST[rewrite]}, tasks=["comparison"],
                           settings=settings)
    assert graded.score("comparison") == graded.max_score("comparison"), \
        graded.results["comparison"].checks


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["comparison"])
    assert graded.score("comparison") == 0
    for check in graded.results["comparison"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", params(WRONG, SLOW))
def test_wrong_implementation_loses_its_points(grade_variant, settings, variant: str) -> None:
    source, failing, fractions = WRONG[variant]
    graded = grade_variant({"comparison.py": source}, tasks=["comparison"], settings=settings)
    assert set(graded.failed("comparison")) == set(failing), graded.results["comparison"].checks
    for name, words in failing.items():
        check = graded.check("comparison", name)
        assert words in check.message, check
        assert check.score == pytest.approx(FULL[name] * fractions[name], abs=1e-3)
    for name in set(FULL) - set(failing):
        assert graded.check("comparison", name).score == FULL[name]


PRELUDE = HOSTILE_CLASSES + '''

class _LyingDict(dict):
    def items(self):
        raise RuntimeError("the grader must not call me")


def compare_attributions(model, inputs, target, **kwargs):
    attr = torch.ones_like(inputs)
    return {value}
'''
# compare_attributions' hostile results: (expression, words in the outputs message or
# None when algorithms/outputs fail before looking at entries). plot_comparison still
# gets maps (the grader's), but the figure pays only when algorithms passes.
HOSTILE = {
    "none": ("None", "returned builtins.NoneType"),
    "lying_object": ("_Liar()", "_Liar"),
    "dict_subclass": ("_LyingDict(a=attr)", "_LyingDict"),
    "empty_dict": ("{}", "empty dict"),
    "lying_values": ("{str(i): _Liar() for i in range(5)}", "_Liar, not a torch.Tensor"),
    "tensor_subclass": ("{str(i): attr.as_subclass(_Sub) for i in range(5)}", "_Sub"),
    "nan_maps": ("{str(i): attr * float('nan') for i in range(5)}", "NaN"),
    "sparse_maps": ("{str(i): (attr * i).to_sparse() for i in range(5)}", "sparse_coo"),
    "non_str_keys": ("{i: attr * i for i in range(1, 6)}", "key <builtins.int #0> is not a str"),
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_return_value_gets_zero_with_a_message(grade_variant, variant: str) -> None:
    value, words = HOSTILE[variant]
    graded = grade_variant({"comparison.py": PRELUDE.format(value=value)}, tasks=["comparison"])
    assert graded.check("comparison", "algorithms").score == 0
    assert graded.check("comparison", "outputs").score == 0
    assert words in graded.check("comparison", "outputs").message
    for check in graded.results["comparison"].checks:
        assert "could not be checked" not in check.message, check
    # Since issue 13 the figure pays only when algorithms passes.
    assert graded.check("comparison", "figure").score == 0


def test_plot_gets_stand_in_maps_when_compare_fails(grade_variant) -> None:
    graded = grade_variant(
        {"comparison.py": "def compare_attributions(*a, **k):\n    1 / 0\n"},
        tasks=["comparison", "attribution_viz"],
    )
    record = graded.records["comparison"]
    assert record.data["plot_given"] == "stand_in"
    assert record.data["plot_names"] == list(task.STAND_IN_NAMES)
    # The figure is still drawn and recorded, but pays only when algorithms passes.
    assert record.data["figures"]["comparison"]["n_axes"] == 1 + len(task.STAND_IN_NAMES)
    assert graded.check("comparison", "figure").score == 0
    assert "ZeroDivisionError" in graded.check("comparison", "algorithms").message
    assert graded.score("attribution_viz") == graded.max_score("attribution_viz")


@pytest.mark.slow
def test_more_than_the_cap_is_recorded_up_to_the_cap(grade_variant) -> None:
    source = _then("    return {f'Saliency {i}': result['Saliency'] * (i + 1) for i in range(40)}\n")
    graded = grade_variant({"comparison.py": source}, tasks=["comparison"])
    record = graded.records["comparison"]
    assert record.data["n_entries"] == 40
    assert len(record.data["entries"]) == task.MAX_ALGORITHMS
    assert graded.check("comparison", "algorithms").score == FULL["algorithms"] / 5


def test_same_map_ignores_scale_and_sign() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(1, 3, 8, 8, generator=generator)
    assert task._same_map(a, -3 * a)
    assert not task._same_map(a, a + 0.1 * torch.randn(1, 3, 8, 8, generator=generator))


def test_target_is_a_ranked_class_other_than_the_top1(
        references_for, check_context: CheckContext, settings: ProbeSettings) -> None:
    record = references_for(settings)["comparison"]
    with torch.inference_mode():
        ranking = check_context.trusted_model()(record.tensors["inputs"])[0].argsort(
            descending=True)
    rank = record.data["target_rank"]
    assert task.TARGET_RANKS[0] <= rank <= task.TARGET_RANKS[1]
    assert record.data["target"] == int(ranking[rank - 1]) != int(ranking[0])


def test_probe_parameters_come_from_the_variant(graded_test_settings) -> None:
    practice = task.probe_parameters(DEFAULT_SETTINGS)
    graded = task.probe_parameters(graded_test_settings)
    assert practice == task.probe_parameters(DEFAULT_SETTINGS)
    assert practice["seed"] != graded["seed"] and practice["other_seed"] != graded["other_seed"]
    assert practice["seed"] != practice["other_seed"]
    assert DEFAULT_SETTINGS.ig_steps not in (practice["n_steps"], graded["n_steps"])


@pytest.mark.parametrize(("name", "algorithm"), [
    ("Integrated Gradients", "IntegratedGradients"),
    ("IG", "IntegratedGradients"),
    ("integrated_gradients", "IntegratedGradients"),
    ("Gradient SHAP", "GradientShap"),
    ("LayerGradCam", "GradCam"),
    ("Grad-CAM (layer4)", "GradCam"),
    ("Guided GradCAM", "GuidedGradCam"),
    ("NoiseTunnel(IG)", "NoiseTunnel"),
    ("SmoothGrad", "NoiseTunnel"),
    ("input_x_gradient", "InputXGradient"),
    ("Guided Backprop", "GuidedBackprop"),
    ("Occlusion 15x15", "Occlusion"),
    ("Deep Lift", "DeepLift"),
    ("My favourite method", None),
])
def test_algorithm_names_are_normalised(name: str, algorithm: str | None) -> None:
    assert task.algorithm_of(name) == algorithm


@pytest.mark.parametrize(("length", "window", "stride"),
                         [(32, 5, 2), (32, 8, 8), (32, 15, 8), (17, 4, 3), (12, 12, 1)])
def test_occlusion_grid_is_where_captum_map_changes(length: int, window: int,
                                                    stride: int) -> None:
    generator = torch.Generator().manual_seed(length * 100 + window * 10 + stride)
    weights = torch.randn(1, 1, length, generator=generator)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return (x * weights).flatten(1).sum(dim=1, keepdim=True)

    inputs = torch.rand(1, 1, length, generator=generator) + 0.5
    attr = Occlusion(linear).attribute(inputs, sliding_window_shapes=(1, window),
                                       strides=(1, stride), target=0)
    assert task._changes(attr) == task._grid_changes(length, window, stride)
