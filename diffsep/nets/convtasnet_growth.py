"""Deepening a trained Conv-TasNet without changing what it computes (a warm start for a larger
network, ``train.init_deepen``).

A Conv-TasNet's separator is R repeats of X blocks with dilations 1 … 2^(X−1) (block index
r X + x). A deeper network (X' ≥ X, R' ≥ R, every other size equal) keeps each trained block at
the same repeat and dilation, r X + x -> r X' + x. The new blocks (dilations 2^X … 2^(X'−1) in each
repeat, and whole new repeats) start with zero residual and skip convolutions: each passes its
input through unchanged and adds nothing to the skip sum, so the deeper network computes exactly
the trained one's function, and their inner layers learn as soon as those convolutions move away
from zero (a residual branch zero-initialised the usual way).
"""
from __future__ import annotations

import re

import torch
from torch import Tensor

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def block_map(X: int, R: int, X_new: int, R_new: int) -> dict[int, int]:
    """Old block index -> new block index: r X + x -> r X' + x (same repeat, same dilation)."""
    if X_new < X or R_new < R:
        raise ValueError(f"a deeper network needs X >= {X} and R >= {R}, got X={X_new}, R={R_new}")
    return {r * X + x: r * X_new + x for r in range(R) for x in range(X)}


def deepened(weights: dict[str, Tensor], X: int, R: int, target: dict[str, Tensor],
             X_new: int, R_new: int) -> dict[str, Tensor]:
    """A state dict for the deeper network whose current state is ``target`` (X_new, R_new),
    from the trained ``weights`` (X, R): trained tensors at their mapped names, the new blocks'
    own initialisation for their inner layers, and zeros for their residual and skip
    convolutions (weights and biases). Raises ValueError when a tensor other than the blocks'
    differs in shape (the networks differ in more than depth)."""
    moved = block_map(X, R, X_new, R_new)
    out = {}
    for name, value in weights.items():
        m = _BLOCK.match(name)
        key = f"blocks.{moved[int(m[1])]}.{m[2]}" if m else name
        if key not in target:
            raise ValueError(f"{name}: no such tensor in the deeper network")
        if target[key].shape != value.shape:
            raise ValueError(f"{name}: shape {tuple(value.shape)} against {tuple(target[key].shape)} in the "
                             f"deeper network (only X and R may differ)")
        out[key] = value
    new_blocks = set(range(X_new * R_new)) - set(moved.values())
    for key, value in target.items():
        if key in out:
            continue
        m = _BLOCK.match(key)
        if not m or int(m[1]) not in new_blocks:
            raise ValueError(f"{key}: the trained network has no such tensor (only X and R may differ)")
        zero = m[2].split(".")[0] in ("res", "skip")
        out[key] = torch.zeros_like(value) if zero else value.clone()
    return out
