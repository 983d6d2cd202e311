"""Training objectives on the data estimate D(x_t, t, mix) ≈ E[s | x_t, mix] of a DiffSep model
(issue 18; DESIGN.md §1, "Data prediction"): the same SDE and draws as score matching, another
loss.

- :func:`data_loss`: x_t = μ_t(s) + L_t z as in score matching (with probability p_T, t = T and
  x_T = s̄ + L_T z, the inference prior), then w(t) × the error of D against the sources, the
  minimum over source permutations at EVERY t (the order is fixed by x_t at small t and free at
  large t, so the minimum costs nothing where it does not matter). The paper's Σ-weighted score
  loss is this with the error ‖P̄ (s − D)‖² and w = e^{−2γt} / λ2(t), which grows without bound
  as t -> 0; here w is chosen (:data:`WEIGHTS`) and the error is measured in a domain
  (:data:`DOMAINS`).
- :func:`unrolled_loss`: run the few-step sampler (:func:`diffsep.samplers.ddim_trajectory`) from
  the prior with gradients and score its output by negative SI-SDR with permutation-invariant
  training: the sampler itself is what is optimised (CRP / Fast-GeCo style fine-tuning).

Shapes: sources (B, K, N), mix (B, 1, N), per-item losses (B,).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.pit import permutations, permute
from ..core.sde import DiffSepSDE
from ..core.sdr import pit_si_sdr, si_sdr
from ..core.spectral import compress, stft
from ..samplers import ddim_trajectory, time_grid
from .score_matching import LossDraws

WEIGHTS = ("one", "snr_plus_one", "min_snr")
DOMAINS = ("wave", "spec", "sb", "sisdr")
SPEC_N_FFT, SPEC_HOP = 510, 128  # the paper's STFT (DESIGN.md §2)
SB_WAVE_L1 = 1e-3  # the Schrödinger-bridge loss: compressed-STFT MSE + 0.001 × waveform L1
MIN_SNR_GAMMA = 5.0


def loss_weight(sde: DiffSepSDE, t: Tensor, weight: str) -> Tensor:
    """w(t) of the data loss from the zero-sum subspace's SNR(t) = e^{−2γt} / λ2(t). t (B,) -> (B,).
    "one": 1; "snr_plus_one": SNR + 1 (the weight the v head's loss puts on data errors);
    "min_snr": min(SNR, 5) (Min-SNR-γ: caps the emphasis on small t)."""
    if weight == "one":
        return torch.ones_like(t)
    snr = torch.exp(-2 * sde.gamma * t) / sde.eigvals(t)[1]
    if weight == "snr_plus_one":
        return snr + 1
    if weight == "min_snr":
        return snr.clamp(max=MIN_SNR_GAMMA)
    raise ValueError(f"unknown loss.weight {weight!r}; valid: {', '.join(WEIGHTS)}")


def _compressed_spectrogram(x: Tensor) -> Tensor:
    """|X|^½ e^{i∠X} of the paper's STFT. (B, K, N) -> (B, K, F, frames) complex."""
    return compress(stft(x, SPEC_N_FFT, SPEC_HOP), alpha=0.5, beta=1.0)


def pairwise_errors(est: Tensor, ref: Tensor, domain: str) -> Tensor:
    """error(estimate i, reference j) for every pair. est, ref (B, K, N) -> (B, K, K), [b, i, j].

    "wave": mean squared error; "spec": mean |c(Ŝ) − c(S)|² of the compressed complex STFT;
    "sb": "spec" + 0.001 × mean |ŝ − s|; "sisdr": −SI-SDR in dB."""
    if domain == "sisdr":
        return -si_sdr(est[:, :, None], ref[:, None])
    if domain == "wave":
        return (est[:, :, None] - ref[:, None]).square().mean(-1)
    if domain in ("spec", "sb"):
        E, R = _compressed_spectrogram(est), _compressed_spectrogram(ref)
        err = (E[:, :, None] - R[:, None]).abs().square().mean(dim=(-2, -1))
        if domain == "sb":
            err = err + SB_WAVE_L1 * (est[:, :, None] - ref[:, None]).abs().mean(-1)
        return err
    raise ValueError(f"unknown loss.domain {domain!r}; valid: {', '.join(DOMAINS)}")


def min_over_permutations(pairwise: Tensor, fixed_order: bool = False) -> Tensor:
    """Mean over sources of the matched errors, minimised over source permutations (with
    ``fixed_order`` only the identity). pairwise (B, K, K) as :func:`pairwise_errors` -> (B,)."""
    K = pairwise.shape[-1]
    if fixed_order:
        return pairwise.diagonal(dim1=1, dim2=2).mean(-1)
    perms = permutations(K, pairwise.device)  # (P, K): estimate i matched with reference perms[p, i]
    totals = pairwise[:, torch.arange(K, device=pairwise.device), perms].mean(-1)  # (B, P)
    return totals.min(-1).values


def data_loss(model, sde: DiffSepSDE, sources: Tensor, mix: Tensor, draws: LossDraws, *,
              weight: str = "one", domain: str = "wave") -> Tensor:
    """Per-item data-prediction loss.

    Args:
        model: ``model(x_t, t, mix, estimate="data") -> D`` (B, K, N): a
            :class:`~diffsep.families.preconditioning.Preconditioned` model of any head, or its
            DistributedDataParallel wrapper.
        sources: (B, K, N) clean sources; mix: (B, 1, N).
        draws: the random draws of score matching (:func:`diffsep.families.score_matching.draw`):
            order (None: fixed order, no minimum over permutations), t, the t = T branch, z.
        weight: w(t), one of :data:`WEIGHTS`; domain: the error, one of :data:`DOMAINS`.
    Returns:
        (B,) w(t) × min over π of the mean error of D against π(sources).
    """
    if sources.shape[1] != sde.n_src:
        raise ValueError(f"sources have K = {sources.shape[1]} but the SDE has n_src = {sde.n_src}")
    fixed_order = draws.perm is None
    if not fixed_order:
        sources = permute(sources, draws.perm)
    t, at_T, z = draws.t.to(sources.dtype), draws.at_T, draws.z.to(sources.dtype)
    mean = torch.where(at_T[:, None, None], sde.prior_mean(mix).to(sources.dtype), sde.mean(sources, t))
    x_t = mean + sde.mult_L(z, t)
    est = model(x_t, t, mix, estimate="data")
    return loss_weight(sde, t, weight) * min_over_permutations(pairwise_errors(est, sources, domain), fixed_order)


def unrolled_loss(model, sde: DiffSepSDE, sources: Tensor, mix: Tensor, draws: LossDraws, *,
                  steps: int, t_eps: float = 0.03, solver: str = "euler") -> Tensor:
    """Negative SI-SDR (permutation-invariant) of the ``steps``-step sampler's output, run from the
    prior x_T = mix / K + L_T z (z from ``draws``) with gradients through every network call.
    sources (B, K, N), mix (B, 1, N) -> (B,)."""
    x_T = sde.prior_mean(mix).to(sources.dtype) + sde.mult_L(draws.z.to(sources.dtype), sde.T)
    grid = time_grid(steps, sde.T, t_eps, device=mix.device, dtype=sources.dtype)
    est = ddim_trajectory(model, sde, mix, x_T, grid, solver=solver)
    if draws.perm is None:  # fixed order (enhancement): no permutation search
        return -si_sdr(est, sources).mean(-1)
    return -pit_si_sdr(est, sources)[0].mean(-1)
