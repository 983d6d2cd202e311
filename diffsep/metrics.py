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


def pesq_mode(sample_rate: int) -> tuple[str, int]:
    """(PESQ mode, rate it runs at): narrow-band at 8 kHz, wide-band at 16 kHz; other rates are
    resampled, to 8 kHz below 16 kHz and to 16 kHz from 16 kHz up."""
    if sample_rate < 16000:
        return "nb", 8000
    return "wb", 16000


def pesq(est, ref, sample_rate: int) -> float:
    """PESQ (ITU-T P.862 MOS-LQO) of one estimate against its reference, (N,) arrays. NaN when
    PESQ finds no speech in the reference."""
    import numpy as np
    from pesq import pesq as _pesq

    from .audio import resample

    mode, rate = pesq_mode(sample_rate)
    est, ref = np.asarray(est, np.float32)[None], np.asarray(ref, np.float32)[None]
    est, ref = resample(est, sample_rate, rate)[0], resample(ref, sample_rate, rate)[0]
    try:
        return float(_pesq(rate, ref.astype(np.float64), est.astype(np.float64), mode))
    except Exception:  # pesq.NoUtterancesError, too short inputs
        return float("nan")


def stoi(est, ref, sample_rate: int, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``) of one estimate against its reference, (N,) arrays."""
    import numpy as np
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(ref, np.float64), np.asarray(est, np.float64), sample_rate,
                       extended=extended))
