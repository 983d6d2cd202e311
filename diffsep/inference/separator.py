"""Separation of whole recordings: normalise, sample, rescale, and for long inputs overlapping
chunks whose source order is aligned to the previous chunk, joined by windowed overlap-add.

A *separator* is any callable ``mix (B, C, n) -> estimates (B, K, C, n)`` on raw-scale audio with attributes ``n_src`` and ``sample_rate`` (and ``fixed_order``):
:class:`Separator` wraps any model family's estimate (:mod:`diffsep.inference` builds one from a
checkpoint); test oracles fit the same slot.
:func:`separate` does the chunking, so every separator handles inputs of any length with flat
working memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..core.normalization import denormalize, normalize
from ..core.pit import best_permutation
from ..storage.names import check_plain_names

RESCALE = ("denormalize", "mix_projection", "mix_consistency")


def rescale(est: Tensor, mix: Tensor, how: str = "denormalize") -> Tensor:
    """Final scaling of raw-scale estimates (B, K, C, n) against their mixture (B, C, n), channel
    by channel.

    ``denormalize``: leave them as they are (normalisation already undone);
    ``mix_projection``: scale each estimate by the least-squares gain <mix, ŝ_k> / ||ŝ_k||²
    (what the reference separation script does);
    ``mix_consistency``: add (mix − Σ_k ŝ_k) / K to every estimate, so they sum to the mixture.
    """
    if how == "denormalize":
        return est
    mix = mix[:, None]
    if how == "mix_projection":
        gain = (mix * est).sum(-1, keepdim=True) / (est.square().sum(-1, keepdim=True) + 1e-10)
        return gain * est
    if how == "mix_consistency":
        return est + (mix - est.sum(1, keepdim=True)) / est.shape[1]
    raise ValueError(f"unknown rescale {how!r}; valid: {', '.join(RESCALE)}")


@dataclass
class Separator:
    """A trained network as a separator of raw-scale audio: mix (B, C, n) -> (B, K, C, n).

    Each item is normalised (mean removed, divided by its std), passed to ``estimate`` (normalised
    mixtures (B, C, n) and ``generator`` -> estimates (B, K, C, n): a family's estimate bound to its
    network, a sampler with an oracle score in tests ...), mapped back to the input's scale and
    rescaled (see :func:`rescale`). ``generator`` drives any sampling noise (seed it for
    repeatable outputs); ``nfe`` is the network evaluations per call, ``fixed_order`` whether the
    outputs come in a fixed source order (enhancement), ``info`` what result files record.
    """
    estimate: Callable[[Tensor, torch.Generator | None], Tensor]
    n_src: int
    sample_rate: int
    channels: int = 1  # C of the mixtures it takes
    device: torch.device = torch.device("cpu")
    nfe: int = 1
    rescale: str = "denormalize"
    generator: torch.Generator | None = None
    fixed_order: bool = False
    info: dict = field(default_factory=dict)
    stems: tuple[str, ...] = ()  # names of the sources in order (music stems), if they have names
    dataset: dict = field(default_factory=dict)  # the model's data settings (data.kind, its options, test_split): what evaluate scores by default

    def __post_init__(self):
        if self.rescale not in RESCALE:
            raise ValueError(f"unknown rescale {self.rescale!r}; valid: {', '.join(RESCALE)}")
        if self.stems:  # they name output folders: plain names, one per source
            check_plain_names(self.stems, "source names")
            if len(self.stems) != self.n_src:
                raise ValueError(f"source names: {len(self.stems)} names {list(self.stems)} for {self.n_src} sources")
        self.device = torch.device(self.device)

    @property
    def source_names(self) -> list[str]:
        """Output names: the stems' names, else s1 ... sK."""
        return list(self.stems) if self.stems else [f"s{k + 1}" for k in range(self.n_src)]

    def __call__(self, mix: Tensor) -> Tensor:
        # inference mode: no autograd bookkeeping at all (networks take their fast path, see
        # diffsep/nets/inference_path.py); the result is cloned out of it into an ordinary tensor
        # that callers may update in place
        with torch.inference_mode():
            mix = mix.to(self.device, torch.float32)
            mix_n, _, mean, std = normalize(mix)
            est = rescale(denormalize(self.estimate(mix_n, self.generator), mean, std), mix, self.rescale)
        return est.clone()


# -- chunking ------------------------------------------------------------------------------------
def chunk_starts(length: int, chunk: int, overlap: int) -> list[int]:
    """Start sample of every chunk covering [0, length): hop chunk − overlap, the last chunk
    ending exactly at ``length`` (so every chunk has the full length). One chunk when
    ``length <= chunk``."""
    if chunk <= 0 or length <= chunk:
        return [0]
    if not 0 <= overlap < chunk:
        raise ValueError(f"need 0 <= overlap < chunk, got overlap={overlap}, chunk={chunk}")
    starts = list(range(0, length - chunk, chunk - overlap))
    return starts + [length - chunk]


