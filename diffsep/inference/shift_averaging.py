"""Test-time shift averaging: a separator's estimate averaged over S small time shifts of its input.

A network that frames its input (Conv-TasNet's encoder with hop L/2, an STFT with its hop, Demucs'
strided encoder) sees the mixture delayed by part of a hop through other frames, so its estimates
of the same signal differ a little; their mean, each advanced back and put in the source order of
the unshifted one, is an ensemble of the same network at S times the cost. The S delays spread
evenly over one hop: d_i = round(i · hop / S), i = 0 … S − 1 (S = 1: the plain estimate).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .separator import align_permutation

Estimate = Callable[[Tensor, "torch.Generator | None"], Tensor]


def shift_delays(shifts: int, hop: int) -> list[int]:
    """The S delays in samples, distinct and in [0, hop): ValueError when S < 1 or S > hop."""
    if shifts < 1:
        raise ValueError(f"shifts must be at least 1, got {shifts}")
    if shifts > hop:
        raise ValueError(f"{shifts} shifts over a frame hop of {hop} samples: at most {hop} distinct delays")
    return [round(i * hop / shifts) for i in range(shifts)]


def shift_averaged(estimate: Estimate, delays: list[int], fixed_order: bool = False) -> Estimate:
    """``estimate`` (normalised mix (B, C, n), generator -> (B, K, C, n)) averaged over ``delays``:
    each delayed input (zeros in front) is separated, advanced back to [0, n), and, unless
    ``fixed_order``, its sources put in the order of the first delay's estimate (the permutation
    closest in squared error, item by item) before the mean."""
    def averaged(mix: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, first, total = mix.shape[-1], None, 0
        for d in delays:
            est = estimate(F.pad(mix, (d, 0)), generator)[..., d:d + n]
            if first is None:
                first = est
            elif not fixed_order:
                est = torch.stack([e[align_permutation(f, e)] for f, e in zip(first, est)])
            total = total + est
        return total / len(delays)

    return averaged
