"""Audio file reading with clear one-line errors naming the file and the problem."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """A file that cannot be used as audio input; the message names the file and the reason."""


def audio_info(path) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the header, without reading the samples."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def read_audio(path, *, start: int = 0, frames: int = -1, allow_silent: bool = True) -> tuple[np.ndarray, int]:
    """Read samples as float32 of shape (channels, frames) and the sample rate.

    Raises AudioError for a missing, unreadable, empty or non-finite file (and for digital
    silence when ``allow_silent`` is False).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        x, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    x = x.T
    if x.shape[1] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if not allow_silent and not np.any(x):
        raise AudioError(f"{path}: digital silence (all samples are zero)")
    return np.ascontiguousarray(x), int(sr)


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
