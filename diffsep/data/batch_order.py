"""Resumable, process-aware batch order.

Each epoch is one permutation of the dataset drawn from (seed, epoch). It is cut into global
batches of ``batch_size × world_size`` items (the incomplete tail is dropped); rank r takes items
[r·batch_size, (r+1)·batch_size) of every global batch. So a run on W processes sees exactly the
batches of a single-process run with a W times larger batch, and a resumed run can start at any
batch of an epoch.
"""
from __future__ import annotations

import torch


class GlobalBatchOrder:
    def __init__(self, n_items: int, batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, shuffle: bool = True):
        self.n_items, self.batch_size = n_items, batch_size
        self.world_size, self.rank = world_size, rank
        self.seed, self.shuffle = seed, shuffle
        if len(self) == 0:
            raise ValueError(f"{n_items} items do not fill one global batch of "
                             f"{batch_size} x {world_size}")

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.n_items // (self.batch_size * self.world_size)

    def batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """This rank's index lists for batches start, start + 1, ... of the epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(self.n_items, generator=g).tolist()
        else:
            order = list(range(self.n_items))
        G = self.batch_size * self.world_size
        lo = self.rank * self.batch_size
        return [order[b * G + lo:b * G + lo + self.batch_size] for b in range(start, len(self))]
