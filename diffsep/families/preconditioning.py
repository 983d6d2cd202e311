"""Output heads: what a network's output means, apart from the network (as EDM's ``Precond``
wraps any denoiser). The wrapped model keeps the samplers' signature ``model(x_t, t, mix) ->
score`` whatever the head, and :meth:`Preconditioned.denoise` gives the data estimate
D(x_t, t, mix) ≈ E[s | x_t, mix] for every head.

Notation (DESIGN.md §1): x_t, sources s (B, K, N), mix (B, 1, N), t (B,); P averages over
sources, P̄ = I − P; the marginal of Theorem 1 is x_t = μ_t(s) + L_t z with
μ_t(s) = P s + α_t P̄ s, α_t = e^{−γt}, and Σ_t = λ1(t) P + λ2(t) P̄. Write σ_t = √λ2(t).

Heads (``net`` is the backbone, e.g. :class:`~diffsep.nets.spectral_unet.SpectralUNet`):

- ``score_t`` (the paper, the released checkpoint): score = net / t. In the reference the division
  is not of the waveform output: NCSN++ divides its output *pyramid* by t before its final 1x1
  conv (which has a bias), and the spectral U-Net then decompresses (|Z|/β)^{1/α} and inverts
  the STFT, so the score is not (net output)/t for any plain net output. The head therefore
  passes ``divisor = t`` to the backbone, which applies it at exactly that point (score_sde's
  ``scale_by_sigma``): the released weights give the reference's output to float rounding, with
  no algebra on the conv bias. A backbone therefore takes ``net(x_t, t, mix, divisor=None)``; a
  waveform network without inner features may simply divide its output.
- ``score_sqrt_t``: the same with divisor √t. After the square-law decompression (α = 1/2) the
  score then scales as 1/t, which a small network learns far more easily.
- ``data``: the output F is a data estimate made mixture-consistent, its mean over sources
  replaced by mix / K so that P D = P s exactly:
      D = P̄ F + mix / K.
  The score follows by Tweedie, exact when D = E[s | x_t, mix] (μ_t is linear in s):
      ∇ log p_t(x_t | mix) = −Σ_t⁻¹ (x_t − μ_t(D)).
- ``v``: the output is a velocity in the zero-sum subspace, the only one where signal and noise
  mix (P x_t = mix / K + √λ1 P z holds no information on s). With P̄ x_t = α_t P̄ s + σ_t P̄ z and
  r_t = √(α_t² + σ_t²):
      v = (α_t P̄ z − σ_t P̄ s) / r_t,     P̄ D = (α_t / r_t²) P̄ x_t − (σ_t / r_t) P̄ F,
  the v-prediction of Salimans & Ho for a non-variance-preserving scale (it is EDM's
  preconditioning with σ_data = 1 in this subspace), then the ``data`` head's D and score.
  :func:`velocity` gives the target.

Every head is mixture-consistent: P D = mix / K. ``data`` and ``v`` are valid at t = 0 for the
data estimate (pair them with the backbone's ``time_embedding="t"``); their score, like every
score, diverges as t -> 0 (Σ_0 = 0).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.sde import DiffSepSDE, project_null

HEADS = ("score_t", "score_sqrt_t", "data", "v")
LEGACY_OUTPUT_SCALES = {"t": "score_t", "sqrt_t": "score_sqrt_t"}  # model.output_scale before heads


def resolve_head(head: str, output_scale: str = "") -> str:
    """The head a model section names. ``output_scale`` is the older key (checkpoints and configs
    written before heads): "t" means ``score_t`` and "sqrt_t" ``score_sqrt_t``; when set it
    replaces the default head, and a different explicit head is an error."""
    if head not in HEADS:
        raise ValueError(f"unknown model.head {head!r}; valid: {', '.join(HEADS)}")
    if not output_scale:
        return head
    if output_scale not in LEGACY_OUTPUT_SCALES:
        raise ValueError(f"unknown model.output_scale {output_scale!r} (the older name of model.head); "
                         f"valid: {', '.join(LEGACY_OUTPUT_SCALES)}")
    legacy = LEGACY_OUTPUT_SCALES[output_scale]
    if head not in (HEADS[0], legacy):
        raise ValueError(f"model.output_scale={output_scale} (the older key, meaning model.head={legacy}) "
                         f"contradicts model.head={head}: set model.head only")
    return legacy


def _as_time(t, like: Tensor) -> Tensor:
    """t (a scalar or (B,)) as a (B,) tensor on ``like``'s device and dtype; like (B, ...)."""
    return torch.as_tensor(t, device=like.device, dtype=like.dtype).expand(like.shape[0])


