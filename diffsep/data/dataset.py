"""The dataset shared by every layout: a list of items (mixture file + source files), random
crops at a common offset, length filtering and padding collate (normalisation:
:mod:`diffsep.core.normalization`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .reading import item_frames, read_item


@dataclass(frozen=True)
class Item:
    """One example. ``sources`` are files of the K sources; with ``noise_from_mix`` the last source
    is derived as mix − sum(sources) (VoiceBank-DEMAND: noise = noisy − clean)."""
    name: str
    mix: Path
    sources: tuple[Path, ...]
    noise_from_mix: bool = False


class SeparationDataset(torch.utils.data.Dataset):
    """Items -> {"mix": (C, N), "sources": (K, C, N), "length": N, "name": str}
    float32 tensors (C = ``channels``: 1 for speech, 2 for stereo music).

    Args:
        items: the examples (see :mod:`diffsep.data.layouts`).
        sample_rate: the model's rate; a file at another rate is resampled to it (the rule of
            :mod:`diffsep.data.reading`, which evaluation shares).
        segment: crop length in samples (None: whole files). Shorter files are kept whole and
            zero-padded by :func:`collate`.
        random_crop: crop at a random common offset (training) or at the start (validation).
        seed: crops are a function of (seed, epoch, index) only, so runs and resumes repeat
            exactly whatever the number of workers; call :meth:`set_epoch` every epoch.
        min_samples: drop items shorter than this (reads only file headers).
        pad_to_segment: zero-pad shorter items to ``segment`` here, so that every batch has the
            same length (``length`` is then the padded length).
        channels: every file must have this many channels (clear error otherwise).
        Sources may differ from their mixture in length by up to
        :data:`~diffsep.data.reading.LENGTH_TOLERANCE_S` (zero-padded or cropped).
    """

    def __init__(self, items: list[Item], sample_rate: int, segment: int | None = None,
                 random_crop: bool = True, seed: int = 0, min_samples: int = 0,
                 pad_to_segment: bool = False, channels: int = 1):
        self.sample_rate = sample_rate
        self.channels = channels
        self.segment = segment if segment and segment > 0 else None
        self.random_crop = random_crop
        self.pad_to_segment = pad_to_segment
        self.seed = seed
        self.epoch = 0
        self.items, self.lengths = [], []
        for it in items:
            n = item_frames(it, self.sample_rate, self.channels)
            if n >= min_samples:
                self.items.append(it)
                self.lengths.append(n)
        if not self.items:
            raise ValueError(f"no usable items (of {len(items)}, min_samples={min_samples})")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        it, n = self.items[i], self.lengths[i]
        start, frames = 0, n
        if self.segment is not None and n > self.segment:
            frames = self.segment
            if self.random_crop:
                rng = np.random.default_rng((self.seed, self.epoch, i))
                start = int(rng.integers(0, n - self.segment + 1))
        mix, sources = read_item(it, self.sample_rate, self.channels, start, frames)
        mix, sources = torch.from_numpy(mix), torch.from_numpy(sources)
        if self.pad_to_segment and self.segment is not None and frames < self.segment:
            mix = torch.nn.functional.pad(mix, (0, self.segment - frames))
            sources = torch.nn.functional.pad(sources, (0, self.segment - frames))
        return {"mix": mix, "sources": sources, "length": mix.shape[-1], "name": it.name}


def collate(batch: list[dict]) -> dict:
    """Zero-pad to the longest item. -> {"mix": (B, C, N), "sources": (B, K, C, N),
    "lengths": (B,) long, "names": list[str]}."""
    N = max(b["length"] for b in batch)
    pad = lambda x: torch.nn.functional.pad(x, (0, N - x.shape[-1]))  # noqa: E731
    return {"mix": torch.stack([pad(b["mix"]) for b in batch]),
            "sources": torch.stack([pad(b["sources"]) for b in batch]),
            "lengths": torch.tensor([b["length"] for b in batch]),
            "names": [b["name"] for b in batch]}
