"""Separation metrics, "higher is better", in dB. Signals are (..., N) tensors."""
from __future__ import annotations

import torch
from torch import Tensor

from .pit import best_permutation, permute


def si_sdr(est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR of zero-mean versions of est against ref. (..., N), (..., N) -> (...)."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + eps)
    target = scale * ref
    return 10 * torch.log10((target.square().sum(-1) + eps) / ((est - target).square().sum(-1) + eps))


def pit_si_sdr(est: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """SI-SDR per source after choosing the source permutation that maximises the mean SI-SDR.
    est, ref (B, K, N) -> (si_sdr (B, K) in reference order, perm (B, K)) where
    reference j is matched with estimate perm[b, j]."""
    pairwise = si_sdr(est[:, None, :], ref[:, :, None])  # [b, j, i] = SI-SDR(est i, ref j)
    perm, _ = best_permutation(pairwise, maximize=True)
    return si_sdr(permute(est, perm), ref), perm


def sdr(est: Tensor, ref: Tensor, filter_length: int = 512) -> Tensor:
    """BSS-eval SDR (distortion filter of ``filter_length`` taps) of every estimate against the
    reference at the same index, no permutation search (fast_bss_eval). (K, N), (K, N) -> (K,)."""
    import fast_bss_eval

    out = fast_bss_eval.bss_eval_sources(ref.double(), est.double(), filter_length=filter_length,
                                         compute_permutation=False)
    return out[0].to(est.dtype)
