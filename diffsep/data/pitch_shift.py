"""Pitch shift at constant duration (a dynamic-mixing augmentation; numpy and scipy only).

:func:`time_stretch` changes a signal's duration without changing its pitch by WSOLA
(waveform-similarity overlap-add): Hann frames of ~30 ms are laid down every half frame of the
output, each read near its nominal input position at the offset (within ±10 ms) whose waveform
best continues the previous frame, so periodic voiced speech stays phase-coherent.
:func:`pitch_shift` stretches by the pitch ratio r and then reads the result r times faster
(band-limited FFT resampling), which multiplies every frequency by r and restores the length.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import resample


def time_stretch(x: np.ndarray, factor: float, sample_rate: int, frame_seconds: float = 0.03,
                 tolerance_seconds: float = 0.01) -> np.ndarray:
    """``x`` (N,) made ``factor`` times longer (factor > 1) or shorter at the same pitch, by
    WSOLA. -> (round(N · factor),) float64."""
    x = np.asarray(x, dtype=np.float64)
    n_out = int(round(len(x) * factor))
    frame = max(8, 2 * int(frame_seconds * sample_rate / 2))
    hop = frame // 2  # output hop; a periodic Hann window at 50 % overlap sums to 1
    delta = max(1, int(tolerance_seconds * sample_rate))
    window = np.hanning(frame + 1)[:frame]
    n_frames = n_out // hop + 2
    step = hop / factor  # input hop
    # padded input: frame k's nominal start is round(k · step) + delta, searched ± delta
    xp = np.pad(x, (frame // 2 + delta, int(n_frames * step) + frame + 3 * delta + hop))
    y = np.zeros(n_frames * hop + frame)
    norm = np.zeros_like(y)
    pos = delta
    for k in range(n_frames):
        if k:
            nominal = int(round(k * step))  # = start of the search window (nominal + delta - delta)
            template = xp[pos + hop:pos + hop + frame]  # the natural continuation of the last frame
            region = xp[nominal:nominal + frame + 2 * delta]
            pos = nominal + int(np.argmax(np.correlate(region, template, mode="valid")))
        y[k * hop:k * hop + frame] += window * xp[pos:pos + frame]
        norm[k * hop:k * hop + frame] += window
    y = y[frame // 2:frame // 2 + n_out]
    norm = norm[frame // 2:frame // 2 + n_out]
    return y / np.maximum(norm, 1e-3)


def pitch_shift(x: np.ndarray, ratio: float, sample_rate: int) -> np.ndarray:
    """``x`` (N,) with every frequency multiplied by ``ratio`` (2 ** (semitones / 12)) and the same
    duration: WSOLA-stretched by ``ratio``, then resampled back to N samples (band-limited, so a
    shift up loses what would pass Nyquist). -> (N,) same dtype."""
    if ratio == 1.0 or len(x) < 2:
        return x.copy()
    stretched = time_stretch(x, ratio, sample_rate)
    pad = len(stretched) // 4  # zeros after the signal take the circular wrap of FFT resampling
    out = resample(np.pad(stretched, (0, pad)), int(round((len(stretched) + pad) / ratio)))
    return np.pad(out, (0, max(0, len(x) - len(out))))[:len(x)].astype(x.dtype)
