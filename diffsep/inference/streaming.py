"""Separation of a file of any length in flat memory: read in blocks, resampled to the model's rate
as a stream, separated chunk by chunk as the chunks fill, the finished samples resampled back and
written block by block to temporaries renamed into place at the end.

    peak = separate_to_files(separator, "3h_concert.flac", [Path("out/s1.wav"), Path("out/s2.wav")])

The outputs are those of :func:`diffsep.inference.loading.separate_signal` on the whole file
(the same chunks, the same order of separator calls, the same overlap-add; soxr's stream gives
the samples of its one-shot resampling), of length round(N · out_rate / rate) exactly. Working
memory is a few chunks and blocks, whatever the file's length or rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..storage.audio import AudioError, audio_info
from ..storage.audio_blocks import BLOCK_FRAMES, BlockResampler, read_blocks, scan_audio, write_blocks
from .loading import NonFiniteEstimate, chunk_samples
from .separator import align_permutation, chunk_starts, ola_window


class StreamingSeparation:
    """Overlap-add separation (:func:`~diffsep.inference.separator.separate` for one input) of a
    signal of known ``length`` fed in blocks: ``push`` a block (C, n) of the mixture, get the
    samples (K, C, m) whose estimate is final; ``finish`` returns the rest. Together the outputs
    are the (K, C, length) that ``separate`` returns, with at most ``batch_size`` chunks and one
    chunk of overlap held."""

    def __init__(self, separator: Callable[[Tensor], Tensor], length: int, channels: int, *,
                 chunk: int = 0, overlap: int = 0, batch_size: int = 1):
        if length < 1:
            raise ValueError("empty mixture")
        self.separator, self.length, self.channels = separator, length, channels
        self.n_src = separator.n_src
        self.overlap, self.batch_size = overlap, batch_size
        self.starts = chunk_starts(length, chunk, overlap)
        self.size = min(length, chunk) if chunk > 0 else length
        self.align = not getattr(separator, "fixed_order", False)
        self._next = 0  # index of the next chunk to run
        self._in, self._in_at, self._received = torch.zeros(channels, 0), 0, 0  # mixture from _in_at
        self._blocks: list[Tensor] = []  # pushed after _in (joined when a chunk needs them)
        self._out = torch.zeros(self.n_src, channels, 0)  # overlap-added estimates from _out_at
        self._weight, self._out_at = torch.zeros(0), 0
        self._previous: tuple[int, Tensor] | None = None

    def push(self, x: Tensor | np.ndarray) -> Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected blocks ({self.channels}, n), got {tuple(x.shape)}")
        if self._received + x.shape[1] > self.length:
            raise ValueError(f"more than the {self.length} samples announced")
        self._blocks.append(x)
        self._received += x.shape[1]
        return self._run(final=False)

    def finish(self) -> Tensor:
        if self._received != self.length:
            raise ValueError(f"{self._received} samples given, {self.length} announced")
        return self._run(final=True)

    def _run(self, final: bool) -> Tensor:
        done = []
        while self._next < len(self.starts):
            ready = [i for i in range(self._next, min(self._next + self.batch_size, len(self.starts)))
                     if self.starts[i] + self.size <= self._received]
            if len(ready) < self.batch_size and ready[-1:] != [len(self.starts) - 1]:
                break  # a batch is full, or it holds the last chunk (as separate() batches them)
            self._separate(ready)
            self._next = ready[-1] + 1
            done.append(self._release(self.starts[self._next] if self._next < len(self.starts) else self.length))
        if final and self._next < len(self.starts):
            raise RuntimeError("chunks left at the end")  # cannot happen once length samples came
        return torch.cat(done, -1) if done else torch.zeros(self.n_src, self.channels, 0)

    def _separate(self, indices: list[int]) -> None:
        n = self.size
        self._in, self._blocks = torch.cat([self._in, *self._blocks], 1), []
        x = torch.stack([self._in[:, s - self._in_at:s - self._in_at + n] for s in (self.starts[i] for i in indices)])
        est = self.separator(x).detach().float().cpu()
        for i, e in zip(indices, est):
            start = self.starts[i]
            if self.align and self._previous is not None:
                p_start, p_est = self._previous
                shared = p_start + p_est.shape[-1] - start
                if shared > 0:
                    e = e[align_permutation(p_est[..., start - p_start:], e[..., :shared])]
            self._previous = (start, e)
            w = ola_window(n, self.overlap, i == 0, i == len(self.starts) - 1)
            grow = start + n - self._out_at - self._out.shape[-1]
            if grow > 0:
                self._out = torch.cat([self._out, torch.zeros(self.n_src, self.channels, grow)], -1)
                self._weight = torch.cat([self._weight, torch.zeros(grow)])
            a = start - self._out_at
            self._out[..., a:a + n] += e * w
            self._weight[a:a + n] += w

    def _release(self, upto: int) -> Tensor:
        """The estimates before sample ``upto`` (no later chunk reaches them), normalised by the
        cross-fade weights; the mixture before ``upto`` is dropped too."""
        k = upto - self._out_at
        out = self._out[..., :k] / self._weight[:k]
        self._out, self._weight, self._out_at = self._out[..., k:], self._weight[k:], upto
        drop = min(upto, self._received) - self._in_at
        self._in, self._in_at = self._in[:, drop:], self._in_at + drop
        return out


def map_channels(path, have: int, channels: int, downmix: bool) -> Callable[[np.ndarray], np.ndarray]:
    """How a file's blocks (have, n) become a model's (channels, n): as they are, a mono file
    played on every channel, or (``downmix``) the channel mean for a mono model. Raises
    AudioError naming the file for a channel count the model cannot take."""
    if have == channels:
        return lambda x: x
    if have == 1:
        return lambda x: np.repeat(x, channels, axis=0)
    if channels == 1 and downmix:
        return lambda x: x.mean(0, keepdims=True)
    need = "mono" if channels == 1 else f"{channels} channels"
    raise AudioError(f"{path}: {have} channels; the model separates {need}"
                     + (" (pass --downmix to average the channels)" if channels == 1 else ""))


def separate_to_files(separator, path, outs: list[Path], *, downmix: bool = False,
                      out_rate: int | None = None, chunk_seconds: float = 10.0,
                      overlap_seconds: float = 1.0, batch_size: int = 1, subtype: str | None = None,
                      block_frames: int = BLOCK_FRAMES,
                      progress: Callable[[float], None] | None = None) -> float:
    """Separate the audio file ``path`` into the K files ``outs`` (one per source, each with the
    model's channels), at ``out_rate`` (default: the file's), written all or nothing. The file is
    checked in a first pass (unreadable, truncated, non-finite, silent, too short, channels: an
    AudioError naming it, before any separation); a non-finite estimate raises
    :class:`~diffsep.inference.loading.NonFiniteEstimate` and writes nothing. ``progress`` is
    called with the seconds of the file done. Returns the peak |sample| written."""
    from .file_separation import MIN_SECONDS

    path = Path(path)
    C, K, model_rate = separator.channels, separator.n_src, separator.sample_rate
    to_model = map_channels(path, audio_info(path)[2], C, downmix)  # from the header, before reading
    scan = scan_audio(path, block_frames)
    if scan.peak == 0:
        raise AudioError(f"{path}: digital silence (all samples are zero)")
    rate = scan.sample_rate
    if scan.frames < MIN_SECONDS * rate:
        raise AudioError(f"{path}: too short ({scan.frames} samples = {scan.frames / rate:.4f} s; "
                         f"at least {MIN_SECONDS} s needed)")
    out_rate = out_rate or rate
    length = scan.frames if rate == model_rate else (scan.frames * model_rate + rate // 2) // rate
    n_out = int(round(scan.frames * out_rate / rate))  # as separate_signal
    chunk, overlap = chunk_samples(chunk_seconds, overlap_seconds, model_rate)
    down, up = BlockResampler(rate, model_rate, C), BlockResampler(model_rate, out_rate, K * C)
    stream = StreamingSeparation(separator, length, C, chunk=chunk, overlap=overlap, batch_size=batch_size)
    fed, written, peak = 0, 0, 0.0

    def feed(y: np.ndarray, last: bool = False) -> Tensor:
        nonlocal fed
        y = y[:, :length - fed]  # soxr's length is round(N · model_rate / rate); never more
        if last and fed + y.shape[1] < length:
            y = np.pad(y, ((0, 0), (0, length - fed - y.shape[1])))
        fed += y.shape[1]
        est = stream.push(y)
        return torch.cat([est, stream.finish()], -1) if last else est

    def emit(est: Tensor, writer, last: bool = False) -> None:
        nonlocal written, peak
        y = up.push(est.reshape(K * C, -1).numpy())
        if last:
            y = np.concatenate([y, up.finish()], 1)
        y = y[:, :n_out - written]
        if last and written + y.shape[1] < n_out:
            y = np.pad(y, ((0, 0), (0, n_out - written - y.shape[1])))
        if y.size:
            if not np.isfinite(y).all():
                raise NonFiniteEstimate(f"the separation gave NaN or Inf samples (from {written / out_rate:.2f} s; "
                                        f"input peak {scan.peak:.3g}): the model's weights or the input's "
                                        f"level are out of range")
            peak = max(peak, float(np.abs(y).max()))
            writer.write(list(y.reshape(K, C, -1)))
        written += y.shape[1]

    with write_blocks(outs, out_rate, C, subtype) as writer:
        done = 0
        for x in read_blocks(path, scan.frames, block_frames):
            emit(feed(down.push(to_model(x))), writer)
            done += x.shape[1]
            if progress is not None:
                progress(done / rate)
        emit(feed(down.finish(), last=True), writer, last=True)
    return peak