def _coefficients(sde: DiffSepSDE, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(α_t, σ_t, r_t) of the zero-sum subspace, each (B, 1, 1): α_t = e^{−γt} (Theorem 1),
    σ_t = √λ2(t), r_t = √(α_t² + σ_t²)."""
    alpha = torch.exp(-sde.gamma * t)
    sigma = sde.eigvals(t)[1].sqrt()
    r = (alpha.square() + sigma.square()).sqrt()
    return tuple(c.reshape(-1, 1, 1) for c in (alpha, sigma, r))


def velocity(sde: DiffSepSDE, sources: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """The ``v`` head's target for x_t = μ_t(s) + L_t z: v = (α_t P̄ z − σ_t P̄ s) / r_t.
    sources, z (B, K, N), t (B,) -> (B, K, N), zero-sum over sources."""
    alpha, sigma, r = _coefficients(sde, _as_time(t, sources))
    return (alpha * project_null(z) - sigma * project_null(sources)) / r


class Preconditioned(nn.Module):
    """A backbone with an output head: ``model(x_t, t, mix)`` is the score for every head.

    Args:
        net: the backbone, ``net(x_t, t, mix, divisor=None)``: x_t (B, K, N), t (B,),
            mix (B, 1, N), divisor (B,) or None -> (B, K, N) (see the module docstring).
        head: one of :data:`HEADS`.
        sde: the DiffSep SDE whose closed forms turn data estimates into scores (and back).

    The backbone's weights sit under ``net.*``; the head holds none.
    """

    def __init__(self, net: nn.Module, head: str, sde: DiffSepSDE):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        if getattr(net, "n_src", sde.n_src) != sde.n_src:
            raise ValueError(f"the network separates {net.n_src} sources but the SDE has {sde.n_src}")
        self.net, self.head, self.sde = net, head, sde

    @property
    def n_src(self) -> int:
        return self.sde.n_src

    def extra_repr(self) -> str:
        return f"head={self.head!r}, sde={self.sde!r}"

    def forward(self, x_t: Tensor, t, mix: Tensor, estimate: str = "score") -> Tensor:
        """Score ∇ log p_t(x_t | mix), or with ``estimate="data"`` the data estimate of
        :meth:`denoise` (through ``forward``, so that a DistributedDataParallel wrapper sees the
        call). x_t (B, K, N), t (B,) or a scalar, mix (B, 1, N) -> (B, K, N)."""
        if estimate == "data":
            return self.denoise(x_t, t, mix)
        if estimate != "score":
            raise ValueError(f"unknown estimate {estimate!r}; valid: score, data")
        t = _as_time(t, x_t)
        if self.head == "score_t":
            return self.net(x_t, t, mix, divisor=t)
        if self.head == "score_sqrt_t":
            return self.net(x_t, t, mix, divisor=t.sqrt())
        return self.sde.exact_score(x_t, t, self.denoise(x_t, t, mix))  # Tweedie (DESIGN §1)

    def denoise(self, x_t: Tensor, t, mix: Tensor) -> Tensor:
        """Data estimate D ≈ E[s | x_t, mix] with P D = mix / K exactly.
        x_t (B, K, N), t (B,) or a scalar, mix (B, 1, N) -> (B, K, N).

        Score heads invert Tweedie: μ_t(D) = x_t + Σ_t q, whose zero-sum part is α_t P̄ D."""
        t = _as_time(t, x_t)
        if self.head in ("score_t", "score_sqrt_t"):
            score = self.forward(x_t, t, mix)
            alpha = _coefficients(self.sde, t)[0]
            d_null = project_null(x_t + self.sde.mult_Sigma(score, t)) / alpha
        elif self.head == "data":
            d_null = project_null(self.net(x_t, t, mix))
        else:  # v
            alpha, sigma, r = _coefficients(self.sde, t)
            d_null = project_null(alpha / r.square() * x_t - sigma / r * self.net(x_t, t, mix))
        return d_null + mix / x_t.shape[1]
