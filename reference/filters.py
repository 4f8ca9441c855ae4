"""Task 5: visualising convolution filters by activation maximisation."""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import autograd_enabled, eval_mode, seeded

# Early, middle and late convolution layers and three filters of each (Task 5's grid).
DEFAULT_LAYERS: tuple[str, ...] = ("conv1", "layer2.0.conv1", "layer4.2.conv2")
DEFAULT_FILTERS: tuple[int, ...] = (0, 1, 2)


def postprocess_filter(img_tensor: torch.Tensor) -> np.ndarray:
    """Helper function for post-processing and display (handout's helper).

    Returns:
        float32 array ``(H, W, 3)`` scaled to [0, 1].
    """
    img = img_tensor.squeeze(0).cpu().detach().numpy()
    img = np.transpose(img, (1, 2, 0))
    # Normalize to [0, 1] for display; a constant image maps to zeros.
    span = img.max() - img.min()
    img = (img - img.min()) / span if span > 0 else np.zeros_like(img)
    return img.astype(np.float32)


def visualize_filter(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    filter_index: int,
    iterations: int = 50,
    lr: float = 0.1,
    *,
    image_size: int = 224,
    seed: int | None = None,
) -> np.ndarray:
    """Generate an image that maximally activates one filter of one layer.

    Starts from ``torch.randn(1, 3, image_size, image_size)`` (after
    ``torch.manual_seed(seed)`` when ``seed`` is given) and runs ``iterations``
    Adam steps (``lr``, weight decay 1e-6) on ``-mean(activation[0, filter_index])``.

    The forward pass stops at ``layer`` (a hook on it ends the pass; for a plain
    ``Conv2d`` only the target filter's output channel is computed), so an early
    layer costs a fraction of a full pass, and the optimised image is the one the
    handout's full-pass version computes, up to float rounding. Two cases differ
    from the handout's hook, by design:
    a module called more than once per forward (torchvision's ``BasicBlock`` reuses
    its ``relu``) gives its first call's output, and a module whose output the network
    later changes in place (a ``BatchNorm2d`` followed by ``ReLU(inplace=True)``) gives
    its true output, where the handout's hook sees the ReLU'd tensor. Every ``Conv2d``
    of ResNet-34 is called once and its output is never changed in place.

    The model is left as it was: its weights, ``requires_grad`` flags, ``.grad``
    and every module's ``training`` flag (it runs in eval mode meanwhile), with no
    hook left behind, even when this raises. With ``seed`` the global RNG is
    restored afterwards; without it, the starting noise advances the global RNG.

    Args:
        model: the network, e.g. ResNet-34; the image is created on the device of
            its first parameter (the noise is drawn on the CPU, so it is the same
            on every device).
        layer: a module of ``model`` or its dotted name (``"layer2.0.conv1"``).
        filter_index: output channel of ``layer``, ``0 <= filter_index < C``.
        iterations: Adam steps (0 returns the post-processed starting noise).
        lr: Adam learning rate.
        image_size: side of the square image.
        seed: seed of the starting noise; ``None`` draws from the global RNG.

    Returns:
        float32 array ``(image_size, image_size, 3)`` in [0, 1] (``postprocess_filter``).

    Raises:
        ValueError: ``layer`` is not a module of ``model`` (or is never called in its
            forward pass) or ``filter_index`` is out of range for it.
    """
    image, _ = maximize_activation(
        model, layer, filter_index, iterations, lr, image_size=image_size, seed=seed
    )
    return postprocess_filter(image)


