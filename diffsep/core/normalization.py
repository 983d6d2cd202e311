"""Per-item normalisation of mixtures and sources (training, validation and inference alike).

Remove each channel's mean and divide by the centred mixture's standard deviation over all its channels
(one scale per item, clamped at eps, so that level differences between channels are kept); a
channel's mean is shared out as mean / K to the K sources so that they still sum to the mixture.

Shapes: mix (B, C, N); sources (B, K, N) when C = 1 (speech) or (B, K, C, N).
"""
from __future__ import annotations

from torch import Tensor


def _per_source(x: Tensor, ndim: int) -> Tensor:
    """A per-item (B, C, 1) or (B, 1, 1) statistic broadcast against (B, K, N) or (B, K, C, N)."""
    return x if ndim == 3 else x.unsqueeze(1)


def normalize(mix: Tensor, sources: Tensor | None = None, eps: float = 1e-5):
    """mix (B, C, N), sources or None -> (mix, sources, mean (B, C, 1), std (B, 1, 1))."""
    mean = mix.mean(dim=-1, keepdim=True)
    mix = mix - mean
    std = mix.flatten(1).std(dim=-1).clamp_min(eps)[:, None, None]
    mix = mix / std
    if sources is not None:
        K, d = sources.shape[1], sources.dim()
        sources = (sources - _per_source(mean, d) / K) / _per_source(std, d)
    return mix, sources, mean, std


def denormalize(est: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Inverse of :func:`normalize` for estimates (B, K, N) or (B, K, C, N)."""
    d = est.dim()
    return est * _per_source(std, d) + _per_source(mean, d) / est.shape[1]
