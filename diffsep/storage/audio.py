"""Audio file reading with clear one-line errors naming the file and the problem."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """A file that cannot be used as audio input; the message names the file and the reason."""


def audio_info(path) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the header, without reading the samples; a truncated
    file is refused here already where its header says so (every container with sizes in it)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(os.fsencode(path))
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    _check_complete(path)
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
        with sf.SoundFile(os.fsencode(path)) as f:
            declared, sr, estimated = f.frames, f.samplerate, f.format == "MP3"
            start = min(start, declared)
            if start:
                f.seek(start)
            x = f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    _check_complete(path)
    wanted = declared - start if frames < 0 else min(frames, declared - start)
    if x.shape[0] < wanted - (declared // 100 if estimated else 0):
        # FLAC, MP3: the header's frame count (MP3's an estimate), but fewer frames decode
        raise AudioError(f"{path}: truncated (the header declares {declared} frames, "
                         f"{start + x.shape[0]} can be read)")
    x = x.T
    if x.shape[1] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if not allow_silent and not np.any(x):
        raise AudioError(f"{path}: digital silence (all samples are zero)")
    return np.ascontiguousarray(x), int(sr)


def _check_complete(path: Path) -> None:
    """Refuse a file whose header declares more audio than the file holds, in any container
    (recognised by its first bytes, not by its name; see :mod:`diffsep.storage.containers`)."""
    from .containers import TruncatedError, check_complete

    try:
        check_complete(path)
    except TruncatedError as e:
        raise AudioError(f"{path}: {e}") from None
    except OSError as e:
        raise AudioError(f"{path}: unreadable ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Crop or right-pad with zeros the last axis to ``length``. (..., M) -> (..., length)."""
    pad = [(0, 0)] * (x.ndim - 1) + [(0, max(0, length - x.shape[-1]))]
    return np.pad(x, pad)[..., :length]


def resample(x: np.ndarray, sr_in: int, sr_out: int, length: int | None = None) -> np.ndarray:
    """Band-limited resampling with soxr (high quality). x (C, N) float -> (C, M) float32, with M
    fitted to ``length`` when given."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in != sr_out:
        import soxr

        y = soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality="HQ")
        x = np.ascontiguousarray(y.reshape(y.shape[0], -1).T)
    return x if length is None else fit_length(x, length)


SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24", ".ogg": "VORBIS"}  # what the command lines write
# What folder scans pick up: every container libsndfile reads by its header (not headerless RAW).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
                    ".caf", ".w64", ".rf64")


def write_audio_group(items: list[tuple[Path, np.ndarray]], sample_rate: int,
                      subtype: str | None = None) -> None:
    """Write several files all or nothing (see :mod:`diffsep.storage.atomic`): each (path, x (C, N) or
    (N,)). The default subtype is float WAV (no clipping), 24-bit FLAC or Vorbis, by extension."""
    import soundfile as sf

    from .atomic import atomic_paths

    paths = [Path(path) for path, _ in items]
    with atomic_paths(paths) as temps:
        for tmp, path, (_, x) in zip(temps, paths, items):
            x = np.asarray(x, dtype=np.float32)
            sf.write(os.fsencode(tmp), x.T if x.ndim == 2 else x, sample_rate,
                     subtype=subtype or SUBTYPES.get(path.suffix.lower()),
                     format=path.suffix.lstrip(".").upper() or None)