def maximize_activation(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    filter_index: int,
    iterations: int = 50,
    lr: float = 0.1,
    *,
    image_size: int = 224,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimisation behind :func:`visualize_filter`, before post-processing.

    Returns:
        ``(image, objective)``: the optimised image ``(1, 3, image_size, image_size)``
        float32 (detached, on the model's device) and ``objective``, float32
        ``(iterations,)`` on the CPU: ``mean(activation[0, filter_index])`` before each
        step (measure the final image with :func:`filter_activation`).

    Raises:
        ValueError: as :func:`visualize_filter`.
    """
    name, module = _resolve_layer(model, layer)
    filter_index = operator.index(filter_index)
    with autograd_enabled(), _stop_at(module, name, filter_index) as measure, eval_mode(model):
        with seeded(seed):
            start = torch.randn(1, 3, image_size, image_size)
        image = start.to(_device_of(model)).requires_grad_()
        optimizer = torch.optim.Adam([image], lr=lr, weight_decay=1e-6)
        objective: list[torch.Tensor] = []
        if iterations == 0:  # nothing to optimise, but the arguments are still checked
            with torch.no_grad():
                measure(_forward_to(model, image, name))
        for _ in range(iterations):
            score = measure(_forward_to(model, image, name))
            objective.append(score.detach())
            # Gradient for the image only: parameters get no .grad and, unlike
            # loss.backward(), no weight gradients are computed at all.
            (image.grad,) = torch.autograd.grad(-score, image)
            optimizer.step()
    history = torch.stack(objective) if objective else torch.empty(0)
    return image.detach(), history.float().cpu()


def filter_activation(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    filter_index: int,
    image: torch.Tensor,
) -> float:
    """``mean(activation[0, filter_index])`` of ``layer`` for ``image`` ``(1, 3, H, W)``.

    The objective :func:`visualize_filter` maximises, measured without gradients and
    without running the network past ``layer``; the model is left as it was.

    Raises:
        ValueError: as :func:`visualize_filter`.
    """
    name, module = _resolve_layer(model, layer)
    filter_index = operator.index(filter_index)
    with _stop_at(module, name, filter_index) as measure, eval_mode(model), torch.no_grad():
        return float(measure(_forward_to(model, image.to(_device_of(model)), name)))


def plot_filter_grid(
    model: torch.nn.Module,
    layers: Sequence[str] = DEFAULT_LAYERS,
    filters: Sequence[int] = DEFAULT_FILTERS,
    *,
    iterations: int = 50,
    lr: float = 0.1,
    image_size: int = 224,
    seed: int | None = 0,
) -> Figure:
    """3x3 grid: one row per layer (early, middle, late), one column per filter.

    Every cell starts from the same noise (``seed``), so the cells differ only by
    what their filter responds to.

    Returns:
        matplotlib ``Figure`` with ``len(layers) * len(filters)`` image axes, each
        titled with its layer name and filter number (e.g. ``"conv1 #0"``), axes off.

    Raises:
        ValueError: as :func:`visualize_filter`, for the first bad layer or filter.
    """
    fig = Figure(figsize=(3.0 * len(filters), 3.2 * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), len(filters), squeeze=False)
    for row, layer in enumerate(layers):
        for col, filter_index in enumerate(filters):
            img = visualize_filter(
                model, layer, filter_index, iterations, lr, image_size=image_size, seed=seed
            )
            ax = axes[row][col]
            ax.imshow(img)
            ax.set_title(f"{layer} #{filter_index}")
            ax.axis("off")
    return fig


class _StopForward(Exception):  # a control-flow signal, not an error
    """Raised by a hook to end the forward pass at the target layer; carries a tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__()
        self.tensor = tensor


def _raise_input(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    raise _StopForward(args[0])


def _raise_output(
    _module: torch.nn.Module, _args: tuple[torch.Tensor, ...], output: torch.Tensor
) -> None:
    raise _StopForward(output)


@contextmanager
def _stop_at(
    module: torch.nn.Module, name: str, filter_index: int
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Hook ``module`` so the forward pass ends there; yield ``measure(captured)``.

    ``measure`` turns what the hook captured into the objective
    ``mean(activation[0, filter_index])``. For a plain ``Conv2d`` the hook captures
    the layer's input and ``measure`` convolves it with the one target filter: the
    other C-1 output channels would only be computed and back-propagated as zeros
    (for ``conv1`` that is most of the cost). Any other module: its output. The hook
    is removed on exit, also when the body raises.
    """
    sliced = (
        type(module) is torch.nn.Conv2d
        and module.groups == 1
        and hasattr(module, "_conv_forward")
    )
    if sliced:
        _check_filter_index(module.out_channels, filter_index, name)
        # Detached: the objective's gradient is taken for the image only.
        weight = module.weight.detach()[filter_index : filter_index + 1]
        bias = None if module.bias is None else module.bias.detach()[filter_index : filter_index + 1]

        def measure(captured: torch.Tensor) -> torch.Tensor:
            return module._conv_forward(captured, weight, bias)[0, 0].mean()

        handle = module.register_forward_pre_hook(_raise_input)
    else:

        def measure(captured: torch.Tensor) -> torch.Tensor:
            if not isinstance(captured, torch.Tensor) or captured.dim() < 2:
                raise ValueError(
                    f"layer {name!r} does not output a (N, C, ...) tensor; "
                    "choose a Conv2d layer"
                )
            _check_filter_index(captured.shape[1], filter_index, name)
            return captured[0, filter_index].mean()

        handle = module.register_forward_hook(_raise_output)
    try:
        yield measure
    finally:
        handle.remove()


def _forward_to(model: torch.nn.Module, image: torch.Tensor, name: str) -> torch.Tensor:
    """Run ``model`` until the hook on layer ``name`` fires; return what it captured."""
    try:
        model(image)
    except _StopForward as stop:
        return stop.tensor
    raise ValueError(
        f"layer {name!r} is a module of the model but was not called in its forward pass; "
        "choose a layer the forward pass uses, e.g. one of the Conv2d layers"
    )


def _check_filter_index(channels: int, filter_index: int, name: str) -> None:
    if not 0 <= filter_index < channels:
        raise ValueError(
            f"filter_index {filter_index} is out of range for layer {name!r}, which has "
            f"{channels} filters; pass a filter_index from 0 to {channels - 1}"
        )


def _resolve_layer(
    model: torch.nn.Module, layer: str | torch.nn.Module
) -> tuple[str, torch.nn.Module]:
    """``(dotted name, module)`` of ``layer`` in ``model``."""
    if isinstance(layer, torch.nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(
            f"layer {type(layer).__name__} is not a module of the model; pass one of "
            "its modules (e.g. model.layer2[0].conv1) or its dotted name"
        )
    names = dict(model.named_modules())
    if layer in names:
        return layer, names[layer]
    convs = [n for n, m in names.items() if isinstance(m, torch.nn.Conv2d)]
    close = difflib.get_close_matches(str(layer), convs or list(names), n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise ValueError(
        f"layer {layer!r} is not a module of the model; {hint}use a dotted name from "
        f"model.named_modules(), e.g. {', '.join(map(repr, convs[:2] or list(names)[:2]))}"
    )


def _device_of(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
