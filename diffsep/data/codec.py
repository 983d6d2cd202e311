"""Telephone-channel simulation (a dynamic-mixing augmentation; numpy and scipy only, no codec
binaries).

:func:`telephone` takes a voice to 8 kHz, band-limits it to 300-3400 Hz, passes it through one of
three crude narrow-band codecs and band-limits it again (the receiving side's filter, which also
removes the quantisation noise above 3.4 kHz), then returns it at the input's rate:

- ``mulaw`` / ``alaw``: G.711-style 8-bit companding quantisation (mu = 255, A = 87.6) at a level
  drawn in -30 to -12 dBFS (loud inputs clip at full scale);
- ``gsm``: a GSM-full-rate-like LPC coder: 20 ms frames, order-8 LPC with log-area ratios rounded
  to coarse steps, and the residual of each 5 ms subframe kept on one of three decimation grids
  (the one with most energy, after a low-pass weighting) with 3-bit block-adaptive quantisation:
  no long-term predictor, so the excitation is coarser than the real codec's.
"""
from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import fftconvolve, firwin, lfilter, resample_poly

from .lpc import levinson, step_up

CODECS = ("mulaw", "alaw", "gsm")
RATE = 8000


def band_limit(x: np.ndarray, sample_rate: int, low: float = 300.0, high: float = 3400.0,
               transition: float = 100.0) -> np.ndarray:
    """``x`` (N,) through a zero-phase band-pass applied on its DFT: gain 1 in [low, high - transition],
    raised-cosine slopes over ``transition`` Hz inside the band edges, exactly 0 outside. -> (N,)"""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    up = np.clip((f - low) / transition, 0.0, 1.0)
    down = np.clip((high - f) / transition, 0.0, 1.0)
    gain = np.sin(0.5 * np.pi * up) ** 2 * np.sin(0.5 * np.pi * down) ** 2
    return np.fft.irfft(spectrum * gain, n=len(x))


def mu_law(x: np.ndarray, mu: float = 255.0, bits: int = 8) -> np.ndarray:
    """``x`` in [-1, 1] compressed with the mu-law, rounded to 2 ** bits levels, expanded."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = _quantise(y, bits)
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def a_law(x: np.ndarray, a: float = 87.6, bits: int = 8) -> np.ndarray:
    """``x`` in [-1, 1] compressed with the A-law, rounded to 2 ** bits levels, expanded."""
    ax, norm = np.abs(x), 1 + np.log(a)
    y = np.where(ax < 1 / a, a * ax / norm, (1 + np.log(np.maximum(a * ax, 1.0))) / norm)
    y = _quantise(np.sign(x) * y, bits)
    ay = np.abs(y)
    return np.sign(y) * np.where(ay < 1 / norm, ay * norm / a, np.exp(ay * norm - 1) / a)


def _quantise(y: np.ndarray, bits: int) -> np.ndarray:
    """Mid-rise uniform quantisation of y in [-1, 1] to 2 ** bits levels."""
    half = 2 ** (bits - 1)
    return (np.clip(np.floor(y * half), -half, half - 1) + 0.5) / half


LAR_STEPS = np.array([0.1, 0.1, 0.15, 0.15, 0.25, 0.25, 0.4, 0.4])  # coarser for higher orders
WEIGHTING = firwin(11, 1 / 3)  # low-pass before the 3:1 grid decimation


def gsm_like(x: np.ndarray, frame: int = 160, sub: int = 40) -> np.ndarray:
    """``x`` (N,) at 8 kHz through the crude LPC / regular-pulse coder described above: the
    analysis runs on all frames at once, the synthesis filter frame by frame (its state carried
    over). -> (N,)"""
    order = len(LAR_STEPS)
    n_frames = -(-len(x) // frame)
    xp = np.pad(x, (order, n_frames * frame - len(x) + order))
    # (T, frame + 2 order) analysis windows over each frame and `order` samples either side
    spans = np.lib.stride_tricks.sliding_window_view(xp, frame + 2 * order)[::frame][:n_frames]
    w = spans * np.hanning(frame + 2 * order)
    r = np.stack([np.einsum("tn,tn->t", w[:, :w.shape[1] - i], w[:, i:]) for i in range(order + 1)])
    r[0] = r[0] * 1.0001 + 1e-12
    _, k = levinson(r, order)
    lar = np.log((1 + k) / (1 - k))
    steps = LAR_STEPS[:, None]
    a = step_up(np.tanh(np.round(lar / steps) * steps / 2))  # (order + 1, T)
    # residual e[n] = sum_i a_i x[n - i] of each frame with its own (quantised) predictor
    lagged = np.stack([spans[:, order - i:order - i + frame] for i in range(order + 1)], axis=1)
    residual = np.einsum("it,tin->tn", a, lagged)  # (T, frame)
    smooth = fftconvolve(residual, WEIGHTING[None], mode="same", axes=1)
    blocks = smooth.reshape(n_frames, frame // sub, sub)
    energy = np.stack([np.sum(blocks[..., m::3] ** 2, axis=-1) for m in range(3)], axis=-1)
    grid = np.argmax(energy, axis=-1)  # (T, S): the decimation grid kept in each subframe
    excitation = np.zeros_like(blocks)
    for m in range(3):
        pulses = np.where((grid == m)[..., None], blocks[..., m::3], 0.0)
        peak = np.abs(pulses).max(axis=-1, keepdims=True)
        excitation[..., m::3] += np.where(peak > 0, 3 * _quantise(pulses / np.where(peak > 0, peak, 1), 3) * peak, 0)
    excitation = excitation.reshape(n_frames, frame)
    out = np.zeros(order + n_frames * frame)
    for t in range(n_frames):
        past = out[order + t * frame - 1::-1][:order] if t else np.zeros(order)  # y[n-1], y[n-2], ...
        zi = np.array([-np.dot(a[m + 1:, t], past[:order - m]) for m in range(order)])
        out[order + t * frame:order + (t + 1) * frame], _ = lfilter([1.0], a[:, t], excitation[t], zi=zi)
    return out[order:order + len(x)]


def telephone(x: np.ndarray, sample_rate: int, rng: np.random.Generator, codec: str | None = None) -> np.ndarray:
    """``x`` (N,) through a telephone channel: a codec of :data:`CODECS` (drawn from ``rng`` unless
    given) at a level drawn from ``rng`` (it matters to the companding codecs). -> (N,) same dtype."""
    drawn = CODECS[int(rng.integers(len(CODECS)))]
    codec = codec or drawn
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
    level_db = rng.uniform(-30.0, -12.0)
    g = gcd(RATE, sample_rate)
    y = resample_poly(x.astype(np.float64), RATE // g, sample_rate // g) if sample_rate != RATE else x.astype(np.float64)
    y = band_limit(y, RATE)
    rms = np.sqrt(np.mean(y ** 2))
    if rms > 0:
        y = y * (10 ** (level_db / 20) / rms)
        if codec == "gsm":
            y = gsm_like(np.clip(y, -1.0, 1.0))
        else:
            y = (mu_law if codec == "mulaw" else a_law)(np.clip(y, -1.0, 1.0))
        y = band_limit(y, RATE)
    if sample_rate != RATE:
        y = resample_poly(y, sample_rate // g, RATE // g)
    return np.pad(y, (0, max(0, len(x) - len(y))))[:len(x)].astype(x.dtype)
