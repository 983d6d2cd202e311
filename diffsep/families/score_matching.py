"""Score-matching loss of DiffSep with the permutation- and mismatch-aware branch (Sec. 3.2).

Regular items: t ~ U(t_eps, T), z ~ N(0, I), x_t = μ_t(s) + L_t z and
    loss = mean over (K, N) of (L_t q_θ(x_t, t, mix) + z)².
With probability p_T an item instead uses t = T and x_T = s̄ + L_T z (the inference prior,
s̄ = mix / K). For every permutation π, z_π = z + L_T⁻¹ (s̄ − μ_T(π s)) and the item's loss is
    min over π of mean (L_T q_θ(x_T, T, mix) + z_π)².
The network input does not depend on π, so the whole batch takes ONE network call; the K!
targets are cheap. With ``fixed_order`` (enhancement) the sources keep their order and there is
no minimum over π.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.pit import all_permutations, permute, random_permutation
from ..core.sde import DiffSepSDE, ScoreFn


@dataclass
class LossDraws:
    """Every random quantity of one loss evaluation, drawn up front so that a batch can be split
    across processes (or devices) and still see exactly the draws of the whole batch.
    perm (B, K) source order (None: fixed order), t (B,), at_T (B,) bool, z (B, K, N)."""
    perm: Tensor | None
    t: Tensor
    at_T: Tensor
    z: Tensor

    def slice(self, start: int, stop: int) -> "LossDraws":
        return LossDraws(None if self.perm is None else self.perm[start:stop], self.t[start:stop],
                         self.at_T[start:stop], self.z[start:stop])

    def to(self, device) -> "LossDraws":
        return LossDraws(None if self.perm is None else self.perm.to(device), self.t.to(device),
                         self.at_T.to(device), self.z.to(device))


def draw(sde: DiffSepSDE, shape: tuple[int, int, int], *, t_eps: float = 0.03, p_T: float = 0.1,
         fixed_order: bool = False, generator: torch.Generator | None = None, device=None,
         dtype=torch.float32) -> LossDraws:
    """Draw source orders, times, branch choices and noise for a batch of shape (B, K, N)."""
    B, K, _ = shape
    perm = None if fixed_order else random_permutation(B, K, device=device, generator=generator)
    t = sde.sample_time(B, t_eps, device=device, dtype=dtype, generator=generator)
    at_T = torch.rand(B, generator=generator, device=device) < p_T
    t = torch.where(at_T, torch.full_like(t, sde.T), t)
    z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return LossDraws(perm, t, at_T, z)


def score_matching_loss(score_fn: ScoreFn, sde: DiffSepSDE, sources: Tensor, mix: Tensor, *,
                        t_eps: float = 0.03, p_T: float = 0.1, fixed_order: bool = False,
                        generator: torch.Generator | None = None,
                        draws: LossDraws | None = None) -> Tensor:
    """Per-item DiffSep training loss.

    Args:
        score_fn: q_θ(x, t, mix) with x (B, K, N), t (B,), mix (B, 1, N) -> (B, K, N).
        sde: the forward SDE (its n_src must equal K).
        sources: (B, K, N) clean sources; mix: (B, 1, N), normally their sum.
        t_eps: smallest training time; p_T: probability of the t = T branch.
        fixed_order: keep the source order (enhancement: [speech, noise]); otherwise sources are
            shuffled per item and the t = T branch takes the minimum over permutations.
        generator: source of all randomness (times, branch choice, order, noise).
        draws: use these random draws (see :func:`draw`) instead of drawing from ``generator``.
    Returns:
        (B,) loss per item.
    """
    B, K, N = sources.shape
    if K != sde.n_src:
        raise ValueError(f"sources have K = {K} but the SDE has n_src = {sde.n_src}")
    if draws is None:
        draws = draw(sde, sources.shape, t_eps=t_eps, p_T=p_T, fixed_order=fixed_order,
                     generator=generator, device=sources.device, dtype=sources.dtype)
    if draws.perm is not None:
        sources = permute(sources, draws.perm)
    t, at_T, z = draws.t.to(sources.dtype), draws.at_T, draws.z.to(sources.dtype)

    mean = torch.where(at_T[:, None, None], sde.prior_mean(mix).to(sources.dtype), sde.mean(sources, t))
    x_t = mean + sde.mult_L(z, t)
    L_score = sde.mult_L(score_fn(x_t, t, mix), t)

    loss = (L_score + z).square().mean(dim=(1, 2))
    if at_T.any():
        loss[at_T] = _loss_at_T(sde, L_score[at_T], z[at_T], sources[at_T], mix[at_T],
                                draws.perm is None)
    return loss


def _loss_at_T(sde: DiffSepSDE, L_score: Tensor, z: Tensor, sources: Tensor, mix: Tensor,
               fixed_order: bool) -> Tensor:
    """Mismatch-aware loss at t = T, minimum over source permutations. (B', K, N) -> (B',)."""
    offset = sde.mult_L_inv(sde.prior_mean(mix).to(z.dtype), sde.T)  # L_T⁻¹ s̄
    # L_T⁻¹ μ_T commutes with permuting the sources, so permute once after applying it.
    target_mean = sde.mult_L_inv(sde.mean(sources, sde.T), sde.T)
    residual = L_score + z + offset  # (B', K, N)
    if fixed_order:
        return (residual - target_mean).square().mean(dim=(1, 2))
    per_perm = (residual[:, None] - all_permutations(target_mean)).square().mean(dim=(2, 3))
    return per_perm.min(dim=1).values
