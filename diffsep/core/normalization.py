"""Per-item normalisation of mixtures and sources (training, validation and inference alike).

Remove each channel's mean and divide by the centred mixture's standard deviation over all its channels
(one scale per item, clamped at eps, so that level differences between channels are kept); a
channel's mean is shared out as mean / K to the K sources so that they still sum to the mixture.

Shapes: mix (B, C, N); sources and estimates (B, K, C, N) (speech: C = 1).
"""
from __future__ import annotations

from torch import Tensor


def _per_source(x: Tensor) -> Tensor:
    """A per-item (B, C, 1) or (B, 1, 1) statistic broadcast against (B, K, C, N)."""
    return x.unsqueeze(1)


def normalize(mix: Tensor, sources: Tensor | None = None, eps: float = 1e-5):
    """mix (B, C, N), sources or None -> (mix, sources, mean (B, C, 1), std (B, 1, 1))."""
    mean = mix.mean(dim=-1, keepdim=True)
    mix = mix - mean
    std = mix.flatten(1).std(dim=-1).clamp_min(eps)[:, None, None]
    mix = mix / std
    if sources is not None:
        if sources.dim() != 4:
            raise ValueError(f"sources must be (B, K, C, N), got {tuple(sources.shape)}")
        sources = (sources - _per_source(mean) / sources.shape[1]) / _per_source(std)
    return mix, sources, mean, std


def denormalize(est: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Inverse of :func:`normalize` for estimates (B, K, C, N)."""
    if est.dim() != 4:
        raise ValueError(f"estimates must be (B, K, C, N), got {tuple(est.shape)}")
    return est * _per_source(std) + _per_source(mean) / est.shape[1]
