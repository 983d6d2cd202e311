"""Build a checkpoint's network without trusting its config: the config says how big the network
is, the weights in the file say how big it may be. :func:`build_for_weights` builds it for real
but counts what the tensor factories allocate on the way, and stops (one sentence, nothing big
allocated) as soon as the network grows well beyond the weights it is to hold: a file of 1 MB
whose config claims ``nf=100000`` is refused in milliseconds instead of asking for 320 GB.

(The network is not built on the meta device first: building there imports torch's compiler
stack, seconds of start-up for every load. The count needs no second build.)
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from .checkpoint import CheckpointError

# factories whose size is their leading argument(s): size is checked before anything is allocated
_SIZED = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full, torch.empty_strided}
_NEW = {torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones, torch.Tensor.new_full,
        torch.Tensor.new_empty_strided}
_FIRST_ARG_ONLY = {torch.full, torch.empty_strided, torch.Tensor.new_full, torch.Tensor.new_empty_strided}
SLACK = 2 ** 22  # elements allowed beyond twice the weights (STFT windows, FIR kernels, temporaries)
SLACK_TENSORS = 1024  # tensors allowed beyond twice as many as the weights (a config of a million blocks)


class TooLarge(RuntimeError):
    """The network being built outgrew its allowance."""


def requested_elements(func, args: tuple, kwargs: dict) -> int | None:
    """The number of elements a tensor factory call asks for, or None for other calls."""
    if func in _NEW:
        args = args[1:]
    elif func not in _SIZED:
        return None
    if "size" in kwargs:
        size = kwargs["size"]
    elif not args:
        return None
    elif func in _FIRST_ARG_ONLY or (len(args) == 1 and not isinstance(args[0], int)):
        size = args[0]
    else:
        size = args
    try:
        return math.prod(int(n) for n in (size if not isinstance(size, int) else (size,)))
    except (TypeError, ValueError):
        return None


class AllocationBudget(TorchFunctionMode):
    """While active, tensor factories may create ``limit`` elements in all, in at most ``tensors``
    tensors; a request beyond that (or any single result beyond ``limit``) raises
    :class:`TooLarge` before it is allocated."""

    def __init__(self, limit: int, tensors: int | None = None):
        super().__init__()
        self.limit, self.used = limit, 0
        self.tensors, self.made = tensors, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        n = requested_elements(func, args, kwargs)
        if n is not None:
            if self.used + n > self.limit or (self.tensors is not None and self.made >= self.tensors):
                raise TooLarge(self.used + n, self.made + 1)
            self.used, self.made = self.used + n, self.made + 1
        out = func(*args, **kwargs)
        if n is None and isinstance(out, torch.Tensor) and out.numel() > self.limit:
            raise TooLarge(out.numel(), self.made)  # another constructor (arange, tensor ...): a single huge result
        return out


def stored_elements(weights: dict) -> int:
    return sum(v.numel() for v in weights.values() if isinstance(v, torch.Tensor))


def build_for_weights(build: Callable[[], torch.nn.Module], weights: dict, where) -> torch.nn.Module:
    """``build()`` (a network from a checkpoint's config), allowed to allocate twice as many
    elements as ``weights`` hold plus :data:`SLACK`, in twice as many tensors plus
    :data:`SLACK_TENSORS`. Raises CheckpointError naming ``where`` when the network would be
    larger: its config does not describe these weights."""
    stored = stored_elements(weights)
    try:
        with AllocationBudget(2 * stored + SLACK, 2 * len(weights) + SLACK_TENSORS):
            return build()
    except TooLarge as e:
        values, tensors = e.args
        raise CheckpointError(f"{where}: its config describes a network larger than the weights it holds "
                              f"(over {values:,} values in {tensors:,} tensors for {stored:,} in "
                              f"{len(weights):,} stored); the config and the weights do not belong "
                              f"together") from None
