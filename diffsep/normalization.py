"""Per-item normalisation of mixtures and sources (training, validation and inference alike).

Divide by the mixture's standard deviation (clamped at eps) after removing its mean; the mean is
shared out as mean / K to every source so that the sources still sum to the mixture.
"""
from __future__ import annotations

from torch import Tensor


def normalize(mix: Tensor, sources: Tensor | None = None, eps: float = 1e-5):
    """mix (B, 1, N), sources (B, K, N) or None -> (mix, sources, mean (B, 1, 1), std (B, 1, 1))."""
    mean = mix.mean(dim=-1, keepdim=True)
    std = mix.std(dim=-1, keepdim=True).clamp_min(eps)
    mix = (mix - mean) / std
    if sources is not None:
        sources = (sources - mean / sources.shape[1]) / std
    return mix, sources, mean, std


def denormalize(est: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Inverse of :func:`normalize` for estimates (B, K, N)."""
    return est * std + mean / est.shape[1]
