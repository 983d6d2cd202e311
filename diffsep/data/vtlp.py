"""Vocal-tract-length perturbation: formants moved by a warp factor, pitch kept (a dynamic-mixing
augmentation; numpy and scipy only).

The frequency axis is warped as in VTLP (Jaitly & Hinton, 2013): f -> alpha · f up to a boundary
frequency, then linearly to Nyquist, which stays fixed (:func:`vtlp_warp`). Rather than warping
the whole short-time spectrum (which would move the harmonics, i.e. the pitch, too), only each
frame's spectral envelope is warped: the envelope is the cepstrally smoothed log magnitude
(quefrencies under 2 ms, shorter than any voice's pitch period), and every frame is multiplied by
the smooth gain warped envelope / envelope. The harmonics and the phases stay where they were;
the formants (the envelope's peaks) move by alpha.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import istft, stft

from .lpc import levinson


def vtlp_warp(freqs: np.ndarray, alpha: float, nyquist: float, boundary: float = 0.6) -> np.ndarray:
    """The VTLP map of ``freqs`` (Hz): alpha · f below ``boundary`` · nyquist · min(alpha, 1) / alpha,
    then the straight line to (nyquist, nyquist). Monotone, 0 -> 0, nyquist -> nyquist."""
    f_hi = boundary * nyquist * min(alpha, 1.0)
    knee = f_hi / alpha
    slope = (nyquist - f_hi) / (nyquist - knee)
    return np.where(freqs <= knee, alpha * freqs, nyquist - slope * (nyquist - freqs))


def lpc_log_envelope(power: np.ndarray, order: int, lag_window: float = 0.0) -> np.ndarray:
    """The natural-log all-pole (LPC) magnitude envelope, up to a per-frame constant, of each frame
    of the power spectra ``power`` (F, T) (rfft bins of an n_fft = 2 (F - 1) frame): the
    autocorrelation is the inverse DFT of the power, the predictor comes from Levinson-Durbin (all
    frames at once), with a little white noise (-40 dB) and the Gaussian lag window
    exp(-(lag_window · lag)² / 2) (2π · bandwidth / sample rate) for stability.
    -> (F, T) log |1 / A(f)|."""
    n_fft = 2 * (power.shape[0] - 1)
    r = np.fft.irfft(power, n=n_fft, axis=0)[:order + 1]  # (order + 1, T)
    r = r * np.exp(-0.5 * (lag_window * np.arange(order + 1)) ** 2)[:, None]
    r[0] = r[0] * 1.0001 + 1e-12
    a, _ = levinson(r, order)
    return -np.log(np.abs(np.fft.rfft(a, n=n_fft, axis=0)) + 1e-12)


def formant_shift(x: np.ndarray, alpha: float, sample_rate: int, max_gain_db: float = 40.0) -> np.ndarray:
    """``x`` (N,) with its spectral envelope warped by :func:`vtlp_warp` (formants times ``alpha``,
    pitch unchanged); the per-bin gain is clipped to ±max_gain_db. -> (N,) same dtype."""
    if alpha == 1.0 or len(x) < 16:
        return x.copy()
    n_fft = int(2 ** np.ceil(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    _, _, spec = stft(x.astype(np.float64), nperseg=n_fft, noverlap=n_fft - hop, window="hann")
    envelope = lpc_log_envelope(np.abs(spec) ** 2, order=2 + sample_rate // 1000,
                                lag_window=2 * np.pi * 50 / sample_rate)  # (F, T)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    # the warped envelope at f is the envelope at the frequency that the warp sends to f
    source = np.interp(freqs, vtlp_warp(freqs, alpha, sample_rate / 2), freqs) / freqs[1]  # in bins
    lo = np.minimum(source.astype(int), len(freqs) - 2)
    frac = (source - lo)[:, None]
    warped = envelope[lo] * (1 - frac) + envelope[lo + 1] * frac
    limit = max_gain_db / 20 * np.log(10)
    gain = np.exp(np.clip(warped - envelope, -limit, limit))
    _, y = istft(spec * gain, nperseg=n_fft, noverlap=n_fft - hop, window="hann")
    return np.pad(y, (0, max(0, len(x) - len(y))))[:len(x)].astype(x.dtype)
