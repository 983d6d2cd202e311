"""Music separation scores as the MUSDB18 benchmark reports them (BSS Eval v4, museval).

BSS Eval v4 decomposes a stem's estimate ŝ (C, N) against its reference image s as
ŝ = s + e_spat + e_interf + e_artif with time-invariant 512-tap distortion filters. Its SDR,
10 log10(||s||² / ||e_spat + e_interf + e_artif||²), therefore equals the image SNR
10 log10(||s||² / ||ŝ − s||²): the filters only split the error into ISR / SIR / SAR, which are
not computed here. The score is taken over 1 s frames (hop 1 s, full frames only), the median
over a track's frames is the track's score, and the median over tracks the data set's. Frames
where the reference is silent have no SDR (NaN) and are left out of the median.
"""
from __future__ import annotations

import numpy as np


def framewise_sdr(est: np.ndarray, ref: np.ndarray, window: int, hop: int | None = None) -> np.ndarray:
    """SDR in dB of each full frame (all channels together). est, ref (C, N) or (N,) -> (frames,);
    NaN where the reference frame is silent, +inf where the estimate is exact."""
    est, ref = np.atleast_2d(est).astype(np.float64), np.atleast_2d(ref).astype(np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"estimate {est.shape} and reference {ref.shape} differ in shape")
    hop = hop or window
    n = ref.shape[-1]
    starts = range(0, n - window + 1, hop) if n >= window else [0]
    out = []
    for s in starts:
        r, e = ref[:, s:s + window], est[:, s:s + window]
        signal, error = np.sum(r ** 2), np.sum((e - r) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.nan if signal == 0 else 10 * np.log10(signal / error))
    return np.array(out)


def track_sdr(est: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    """Median of the 1 s framewise SDR of one stem of one track (NaN if every frame is silent)."""
    frames = framewise_sdr(est, ref, sample_rate)
    frames = frames[~np.isnan(frames)]
    return float(np.median(frames)) if frames.size else float("nan")


def stem_sdrs(est: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """:func:`track_sdr` of every stem. est, ref (K, C, N) -> (K,)."""
    return np.array([track_sdr(e, r, sample_rate) for e, r in zip(est, ref)])


def dataset_sdr(track_scores) -> float:
    """The data set's score of one stem: the median over tracks (NaN tracks left out)."""
    v = np.asarray(list(track_scores), dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else float("nan")
