"""Growing a trained Conv-TasNet without changing what it computes (a warm start for a larger
network): deeper (``train.init_deepen``) and wider (``train.init_widen``).

Deeper. A Conv-TasNet's separator is R repeats of X blocks with dilations 1 … 2^(X−1) (block index
r X + x). A deeper network (X' ≥ X, R' ≥ R, every other size equal) keeps each trained block at
the same repeat and dilation, r X + x -> r X' + x. The new blocks (dilations 2^X … 2^(X'−1) in each
repeat, and whole new repeats) start with zero residual and skip convolutions: each passes its
input through unchanged and adds nothing to the skip sum, so the deeper network computes exactly
the trained one's function, and their inner layers learn as soon as those convolutions move away
from zero (a residual branch zero-initialised the usual way).

Wider. Each of N, B, H and Sc may grow to a whole multiple m of its trained size: new channel j
is a copy of channel j mod C (its incoming weights, bias, norm gain and bias are copied), and every
weight that reads those channels is split among the m copies in random fractions that sum to 1
per weight. Copies hold equal values, so each sum over them gives the trained value, and the
norms see every channel m times, which leaves their mean and variance (over channels and frames)
as they were: the wider network computes the trained function. Unequal fractions make the copies'
gradients differ from the first step, so they grow apart (equal halves would keep them identical
for ever).
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


WIDTHS = ("N", "B", "H", "Sc")

# (tensor name, {dim: (size, role)}): "copy" dims hold channels (duplicated), "split" dims read
# them (weights shared out among the copies). "KN" is the mask convolution's K groups of N rows.
_WIDE_DIMS = [
    (r"encoder\.weight", {0: ("N", "copy")}),
    (r"decoder\.weight", {0: ("N", "split")}),
    (r"in_norm\.(gamma|beta)", {1: ("N", "copy")}),
    (r"in_norm\.(weight|bias|running_mean|running_var)", {0: ("N", "copy")}),
    (r"bottleneck\.weight", {0: ("B", "copy"), 1: ("N", "split")}),
    (r"bottleneck\.bias", {0: ("B", "copy")}),
    (r"blocks\.\d+\.inp\.weight", {0: ("H", "copy"), 1: ("B", "split")}),
    (r"blocks\.\d+\.(inp\.bias|depthwise\.weight|depthwise\.bias)", {0: ("H", "copy")}),
    (r"blocks\.\d+\.norm[12]\.(gamma|beta)", {1: ("H", "copy")}),
    (r"blocks\.\d+\.norm[12]\.(weight|bias|running_mean|running_var)", {0: ("H", "copy")}),
    (r"blocks\.\d+\.res\.weight", {0: ("B", "copy"), 1: ("H", "split")}),
    (r"blocks\.\d+\.res\.bias", {0: ("B", "copy")}),
    (r"blocks\.\d+\.skip\.weight", {0: ("Sc", "copy"), 1: ("H", "split")}),
    (r"blocks\.\d+\.skip\.bias", {0: ("Sc", "copy")}),
    (r"mask_conv\.weight", {0: ("KN", "copy"), 1: ("Sc", "split")}),
    (r"mask_conv\.bias", {0: ("KN", "copy")}),
    (r"(.*\.)?(act[12]|mask_act)\.weight|.*num_batches_tracked", {}),
]


def width_factors(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    """{size: m} with new[size] = m old[size] for N, B, H and Sc; ValueError if one is not a whole
    multiple (at least 1) of the trained size."""
    out = {}
    for k in WIDTHS:
        if new[k] < old[k] or new[k] % old[k]:
            raise ValueError(f"convtasnet.{k}={new[k]} is not a whole multiple of the trained {k}={old[k]}")
        out[k] = new[k] // old[k]
    return out


def _copies(C: int, m: int, groups: int = 1) -> Tensor:
    """Indices of the new channels' originals: m C channels per group, channel j of a group copies
    channel j mod C of the same group. (groups m C,)"""
    j = torch.arange(m * C)
    return torch.cat([g * C + j % C for g in range(groups)])


def _split_fractions(shape: tuple, dim: int, C: int, m: int, groups: int, generator) -> Tensor:
    """Random fractions of ``shape`` whose sum over the m copies of each channel along ``dim`` is 1
    (each in (0, 2/m) around 1/m)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    view = list(shape[:dim]) + [groups, m, C] + list(shape[dim + 1:])
    u = u.reshape(view)
    a = (1 + (u - u.mean(dim + 1, keepdim=True))) / m
    return a.reshape(shape)


def widened(weights: dict[str, Tensor], old: dict[str, int], new: dict[str, int],
            generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The state dict of the same Conv-TasNet (same X and R) with N, B, H and Sc grown from ``old``
    to ``new`` (each a whole multiple; dicts with those four keys), computing the same function
    (see the module docstring). ``generator`` draws the split fractions (reproducible runs).
    Raises ValueError for a size that is not a multiple or a tensor this mapping does not know."""
    m = width_factors(old, new)
    K = weights["mask_conv.weight"].shape[0] // old["N"]
    sizes = {**{k: (old[k], m[k], 1) for k in WIDTHS}, "KN": (old["N"], m["N"], K)}
    out = {}
    for name, value in weights.items():
        dims = next((d for pattern, d in _WIDE_DIMS if re.fullmatch(pattern, name)), None)
        if dims is None:
            raise ValueError(f"{name}: not a tensor of a Conv-TasNet that widening knows")
        w = value
        for dim, (size, _) in dims.items():
            C, k, groups = sizes[size]
            if w.shape[dim] != C * groups:
                raise ValueError(f"{name}: {w.shape[dim]} channels along dim {dim}, expected {size}={C * groups}")
            w = w.index_select(dim, _copies(C, k, groups))
        for dim, (size, role) in dims.items():
            C, k, groups = sizes[size]
            if role == "split" and k > 1:
                a = _split_fractions(tuple(w.shape), dim, C, k, groups, generator)
                w = (w.double() * a).to(value.dtype)
        out[name] = w.clone() if w is value else w
    return out
