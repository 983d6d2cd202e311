"""The DiffSep forward SDE and its closed-form marginals (paper Sec. 3.1).

Every tensor is a batch of time-domain signals with the sources on axis 1:
``x`` has shape (B, K, N). P = (1/K) 1 1^T averages over the source axis and
P̄ = I − P keeps the zero-mean part; both are applied in closed form (a mean
over axis 1), never as K × K matrices, so nothing here holds device state.
Times ``t`` are tensors of shape (B,) (or scalars broadcast to the batch).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

ScoreFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""q(x, t, mix): x (B, K, N), t (B,), mix (B, 1, N) -> score (B, K, N); the network or an oracle."""


def project_mean(x: Tensor) -> Tensor:
    """P x: every source row replaced by the mean over sources. (B, K, N) -> (B, K, N)."""
    return x.mean(dim=1, keepdim=True).expand_as(x)


def project_null(x: Tensor) -> Tensor:
    """P̄ x = x − P x: the zero-mean (over sources) part. (B, K, N) -> (B, K, N)."""
    return x - x.mean(dim=1, keepdim=True)


def apply_eig(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """(a P + b P̄) x for per-item scalars a, b of shape (B,). x: (B, K, N)."""
    m = x.mean(dim=1, keepdim=True)
    a = a.reshape(-1, 1, 1).to(x.dtype)
    b = b.reshape(-1, 1, 1).to(x.dtype)
    return b * x + (a - b) * m


class DiffSepSDE:
    """dx = −γ P̄ x dt + g(t) dw with g(t) = σ_min ρ^t sqrt(2 ln ρ), ρ = σ_max / σ_min (Eq. 10).

    Args:
        n_src: number of sources K.
        gamma: stiffness γ of the mixing drift.
        sigma_min, sigma_max: noise scale at t = 0 and t = 1.
        T: final time of the forward process.
    """

    def __init__(self, n_src: int, gamma: float = 2.0, sigma_min: float = 0.05,
                 sigma_max: float = 0.5, T: float = 1.0):
        if n_src < 1:
            raise ValueError(f"n_src must be >= 1, got {n_src}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.n_src = n_src
        self.gamma = gamma
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.T = T
        self.rho = sigma_max / sigma_min
        self.log_rho = math.log(self.rho)

    def __repr__(self) -> str:
        return (f"DiffSepSDE(n_src={self.n_src}, gamma={self.gamma}, sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}, T={self.T})")

    # -- helpers ------------------------------------------------------------------------------
    def _time(self, t, like: Tensor) -> Tensor:
        """t as a (B,) tensor on ``like``'s device and dtype."""
        t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
        return t.expand(like.shape[0]) if t.ndim == 0 else t

    # -- the SDE ------------------------------------------------------------------------------
    def drift(self, x: Tensor, t=None) -> Tensor:
        """f(x, t) = −γ P̄ x (Eq. 10). (B, K, N) -> (B, K, N); time-independent."""
        return -self.gamma * project_null(x)

    def diffusion(self, t: Tensor) -> Tensor:
        """g(t) = σ_min ρ^t sqrt(2 ln ρ) (Eq. 10). (B,) -> (B,)."""
        return self.sigma_min * self.rho ** t * math.sqrt(2.0 * self.log_rho)

    def reverse_drift(self, x: Tensor, t: Tensor, score: Tensor, ode: bool = False) -> Tensor:
        """Drift of the reverse-time SDE f − g² ∇log p (Eq. 12), or with ``ode`` of the
        probability-flow ODE f − ½ g² ∇log p. x, score (B, K, N), t (B,) -> (B, K, N)."""
        g2 = self.diffusion(t).reshape(-1, 1, 1) ** 2
        return self.drift(x) - (0.5 * g2 if ode else g2) * score

    # -- closed-form marginal (Theorem 1) ------------------------------------------------------
    def mean(self, sources: Tensor, t) -> Tensor:
        """μ_t = P s + e^{−γt} P̄ s. sources (B, K, N), t (B,) -> (B, K, N)."""
        t = self._time(t, sources)
        return apply_eig(sources, torch.ones_like(t), torch.exp(-self.gamma * t))

    def eigvals(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(λ1, λ2) with Σ_t = λ1 P + λ2 P̄ (Theorem 1). t (B,) -> ((B,), (B,)).

        λ1 = σ_min² (ρ^{2t} − 1), λ2 = σ_min² ln ρ (ρ^{2t} − e^{−2γt}) / (γ + ln ρ).
        """
        s2 = self.sigma_min ** 2
        r2t = self.rho ** (2.0 * t)
        lam1 = s2 * (r2t - 1.0)
        lam2 = s2 * self.log_rho * (r2t - torch.exp(-2.0 * self.gamma * t)) / (self.gamma + self.log_rho)
        return lam1, lam2

    def mult_L(self, x: Tensor, t) -> Tensor:
        """L_t x with L_t = sqrt(λ1) P + sqrt(λ2) P̄ (so Σ_t = L_t L_t). (B, K, N) -> (B, K, N)."""
        lam1, lam2 = self.eigvals(self._time(t, x))
        return apply_eig(x, lam1.sqrt(), lam2.sqrt())

    def mult_L_inv(self, x: Tensor, t) -> Tensor:
        """L_t⁻¹ x = (P / sqrt(λ1) + P̄ / sqrt(λ2)) x. (B, K, N) -> (B, K, N); needs t > 0."""
        lam1, lam2 = self.eigvals(self._time(t, x))
        return apply_eig(x, lam1.rsqrt(), lam2.rsqrt())

    def mult_Sigma(self, x: Tensor, t) -> Tensor:
        """Σ_t x = (λ1 P + λ2 P̄) x. (B, K, N) -> (B, K, N)."""
        lam1, lam2 = self.eigvals(self._time(t, x))
        return apply_eig(x, lam1, lam2)

    def mult_Sigma_inv(self, x: Tensor, t) -> Tensor:
        """Σ_t⁻¹ x = (P / λ1 + P̄ / λ2) x. (B, K, N) -> (B, K, N); needs t > 0."""
        lam1, lam2 = self.eigvals(self._time(t, x))
        return apply_eig(x, 1.0 / lam1, 1.0 / lam2)

    def marginal_sample(self, sources: Tensor, t, z: Tensor) -> Tensor:
        """x_t = μ_t(s) + L_t z for a given standard normal z. (B, K, N) -> (B, K, N)."""
        return self.mean(sources, t) + self.mult_L(z, t)

    def exact_score(self, x: Tensor, t, sources: Tensor) -> Tensor:
        """∇ log p(x_t | s) = −Σ_t⁻¹ (x_t − μ_t(s)): the oracle score. (B, K, N) -> (B, K, N)."""
        return -self.mult_Sigma_inv(x - self.mean(sources, t), t)

    # -- prior and time sampling --------------------------------------------------------------
    def prior_mean(self, mix: Tensor) -> Tensor:
        """s̄ = P s: every source equals mix / K. mix (B, 1, N) -> (B, K, N)."""
        return (mix / self.n_src).expand(mix.shape[0], self.n_src, mix.shape[-1])

    def prior_sample(self, mix: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x_T = mix / K + L_T z, z ~ N(0, I): the inference prior. mix (B, 1, N) -> (B, K, N)."""
        shape = (mix.shape[0], self.n_src, mix.shape[-1])
        z = torch.randn(shape, generator=generator, device=mix.device, dtype=mix.dtype)
        return self.prior_mean(mix) + self.mult_L(z, self.T)

    def sample_time(self, n: int, t_eps: float = 0.03, *, device=None, dtype=torch.float32,
                    generator: torch.Generator | None = None) -> Tensor:
        """t ~ U(t_eps, T), shape (n,)."""
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        return t_eps + (self.T - t_eps) * u
