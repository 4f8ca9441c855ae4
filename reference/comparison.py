"""Task 9: comparing attribution algorithms."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from captum.attr import (
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from matplotlib.figure import Figure

from ._common import autograd_enabled, eval_mode, rows_per_pass, seeded
from .attribution_viz import display_arrays, draw_attribution
from .integrated_gradients import integrated_gradients

# Captum class names, in the order of the comparison figure. DeepLift is left out:
# torchvision's BasicBlock calls one ReLU module twice, which Captum's DeepLift
# rejects ("module is being used more than once"); GuidedBackprop's hooks are per
# call and are exact on the shared module.
ALGORITHMS: tuple[str, ...] = (
    "IntegratedGradients",
    "Saliency",
    "InputXGradient",
    "GuidedBackprop",
    "GradientShap",
    "Occlusion",
    "LayerGradCam",
)


def compare_attributions(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    n_steps: int = 50,
    seed: int | None = 0,
) -> dict[str, torch.Tensor]:
    """Attributions of at least five Captum algorithms for the same input and target.

    ``ALGORITHMS``, each with Captum's defaults unless said here:

    - ``IntegratedGradients``: zero baseline, ``n_steps`` Gauss-Legendre points.
    - ``Saliency``: absolute gradient (>= 0).
    - ``InputXGradient``: input times gradient.
    - ``GuidedBackprop``: gradient with negative gradients stopped at every ReLU.
    - ``GradientShap``: ``n_steps`` samples, baselines drawn from {zeros, standard
      normal noise drawn after seeding}.
    - ``Occlusion``: a zero patch of side ``round(min(H, W) / 7)`` (32 at 224) moved
      by half its side; a pixel's attribution is the mean drop of the logit over the
      patches covering it (about 170 forward passes without gradients at 224x224,
      200 at 64x64).
    - ``LayerGradCam``: Grad-CAM of ``model.layer4`` (the last ``Conv2d`` of a model
      without one), ReLU applied, bilinearly upsampled to ``(H, W)`` and repeated over
      the 3 channels.

    The model runs in eval mode and is left as it was (training flags restored, no
    hooks, no ``.grad`` on its parameters). ``seed`` seeds torch, numpy and ``random``
    (Captum's GradientShap draws with ``np.random``) and the caller's generator
    states are restored afterwards.

    Args:
        model: ResNet-34-like classifier.
        inputs: preprocessed image ``(1, 3, H, W)`` float32, on the model's device.
        target: class index whose logit is explained.
        n_steps: integration steps for the path methods (IG steps, GradientShap samples).
        seed: seeds torch's and numpy's generators (Captum's GradientShap draws with
            numpy) when given.

    Returns:
        ``{algorithm name: attributions}``, each a float32 tensor shaped like
        ``inputs`` (layer methods upsampled to the input size), detached, finite.

    Raises:
        ValueError: ``inputs`` is not ``(N, C, H, W)``.
    """
    if inputs.dim() != 4:
        raise ValueError(
            f"inputs must be (1, 3, H, W), got {tuple(inputs.shape)}; add the batch "
            "dimension with inputs.unsqueeze(0)"
        )
    results: dict[str, torch.Tensor] = {}
    with autograd_enabled(), eval_mode(model), seeded(seed, inputs.device), warnings.catch_warnings():
        # Captum announces the temporary hooks it sets on the ReLUs and that it made
        # the inputs require grad; it undoes both before returning.
        for message in ("Setting backward hooks", "Input Tensor 0 did not already require"):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        for name, algorithm in _algorithms(model, n_steps).items():
            attributions = algorithm(inputs, target)
            results[name] = attributions.detach().to(torch.float32).expand_as(inputs).clone()
    return results


def plot_comparison(attributions: dict[str, torch.Tensor], image: torch.Tensor) -> Figure:
    """One figure with the original image and one panel per algorithm.

    Each panel is Captum's ``blended_heat_map`` of the absolute attribution (where the
    algorithm puts importance, over a grey copy of the image), scaled per panel.

    Args:
        attributions: ``{name: (1, 3, H, W) attributions}``, e.g. from
            :func:`compare_attributions`.
        image: ``(1, 3, H, W)`` image in [0, 1] (the unnormalized input).

    Returns:
        matplotlib ``Figure`` with one titled image axes per entry of
        ``attributions`` (title = the algorithm name), plus one for the image
        (title ``"Original image"``), in rows of at most 4.

    Raises:
        ValueError: as ``attribution_viz.display_arrays`` (shapes, range).
    """
    panels = 1 + len(attributions)
    cols = min(4, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[panels:]:
        fig.delaxes(ax)  # only the panels asked for: one per algorithm plus the image
    _, image_hwc = display_arrays(image, image)
    axes[0].imshow(image_hwc)
    axes[0].set_title("Original image")
    axes[0].axis("off")
    for ax, (name, attribution) in zip(axes[1:], attributions.items(), strict=False):
        attr_hwc, _ = display_arrays(attribution, image)
        draw_attribution(
            fig, ax, attr_hwc, image_hwc, method="blended_heat_map", sign="absolute_value",
            title=name,
        )
    return fig


Algorithm = Callable[[torch.Tensor, int], torch.Tensor]


def _algorithms(model: torch.nn.Module, n_steps: int) -> dict[str, Algorithm]:
    """``{name: f(inputs, target) -> attributions}`` in ``ALGORITHMS`` order."""

    def integrated(inputs: torch.Tensor, target: int) -> torch.Tensor:
        internal = rows_per_pass(inputs)
        return integrated_gradients(
            model, inputs, target, n_steps=n_steps, internal_batch_size=internal
        )[0]

    def gradient_shap(inputs: torch.Tensor, target: int) -> torch.Tensor:
        # A distribution of two baselines: black-ish (zero = mean colour) and noise.
        baselines = torch.cat([torch.zeros_like(inputs), torch.randn_like(inputs)])
        return GradientShap(model).attribute(
            inputs, baselines=baselines, n_samples=n_steps, target=target
        )

    def occlusion(inputs: torch.Tensor, target: int) -> torch.Tensor:
        side = max(1, round(min(inputs.shape[-2:]) / 7))
        stride = max(1, side // 2)
        return Occlusion(model).attribute(
            inputs,
            sliding_window_shapes=(inputs.shape[1], side, side),
            strides=(inputs.shape[1], stride, stride),
            baselines=0.0,
            target=target,
            perturbations_per_eval=min(32, 2 * rows_per_pass(inputs)),
        )

    def grad_cam(inputs: torch.Tensor, target: int) -> torch.Tensor:
        cam = LayerGradCam(model, _last_block(model)).attribute(
            inputs, target=target, relu_attributions=True
        )  # (N, 1, h, w), e.g. 7x7 at 224
        cam = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), "bilinear")
        return cam.expand(-1, inputs.shape[1], -1, -1)

    return {
        "IntegratedGradients": integrated,
        "Saliency": lambda x, t: Saliency(model).attribute(x, target=t),
        "InputXGradient": lambda x, t: InputXGradient(model).attribute(x, target=t),
        "GuidedBackprop": lambda x, t: GuidedBackprop(model).attribute(x, target=t),
        "GradientShap": gradient_shap,
        "Occlusion": occlusion,
        "LayerGradCam": grad_cam,
    }


def _last_block(model: torch.nn.Module) -> torch.nn.Module:
    """``model.layer4`` for a ResNet, else the model's last ``Conv2d``."""
    layer4 = getattr(model, "layer4", None)
    if isinstance(layer4, torch.nn.Module):
        return layer4
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("LayerGradCam needs a convolutional model (no Conv2d found)")
    return convs[-1]
