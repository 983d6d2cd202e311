"""Training items for music separation with the Demucs paper's augmentations, each a switch:

- ``remix``: each stem comes from a random track of the split, cropped at its own random offset
  (the music form of dynamic mixing: new mixtures every epoch); otherwise all stems come from
  item i's track, at one common random offset;
- ``shift_seconds``: each stem's offset moves by a random amount of up to this much (time shift);
- ``channel_swap``: each stem's left and right channels are swapped with probability 1/2;
- ``sign_flip``: each stem is multiplied by ±1;
- ``gain_range`` [lo, hi]: each stem is scaled by a factor drawn uniformly in [lo, hi].

The mixture is always the sum of the augmented stems. An epoch has as many items as the tracks
hold whole segments (a 4-minute track gives 24 items of 10 s), item i belonging to one track.
Draws are a function of (seed, epoch, index), as for every dataset of the toolkit, so that runs
and resumes repeat exactly.
"""
from __future__ import annotations

import numpy as np
import torch

from ..storage.audio import fit_length
from .dataset import Item
from .reading import clip_info, read_clip


class MusicTrainSet(torch.utils.data.Dataset):
    """Items (track folders) -> {"mix": (C, segment), "sources": (K, C, segment), "length",
    "name"}."""

    def __init__(self, items: list[Item], sample_rate: int, segment: int, channels: int = 2, seed: int = 0,
                 remix: bool = False, shift_seconds: float = 0.0, channel_swap: bool = False,
                 sign_flip: bool = False, gain_range=()):
        if gain_range and (len(gain_range) != 2 or not 0 <= gain_range[0] <= gain_range[1]):
            raise ValueError(f"gain_range must be [lo, hi] with 0 <= lo <= hi, got {list(gain_range)}")
        if channel_swap and channels != 2:
            raise ValueError(f"channel_swap needs stereo stems, the model has {channels} channel(s)")
        self.items, self.sample_rate, self.segment, self.channels = items, sample_rate, segment, channels
        self.seed, self.remix, self.shift = seed, remix, int(shift_seconds * sample_rate)
        self.channel_swap, self.sign_flip, self.gain_range = channel_swap, sign_flip, tuple(gain_range)
        self.epoch = 0
        self.frames = []
        for it in items:
            self.frames.append(min(clip_info(path, sample_rate, channels) for path in it.sources))
        if not items:
            raise ValueError("no training tracks")
        self.track_of = [j for j, n in enumerate(self.frames) for _ in range(max(1, n // segment))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.track_of)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 11))
        track = self.track_of[i]
        K = len(self.items[track].sources)
        tracks = rng.integers(len(self.items), size=K) if self.remix else np.full(K, track)
        common = self._offset(track, rng)
        stems = []
        for k, j in enumerate(tracks):
            start = self._offset(int(j), rng) if self.remix else common
            if self.shift:
                start = int(np.clip(start + rng.integers(-self.shift, self.shift + 1), 0,
                                    max(0, self.frames[j] - self.segment)))
            stems.append(self._augment(self._read(self.items[j].sources[k], start, self.frames[j]), rng))
        sources = torch.from_numpy(np.stack(stems))
        mix = sources.sum(0)
        return {"mix": mix, "sources": sources, "length": self.segment, "name": f"music-{self.epoch}-{i}"}

    def _offset(self, j: int, rng) -> int:
        return int(rng.integers(0, max(1, self.frames[j] - self.segment + 1)))

    def _read(self, path, start: int, frames: int) -> np.ndarray:
        """(C, segment) float32 from ``start``, zero-padded past ``frames`` (the track's length)."""
        x = read_clip(path, self.sample_rate, self.channels, start, min(self.segment, frames - start))
        return fit_length(x, self.segment)

    def _augment(self, x: np.ndarray, rng) -> np.ndarray:
        if self.channel_swap and rng.random() < 0.5:
            x = x[::-1]
        if self.sign_flip and rng.random() < 0.5:
            x = -x
        if self.gain_range:
            x = x * rng.uniform(*self.gain_range)
        return np.ascontiguousarray(x, dtype=np.float32)