def ola_window(n: int, overlap: int, first: bool, last: bool) -> Tensor:
    """Cross-fade weights of one chunk (n,): linear ramps of ``overlap`` samples at the sides that
    meet a neighbour, 1 elsewhere. Every weight is > 0, so dividing the overlap-added estimates by
    the overlap-added weights reconstructs exactly wherever the chunks agree."""
    w = torch.ones(n)
    r = min(overlap, n)
    if r > 0:
        ramp = (torch.arange(r) + 0.5) / r
        if not first:
            w[:r] = torch.minimum(w[:r], ramp)
        if not last:
            w[n - r:] = torch.minimum(w[n - r:], ramp.flip(0))
    return w


def align_permutation(previous: Tensor, current: Tensor) -> Tensor:
    """Source order of ``current`` that agrees best with ``previous`` on the same samples: the
    permutation minimising the summed squared difference (so it works for overlaps of any length,
    even a few samples, where a scale-invariant measure degenerates). (K, m), (K, m) -> (K,) long,
    such that ``current[perm]`` is in the order of ``previous``. Multichannel sources (K, C, m)
    are compared over all their channels."""
    previous, current = previous.flatten(1), current.flatten(1)
    pairwise = (previous[:, None, :] - current[None, :, :]).square().sum(-1)  # [j prev, i cur]
    perm, _ = best_permutation(pairwise[None], maximize=False)
    return perm[0]


@dataclass
class _Chunk:
    item: int
    start: int
    size: int
    first: bool
    last: bool


def _plan(lengths: Sequence[int], chunk: int, overlap: int) -> Iterator[_Chunk]:
    for i, n in enumerate(lengths):
        starts = chunk_starts(n, chunk, overlap)
        size = min(n, chunk) if chunk > 0 else n
        for c, s in enumerate(starts):
            yield _Chunk(i, s, size, c == 0, c == len(starts) - 1)


def _batches(plan: Iterator[_Chunk], batch_size: int) -> Iterator[list[_Chunk]]:
    """Consecutive chunks of equal size, at most batch_size per batch."""
    batch: list[_Chunk] = []
    for c in plan:
        if batch and (len(batch) == batch_size or batch[0].size != c.size):
            yield batch
            batch = []
        batch.append(c)
    if batch:
        yield batch


def separate(separator: Callable[[Tensor], Tensor], mixes: Sequence[Tensor], *,
             chunk: int = 0, overlap: int = 0, batch_size: int = 1) -> list[Tensor]:
    """Separate mixtures of any length.

    Args:
        separator: mix (B, C, n) -> (B, K, C, n) (see the module docstring).
        mixes: mixtures of one channel count C, each (C, N_i), at the separator's sample rate.
        chunk: chunk length in samples; 0 processes every input whole.
        overlap: samples shared by consecutive chunks; unless the separator has a
            ``fixed_order``, each chunk's sources are reordered to match the previous chunk on
            this overlap (least squared difference); then chunks are cross-faded.
        batch_size: chunks (or whole short inputs of equal length) per separator call.

    Returns: one (K, C, N_i) CPU float32 tensor per input. Working memory is
    bounded by ``batch_size`` chunks whatever the input length; only the outputs grow with it.
    """
    if any(m.dim() != 2 for m in mixes):
        raise ValueError(f"mixtures must be (C, N), got {[tuple(m.shape) for m in mixes if m.dim() != 2][0]}")
    mixes = [m.float().cpu() for m in mixes]
    channels = {m.shape[0] for m in mixes}
    if len(channels) > 1:
        raise ValueError(f"mixtures with different channel counts {sorted(channels)}")
    lengths = [m.shape[-1] for m in mixes]
    if any(n == 0 for n in lengths):
        raise ValueError("empty mixture")
    K, C = separator.n_src, channels.pop()
    align = not getattr(separator, "fixed_order", False)
    out = [torch.zeros(K, C, n) for n in lengths]
    weight = [torch.zeros(n) for n in lengths]
    previous: dict[int, tuple[int, Tensor]] = {}
    for batch in _batches(_plan(lengths, chunk, overlap), batch_size):
        n = batch[0].size
        x = torch.stack([mixes[c.item][:, c.start:c.start + n] for c in batch])
        est = separator(x).detach().float().cpu()
        for c, e in zip(batch, est):
            if align and c.item in previous:
                p_start, p_est = previous[c.item]
                shared = p_start + p_est.shape[-1] - c.start
                if shared > 0:
                    e = e[align_permutation(p_est[..., c.start - p_start:], e[..., :shared])]
            previous[c.item] = (c.start, e)
            w = ola_window(n, overlap, c.first, c.last)
            out[c.item][..., c.start:c.start + n] += e * w
            weight[c.item][c.start:c.start + n] += w
            if c.last:
                previous.pop(c.item, None)
    return [o / w for o, w in zip(out, weight)]
