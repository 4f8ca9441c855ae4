"""Task 9: comparing attribution algorithms."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure


def compare_attributions(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    n_steps: int = 50,
    seed: int | None = 0,
) -> dict[str, torch.Tensor]:
    """Attributions of at least five Captum algorithms for the same input and target.

    Args:
        inputs: preprocessed image ``(1, 3, H, W)``.
        n_steps: integration steps for the path methods.
        seed: seeds torch's and numpy's generators (Captum's GradientShap draws with
            numpy) when given.

    Returns:
        ``{algorithm name: attributions}``, each a float32 tensor shaped like
        ``inputs`` (layer methods upsampled to the input size).
    """
    # TODO Task 9: run five or more algorithms (e.g. Saliency, IntegratedGradients, ...).
    raise NotImplementedError("Task 9: compute five attribution algorithms")


def plot_comparison(attributions: dict[str, torch.Tensor], image: torch.Tensor) -> Figure:
    """One figure with the original image and one panel per algorithm.

    Returns:
        matplotlib ``Figure`` with one titled image axes per entry of
        ``attributions`` (title = the algorithm name), plus one for the image.
    """
    # TODO Task 9: draw every attribution map on a common figure.
    raise NotImplementedError("Task 9: plot the attribution comparison")
