"""Task 8: NoiseTunnel around Integrated Gradients."""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, NoiseTunnel

from ._common import autograd_enabled, eval_mode, rows_per_pass, seeded

NT_TYPES: tuple[str, ...] = ("smoothgrad", "smoothgrad_sq", "vargrad")


def noise_tunnel(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    nt_type: str = "smoothgrad",
    nt_samples: int = 10,
    stdevs: float = 0.2,
    baselines: torch.Tensor | None = None,
    n_steps: int = 50,
    seed: int | None = 0,
) -> torch.Tensor:
    """Integrated Gradients smoothed with Captum's ``NoiseTunnel``.

    Adds Gaussian noise (std ``stdevs``) to ``inputs`` ``nt_samples`` times and
    aggregates the IG attributions by ``nt_type``. Seeds the noise with
    ``torch.manual_seed(seed)`` when ``seed`` is given.

    ``nt_type``: ``"smoothgrad"`` is the mean of the noisy samples' attributions,
    ``"smoothgrad_sq"`` the mean of their squares, ``"vargrad"`` their variance
    (``smoothgrad_sq - smoothgrad**2``). Every sample runs IG with ``n_steps``, so the
    model sees ``N * nt_samples * n_steps`` rows, in passes of a bounded number of rows
    (~1 GB of activations at 224x224). ``stdevs=0`` gives plain IG. With ``seed`` the
    caller's global RNG state is restored afterwards. The model runs in eval mode and
    is left as it was (training flags restored, no ``.grad`` on its parameters).

    Args:
        inputs: preprocessed image(s) ``(N, 3, H, W)`` float32, on the model's device.
        target: class index whose logit is explained.
        nt_samples: noisy copies per input, ``>= 1``.
        stdevs: standard deviation of the noise, in the units of ``inputs``
            (ImageNet-normalized: 0.2 is about 5% of the pixel range), ``>= 0``.
        baselines: IG baselines shaped like ``inputs``; ``None`` means zeros.
        n_steps: IG integration steps per noisy sample.
        seed: seeds the noise; ``None`` draws it from the global RNG.

    Returns:
        float32 attributions shaped like ``inputs`` (detached; ``smoothgrad_sq`` and
        ``vargrad`` are >= 0 up to rounding).

    Raises:
        ValueError: ``nt_type`` is not one of ``NT_TYPES``, ``nt_samples < 1`` or
            ``stdevs < 0``.
    """
    tunnel = NoiseTunnel(IntegratedGradients(model))
    return _attribute(
        tunnel, model, inputs, target, nt_type, nt_samples, stdevs, baselines, n_steps, seed
    )


def noise_tunnel_all(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    *,
    nt_samples: int = 10,
    stdevs: float = 0.2,
    baselines: torch.Tensor | None = None,
    n_steps: int = 50,
    seed: int | None = 0,
) -> dict[str, torch.Tensor]:
    """All three ``NT_TYPES`` from one NoiseTunnel run: a third of the cost of three.

    Captum's NoiseTunnel computes the mean and the mean square of the noisy samples'
    attributions whatever ``nt_type`` is, and only then picks one (``smoothgrad``,
    ``smoothgrad_sq`` or ``vargrad = smoothgrad_sq - smoothgrad**2``). This keeps both
    moments of one ``smoothgrad`` run, so each value equals
    ``noise_tunnel(..., nt_type=t, seed=seed)`` (same noise, same formulas). If a
    Captum version no longer exposes the moments, it falls back to one run per type.
    With ``seed=None`` one seed is drawn from the global RNG and used for every run,
    so the three always come from the same noise.

    Returns:
        ``{nt_type: attributions}`` in ``NT_TYPES`` order, float32 shaped like ``inputs``.

    Raises:
        ValueError: as :func:`noise_tunnel`.
    """
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    kwargs = {
        "nt_samples": nt_samples,
        "stdevs": stdevs,
        "baselines": baselines,
        "n_steps": n_steps,
        "seed": seed,
    }
    tunnel = _MomentsNoiseTunnel(IntegratedGradients(model))
    _attribute(
        tunnel, model, inputs, target, "smoothgrad", nt_samples, stdevs, baselines, n_steps, seed
    )
    if tunnel.moments is None:  # a Captum without the hook: one run per type
        return {t: noise_tunnel(model, inputs, target, nt_type=t, **kwargs) for t in NT_TYPES}
    mean, mean_sq = (m.detach().to(torch.float32) for m in tunnel.moments)
    return {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean * mean}


def _attribute(
    tunnel: NoiseTunnel,
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: int,
    nt_type: str,
    nt_samples: int,
    stdevs: float,
    baselines: torch.Tensor | None,
    n_steps: int,
    seed: int | None,
) -> torch.Tensor:
    """:func:`noise_tunnel` with a given NoiseTunnel instance."""
    if nt_type not in NT_TYPES:
        raise ValueError(f"nt_type {nt_type!r} is not supported; choose one of {NT_TYPES}")
    if nt_samples < 1:
        raise ValueError(f"nt_samples must be >= 1, got {nt_samples}")
    if stdevs < 0:
        raise ValueError(f"stdevs is a standard deviation and must be >= 0, got {stdevs}")
    examples = inputs.shape[0] * nt_samples  # rows per integration step
    with autograd_enabled(), eval_mode(model), seeded(seed, inputs.device):
        attributions = tunnel.attribute(
            inputs,
            nt_type=nt_type,
            nt_samples=nt_samples,
            stdevs=float(stdevs),  # Captum asserts a float: stdevs=0 would fail
            baselines=baselines,
            target=target,
            n_steps=n_steps,
            internal_batch_size=rows_per_pass(inputs, examples),
        )
    return attributions.detach().to(torch.float32)


class _MomentsNoiseTunnel(NoiseTunnel):
    """NoiseTunnel that also keeps the two moments it aggregates (checked with Captum 0.9)."""

    moments: tuple[torch.Tensor, torch.Tensor] | None = None

    def _compute_smoothing(  # Captum's staticmethod, called as self._compute_smoothing
        self,
        expected_attributions: tuple[torch.Tensor, ...],
        expected_attributions_sq: tuple[torch.Tensor, ...],
        nt_type: str,
    ) -> tuple[torch.Tensor, ...]:
        self.moments = (expected_attributions[0], expected_attributions_sq[0])
        return NoiseTunnel._compute_smoothing(
            expected_attributions, expected_attributions_sq, nt_type
        )
