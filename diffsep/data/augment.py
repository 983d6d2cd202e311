"""Source augmentations of dynamic mixing that change a voice's timbre (math only, numpy)."""
from __future__ import annotations

import numpy as np


def eq_curve_db(n_bins: int, rng: np.random.Generator, max_db: float, anchors: int = 6) -> np.ndarray:
    """A random smooth gain curve over ``n_bins`` rfft bins, in dB: ``anchors`` gains drawn uniformly
    in ±max_db at log-spaced bins from the first non-zero bin to the last, joined linearly in
    log-frequency (constant below the first anchor). -> (n_bins,)"""
    gains = rng.uniform(-max_db, max_db, anchors)
    if n_bins < 2:
        return np.full(n_bins, gains[0])
    at = np.linspace(0.0, np.log(n_bins - 1), anchors)
    return np.interp(np.log(np.maximum(np.arange(n_bins), 1)), at, gains)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """``x`` (N,) through a zero-phase filter with the gain curve of :func:`eq_curve_db` (applied
    on the DFT of the whole signal: the curve is smooth, so its impulse response is short and the
    circular wrap negligible). -> (N,) same dtype."""
    spectrum = np.fft.rfft(x)
    gain = 10 ** (eq_curve_db(len(spectrum), rng, max_db) / 20)
    return np.fft.irfft(spectrum * gain, n=len(x)).astype(x.dtype)
