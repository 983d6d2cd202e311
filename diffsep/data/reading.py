"""One rule for reading audio items, in training and evaluation alike.

Every file is read at the model's sample rate: a file at another rate is resampled with soxr
(band-limited, high quality) and sample positions (crop offsets, lengths) count at the model's
rate. Every file must have the model's channel count. A source may differ from its mixture in
length by up to LENGTH_TOLERANCE_S (it is cropped or zero-padded to the mixture), not more.
Errors are one line naming the file (:class:`~diffsep.storage.audio.AudioError`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..storage.audio import AudioError, audio_info, fit_length, read_audio, resample

LENGTH_TOLERANCE_S = 0.05  # sources (and estimates) may differ from their mixture by this much
RESAMPLE_CONTEXT_S = 0.05  # file audio read beyond a crop on each side, for the resampling filter


def channels_text(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def clip_info(path, sample_rate: int, channels: int) -> int:
    """Frames of ``path`` counted at ``sample_rate`` (from the header); checks the channel count."""
    sr, n, ch = audio_info(path)
    if ch != channels:
        raise AudioError(f"{path}: {ch} channels, expected {channels_text(channels)}")
    return _frames_at(n, sr, sample_rate)


def read_clip(path, sample_rate: int, channels: int = 1, start: int = 0,
              frames: int | None = None) -> np.ndarray:
    """``frames`` samples of ``path`` from ``start`` (both counted at ``sample_rate``; None: to
    the end), resampled to ``sample_rate`` if the file has another rate, zero-padded past the
    end of the file. -> (channels, frames) float32."""
    path = Path(path)
    sr, n, ch = audio_info(path)
    if ch != channels:
        raise AudioError(f"{path}: {ch} channels, expected {channels_text(channels)}")
    if n == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    frames = max(0, _frames_at(n, sr, sample_rate) - start) if frames is None else frames
    if sr == sample_rate:
        x = _read(path, start, min(start + frames, n))
        return fit_length(x, frames) if x is not None else np.zeros((channels, frames), np.float32)
    # read a window aligned to the common sample grid of both rates (so the cut is exact), with
    # context for the filter: the same samples as resampling the whole file, up to ~1e-6
    g = math.gcd(sr, sample_rate)
    block, out_block = sr // g, sample_rate // g
    context = math.ceil(RESAMPLE_CONTEXT_S * sr)
    s0 = max(0, (start * block // out_block - context) // block * block)
    s1 = min(n, -(-(start + frames) * block // out_block) + context)
    x = _read(path, s0, s1)
    if x is None:
        return np.zeros((channels, frames), np.float32)
    y = resample(x, sr, sample_rate, length=_frames_at(s1 - s0, sr, sample_rate) if s1 == n else None)
    offset = start - s0 // block * out_block
    return fit_length(y[:, offset:], frames)


def item_frames(item, sample_rate: int, channels: int = 1) -> int:
    """Frames of the mixture of ``item`` (a :class:`~diffsep.data.dataset.Item`) at
    ``sample_rate``, from the header; checks the channel count."""
    return clip_info(item.mix, sample_rate, channels)


def read_item(item, sample_rate: int, channels: int = 1, start: int = 0,
              frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mixture and sources of ``item`` from ``start``, at most ``frames`` samples (None: to
    the end of the mixture), read by the rule of this module; with ``noise_from_mix`` the last
    source is mix − Σ sources. -> (mix (C, n), sources (K, C, n)) float32."""
    total = item_frames(item, sample_rate, channels)
    frames = total - start if frames is None else min(frames, total - start)
    mix = read_clip(item.mix, sample_rate, channels, start, frames)
    sources = []
    for path in item.sources:
        check_length(path, clip_info(path, sample_rate, channels), total, sample_rate)
        sources.append(read_clip(path, sample_rate, channels, start, frames))
    if item.noise_from_mix:
        sources.append(mix - np.sum(sources, axis=0))
    return mix, np.stack(sources)


def check_length(path, frames: int, length: int, sample_rate: int, partner: str = "its mixture") -> None:
    """Refuse a file of ``frames`` samples whose partner has ``length`` (beyond the tolerance)."""
    if abs(frames - length) > LENGTH_TOLERANCE_S * sample_rate:
        raise AudioError(f"{path}: {frames} samples where {partner} has {length}")


def _frames_at(n: int, sr: int, sample_rate: int) -> int:
    """Length of n samples at rate sr once resampled to ``sample_rate`` (what soxr returns)."""
    return n if sr == sample_rate else (n * sample_rate + sr // 2) // sr


def _read(path: Path, s0: int, s1: int) -> np.ndarray | None:
    """Samples [s0, s1) of the file, (C, s1 − s0); None when the range is empty."""
    return read_audio(path, start=s0, frames=s1 - s0)[0] if s1 > s0 else None
