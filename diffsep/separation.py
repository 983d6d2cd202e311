"""Separation of whole recordings: normalise, sample, rescale, and for long inputs overlapping
chunks whose source order is aligned to the previous chunk, joined by windowed overlap-add.

A *separator* is any callable ``mix (B, 1, n) -> estimates (B, K, n)`` on raw-scale audio with
attributes ``n_src`` and ``sample_rate``: :class:`DiffSepSeparator` wraps a score model and a
sampler; the Conv-TasNet baseline and test oracles fit the same slot. :func:`separate` does the
chunking, so every separator handles inputs of any length with flat working memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from .checkpoint import InferenceModel
from .config import SamplerConfig
from .data.base import denormalize, normalize
from .pit import best_permutation
from .sampler import nfe, sample
from .sde import DiffSepSDE

RESCALE = ("denormalize", "mix_projection", "mix_consistency")


def rescale(est: Tensor, mix: Tensor, how: str = "denormalize") -> Tensor:
    """Final scaling of raw-scale estimates (B, K, n) against their mixture (B, 1, n).

    ``denormalize``: leave them as they are (normalisation already undone);
    ``mix_projection``: scale each estimate by the least-squares gain <mix, ŝ_k> / ||ŝ_k||²
    (what the reference separation script does);
    ``mix_consistency``: add (mix − Σ_k ŝ_k) / K to every estimate, so they sum to the mixture.
    """
    if how == "denormalize":
        return est
    if how == "mix_projection":
        gain = (mix * est).sum(-1, keepdim=True) / (est.square().sum(-1, keepdim=True) + 1e-10)
        return gain * est
    if how == "mix_consistency":
        return est + (mix - est.sum(1, keepdim=True)) / est.shape[1]
    raise ValueError(f"unknown rescale {how!r}; valid: {', '.join(RESCALE)}")


@dataclass
class DiffSepSeparator:
    """Score model + SDE + sampler as a separator: mix (B, 1, n) -> (B, K, n).

    Each item is normalised (mean removed, divided by its std), sampled from the reverse SDE, and
    mapped back to the input's scale; ``rescale`` is then applied (see :func:`rescale`).
    ``generator`` drives the sampler noise (seed it for repeatable outputs).
    """
    model: torch.nn.Module
    sde: DiffSepSDE
    sample_rate: int
    options: SamplerConfig = field(default_factory=SamplerConfig)
    rescale: str = "denormalize"
    generator: torch.Generator | None = None

    @property
    def n_src(self) -> int:
        return self.sde.n_src

    @property
    def nfe(self) -> int:
        o = self.options
        return nfe(o.kind, o.steps, o.corrector_steps, o.solver)

    @property
    def device(self) -> torch.device:
        return _model_device(self.model)

    @torch.no_grad()
    def __call__(self, mix: Tensor) -> Tensor:
        o = self.options
        return _normalised(lambda m: sample(
            self.model, self.sde, m, kind=o.kind, steps=o.steps, snr=o.snr,
            corrector_steps=o.corrector_steps, t_eps=o.t_eps, solver=o.solver,
            reference_dt=o.reference_dt, generator=self.generator), mix, self.device, self.rescale)


@dataclass
class MaskingSeparator:
    """A discriminative network (Conv-TasNet) as a separator: normalise, one forward pass, undo
    the normalisation, rescale. mix (B, 1, n) -> (B, K, n)."""
    model: torch.nn.Module
    sample_rate: int
    rescale: str = "denormalize"
    nfe: int = 1

    @property
    def n_src(self) -> int:
        return self.model.n_src

    @property
    def device(self) -> torch.device:
        return _model_device(self.model)

    @torch.no_grad()
    def __call__(self, mix: Tensor) -> Tensor:
        return _normalised(self.model, mix, self.device, self.rescale)


def _normalised(estimate: Callable[[Tensor], Tensor], mix: Tensor, device, how: str) -> Tensor:
    """Normalise each item, estimate the sources, map them back to the input's scale, rescale.
    mix (B, 1, n) -> (B, K, n)."""
    mix = mix.to(device, torch.float32)
    mix_n, _, mean, std = normalize(mix)
    return rescale(denormalize(estimate(mix_n), mean, std), mix, how)


def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def make_separator(inference: InferenceModel, *, device="cpu", sampler: dict | None = None,
                   rescale: str = "denormalize", seed: int = 0):
    """The separator for a loaded checkpoint, on ``device``. ``sampler`` overrides the sampler
    settings stored with the model (keys of :class:`diffsep.config.SamplerConfig`)."""
    if rescale not in RESCALE:
        raise ValueError(f"unknown rescale {rescale!r}; valid: {', '.join(RESCALE)}")
    if inference.kind == "diffsep":
        known = {f.name for f in fields(SamplerConfig)}
        merged = {k: v for k, v in {**inference.sampler, **(sampler or {})}.items()
                  if k in known and v is not None}
        model = inference.model.to(device).eval()
        generator = torch.Generator(device=device).manual_seed(seed)
        return DiffSepSeparator(model, DiffSepSDE(inference.n_src, **inference.sde),
                                inference.sample_rate, SamplerConfig(**merged), rescale, generator)
    if inference.kind == "convtasnet":
        return MaskingSeparator(inference.model.to(device).eval(), inference.sample_rate, rescale)
    raise ValueError(f"unknown model kind {inference.kind!r}; valid: diffsep, convtasnet")


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
    such that ``current[perm]`` is in the order of ``previous``."""
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
        separator: mix (B, 1, n) -> (B, K, n) (see the module docstring).
        mixes: mono mixtures, each (N_i,) or (1, N_i), at the separator's sample rate.
        chunk: chunk length in samples; 0 processes every input whole.
        overlap: samples shared by consecutive chunks; each chunk's sources are reordered to match
            the previous chunk on this overlap (least squared difference), then chunks are
            cross-faded.
        batch_size: chunks (or whole short inputs of equal length) per separator call.

    Returns: one (K, N_i) CPU float32 tensor per input. Working memory is bounded by
    ``batch_size`` chunks whatever the input length; only the outputs grow with it.
    """
    mixes = [m.reshape(-1).float().cpu() for m in mixes]
    lengths = [m.numel() for m in mixes]
    if any(n == 0 for n in lengths):
        raise ValueError("empty mixture")
    K = separator.n_src
    out = [torch.zeros(K, n) for n in lengths]
    weight = [torch.zeros(n) for n in lengths]
    previous: dict[int, tuple[int, Tensor]] = {}
    for batch in _batches(_plan(lengths, chunk, overlap), batch_size):
        n = batch[0].size
        x = torch.stack([mixes[c.item][c.start:c.start + n] for c in batch])[:, None]
        est = separator(x).detach().float().cpu()
        for c, e in zip(batch, est):
            if c.item in previous:
                p_start, p_est = previous[c.item]
                shared = p_start + p_est.shape[-1] - c.start
                if shared > 0:
                    e = e[align_permutation(p_est[:, c.start - p_start:], e[:, :shared])]
            previous[c.item] = (c.start, e)
            w = ola_window(n, overlap, c.first, c.last)
            out[c.item][:, c.start:c.start + n] += e * w
            weight[c.item][c.start:c.start + n] += w
            if c.last:
                previous.pop(c.item, None)
    return [o / w for o, w in zip(out, weight)]
