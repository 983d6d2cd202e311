"""Long recordings in blocks: reading, resampling and writing audio with working memory that does
not grow with the recording's length (hours of 44.1 kHz stereo take what one block takes).

    scan = scan_audio(path)                                  # checks the whole file once
    up = BlockResampler(scan.sample_rate, 8000, scan.channels)
    for x in read_blocks(path, scan.frames):                 # x (C, n) float32
        y = up.push(x)                                       # (C, m): the same samples as
    y = up.finish()                                          # resample() of the whole file

Blocks are (channels, frames) float32 like every other array of this package; the checks and
their one-line messages are those of :func:`diffsep.storage.audio.read_audio`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .audio import SUBTYPES, AudioError, audio_info

BLOCK_FRAMES = 1 << 16  # frames read at a time (1.5 s at 44.1 kHz)


@dataclass(frozen=True)
class AudioScan:
    """What one pass over a file found: its rate, the frames that can be decoded, its channel
    count and its peak |sample| (0: digital silence)."""
    sample_rate: int
    frames: int
    channels: int
    peak: float


def scan_audio(path, block_frames: int = BLOCK_FRAMES) -> AudioScan:
    """Read ``path`` once, block by block, and check it as :func:`read_audio` does: missing,
    unreadable, truncated (by its header, and by the frames that decode against those the header
    declares), empty or non-finite files raise AudioError naming the file."""
    import soundfile as sf

    path = Path(path)
    sr, declared, channels = audio_info(path)  # missing, unreadable, truncated by its header
    frames, peak = 0, 0.0
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            estimated = f.format == "MP3"
            for x in f.blocks(block_frames, dtype="float32", always_2d=True):
                if not np.isfinite(x).all():
                    raise AudioError(f"{path}: contains NaN or Inf samples")
                if x.size:
                    peak = max(peak, float(np.abs(x).max()))
                frames += x.shape[0]
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    if frames < declared - (declared // 100 if estimated else 0):
        raise AudioError(f"{path}: truncated (the header declares {declared} frames, {frames} can be read)")
    if frames == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    return AudioScan(sr, frames, channels, peak)


def read_blocks(path, frames: int, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """The first ``frames`` frames of ``path`` (what :func:`scan_audio` counted) as blocks
    (C, n) float32, n <= block_frames. Raises AudioError if the file now holds fewer."""
    import soundfile as sf

    path = Path(path)
    done = 0
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            while done < frames:
                x = f.read(min(block_frames, frames - done), dtype="float32", always_2d=True)
                if x.shape[0] == 0:
                    break
                done += x.shape[0]
                yield np.ascontiguousarray(x.T)
    except (AudioError, GeneratorExit):
        raise
    except Exception as e:
        raise AudioError(f"{path}: unreadable audio ({_first_line(e)})") from None
    if done < frames:
        raise AudioError(f"{path}: changed while it was read ({done} of {frames} frames)")


class BlockResampler:
    """Band-limited resampling of a signal given in blocks (soxr's stream, high quality): the
    concatenated outputs are the samples :func:`~diffsep.storage.audio.resample` gives for the
    whole signal, of length round(N · sr_out / sr_in). Blocks (C, n) -> (C, m) float32; the
    identity when the rates are equal."""

    def __init__(self, sr_in: int, sr_out: int, channels: int):
        self.channels = channels
        self._stream = None
        if sr_in != sr_out:
            import soxr

            self._stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected blocks ({self.channels}, n), got {x.shape}")
        if self._stream is None:
            return x
        y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=last)
        return np.ascontiguousarray(y.reshape(-1, self.channels).T)

    def finish(self) -> np.ndarray:
        """What the filter still holds, once the input has ended. -> (C, m)"""
        return self.push(np.zeros((self.channels, 0), np.float32), last=True)


class BlockWriter:
    """Writes K files block by block, each (C, n) or (n,) per block; see :func:`write_blocks`."""

    def __init__(self, files, paths):
        self._files, self._paths = files, paths

    def write(self, blocks) -> None:
        """One block per file, in the order of the paths. A failed write (libsndfile says little:
        a short count, "System error.") raises OSError naming the output."""
        for f, path, x in zip(self._files, self._paths, blocks):
            x = np.asarray(x, dtype=np.float32)
            try:
                f.write(np.ascontiguousarray(x.T if x.ndim == 2 else x))
            except Exception as e:
                raise OSError(f"{path}: cannot write ({_first_line(e)})") from e


@contextmanager
def write_blocks(paths: list[Path], sample_rate: int, channels: int,
                 subtype: str | None = None) -> Iterator[BlockWriter]:
    """Open K outputs for writing in blocks, all or nothing (see :mod:`diffsep.storage.atomic`):
    temporaries renamed into place when the block closes cleanly, removed on any error. Subtype
    and format as :func:`~diffsep.storage.audio.write_audio_group` (float WAV, 24-bit FLAC ...)."""
    import soundfile as sf

    from .atomic import atomic_paths

    paths = [Path(p) for p in paths]
    with atomic_paths(paths) as temps:
        files = []
        try:
            for tmp, path in zip(temps, paths):
                files.append(sf.SoundFile(os.fsencode(tmp), "w", sample_rate, channels,
                                          subtype=subtype or SUBTYPES.get(path.suffix.lower()),
                                          format=path.suffix.lstrip(".").upper() or None))
            yield BlockWriter(files, paths)
        finally:
            for f in files:
                f.close()


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
