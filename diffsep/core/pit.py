"""Permutation helpers shared by the loss, the metrics and chunk alignment.

All permutations act on the source axis (axis 1) of (B, K, ...) tensors. K is small (2–5), so
exhaustive search over the K! permutations is exact and cheap.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=None)
def _perm_list(n_src: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(n_src)))


def permutations(n_src: int, device=None) -> Tensor:
    """All K! permutations of range(K), identity first. -> (K!, K) long."""
    return torch.tensor(_perm_list(n_src), dtype=torch.long, device=device)


def permute(x: Tensor, perm: Tensor) -> Tensor:
    """Reorder the sources of every item. x (B, K, ...), perm (B, K) -> (B, K, ...) with
    out[b, i] = x[b, perm[b, i]]."""
    idx = perm.reshape(*perm.shape, *(1,) * (x.ndim - 2)).expand_as(x)
    return torch.gather(x, 1, idx)


def all_permutations(x: Tensor) -> Tensor:
    """Every reordering of the sources. x (B, K, ...) -> (B, K!, K, ...)."""
    perms = permutations(x.shape[1], x.device)
    return x[:, perms]


def best_permutation(pairwise: Tensor, maximize: bool = True) -> tuple[Tensor, Tensor]:
    """Permutation optimising the summed pairwise score of matched pairs.

    pairwise (B, K, K) holds score(estimate i, reference j). Returns (perm (B, K), total (B,))
    where estimate i is matched to reference perm[b, i]; total is the summed score.
    """
    K = pairwise.shape[-1]
    perms = permutations(K, pairwise.device)  # (P, K)
    rows = torch.arange(K, device=pairwise.device)
    totals = pairwise[:, rows, perms].sum(-1)  # (B, P)
    best = totals.argmax(-1) if maximize else totals.argmin(-1)
    return perms[best], totals.gather(1, best[:, None])[:, 0]


def random_permutation(batch: int, n_src: int, *, device=None,
                       generator: torch.Generator | None = None) -> Tensor:
    """An independent uniformly random permutation per item. -> (B, K) long."""
    u = torch.rand(batch, n_src, generator=generator, device=device)
    return u.argsort(dim=1)
