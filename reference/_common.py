"""Private helpers shared by the reference's attribution tasks (5-9).

Each one leaves the caller's state as it found it: the modules' training flags,
the global random number generator, the memory a batched pass may take.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# Rows (images) one forward+backward pass of ResNet-34 may hold at 224x224: each
# row keeps ~35 MB of activations for the backward pass, so 25 rows stay under 1 GB.
ROWS_AT_224 = 25


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` in eval mode, then restore every module's own ``training`` flag.

    Attributions of a model in train mode would use batch statistics in BatchNorm
    (the rows of one IG batch would influence each other) and update its running
    statistics; restoring flag by flag (not ``model.train()``) keeps mixed modes exact.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@contextmanager
def autograd_enabled() -> Iterator[None]:
    """Autograd on for the block, also inside a caller's ``no_grad()`` or ``inference_mode()``.

    Tensors created in the block are normal tensors, so they can require grad.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextmanager
def seeded(seed: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch, numpy and ``random`` for the block; the caller's RNG states come back.

    Captum draws with all three: NoiseTunnel's noise with torch, GradientShap's path
    points and baseline choice with ``np.random``. ``seed=None`` leaves the global
    generators alone (and lets the block advance them).
    """
    if seed is None:
        yield
        return
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def rows_per_pass(inputs: torch.Tensor, examples: int | None = None) -> int:
    """Rows per batched forward+backward pass for images shaped like ``inputs``.

    Scales :data:`ROWS_AT_224` by the pixel count and rounds down to a multiple of
    ``examples`` (Captum's ``internal_batch_size`` must hold every example of one
    step); never less than ``examples``.
    """
    examples = inputs.shape[0] if examples is None else examples
    pixels = inputs.shape[-1] * inputs.shape[-2]
    budget = max(1, ROWS_AT_224 * 224 * 224 // pixels)
    return max(examples, budget // examples * examples)
