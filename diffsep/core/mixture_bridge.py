"""A mixture-consistent bridge from the sources to the prior mix / K (DESIGN.md §1 notation).

The DiffSep SDE noises both subspaces and ends at x_T = μ_T(s) + L_T z, which differs from the
inference prior mix / K + L_T z (the mismatch its p_T branch trains for). The bridge keeps the
mean part fixed and noises only the zero-sum part, then closes the noise at t = 1:

    x_t = P s + α_t P̄ s + σ_t P̄ z,    α_t = 1 − t,    σ_t = σ √(t (1 − t)),    t in [0, 1].

So P x_t = mix / K for every t (nothing to learn there), x_0 = s, and x_1 = mix / K exactly:
the inference prior is the training marginal at t = 1, with no mismatch. A network predicts the
sources D ≈ E[s | x_t, mix] and :func:`posterior_step` moves from t to t' < t with it:

    P̄ x_{t'} = α_{t'} D + √(σ_{t'}² − c²) ε̂ + c P̄ z,   ε̂ = P̄ (x_t − α_t D) / σ_t,
    c = η σ_{t'} √(1 − r²),   r = α_t σ_{t'} / (α_{t'} σ_t).

With D = s and η = 1 this is the exact posterior q(x_{t'} | x_t, s) of the Markov process with
these marginals (in P̄, x_t = (α_t / α_{t'}) x_{t'} + noise of variance σ_t² (1 − r²)); η = 0
is the deterministic (DDIM) step, which keeps ε̂. At t = 1 (σ_t = 0, α_t = 0) ε̂ is 0 and r = 0:
the first step from the prior is D(mix / K, 1) re-noised to t'.

Shapes: sources and states (B, K, N), mix (B, 1, N), times (B,) or scalars.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .sde import project_null


class MixtureBridge:
    """The bridge's marginals and reverse step.

    Args:
        n_src: number of sources K.
        sigma: noise scale σ; the zero-sum noise std is σ √(t (1 − t)), largest (σ / 2) at t = ½.
    """

    T = 1.0

    def __init__(self, n_src: int, sigma: float = 0.5):
        if n_src < 1:
            raise ValueError(f"n_src must be >= 1, got {n_src}")
        if not sigma > 0:
            raise ValueError(f"the bridge's sigma must be > 0, got {sigma}")
        self.n_src, self.sigma = n_src, sigma

    def __repr__(self) -> str:
        return f"MixtureBridge(n_src={self.n_src}, sigma={self.sigma})"

    def _time(self, t, like: Tensor) -> Tensor:
        """t as a (B, 1, 1) tensor on ``like``'s device and dtype; like (B, ...)."""
        t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
        return (t.expand(like.shape[0]) if t.ndim == 0 else t).reshape(-1, 1, 1)

    def alpha(self, t: Tensor) -> Tensor:
        """α_t = 1 − t, the share of P̄ s left at t. Any shape."""
        return 1.0 - t

    def std(self, t: Tensor) -> Tensor:
        """σ_t = σ √(t (1 − t)), the zero-sum noise std at t. Any shape."""
        return self.sigma * (t * (1.0 - t)).clamp_min(0).sqrt()

    def prior(self, mix: Tensor) -> Tensor:
        """x_1 = mix / K in every source row. mix (B, 1, N) -> (B, K, N)."""
        return (mix / self.n_src).expand(mix.shape[0], self.n_src, mix.shape[-1])

    def mean(self, sources: Tensor, mix: Tensor, t) -> Tensor:
        """μ_t(s) = mix / K + α_t P̄ s (P s = mix / K when the sources sum to the mixture).
        sources (B, K, N), mix (B, 1, N), t (B,) -> (B, K, N)."""
        return self.prior(mix) + self.alpha(self._time(t, sources)) * project_null(sources)

    def marginal_sample(self, sources: Tensor, mix: Tensor, t, z: Tensor) -> Tensor:
        """x_t = μ_t(s) + σ_t P̄ z for a given standard normal z. (B, K, N) -> (B, K, N)."""
        return self.mean(sources, mix, t) + self.std(self._time(t, sources)) * project_null(z)

    def posterior_step(self, x: Tensor, denoised: Tensor, mix: Tensor, t, t_next, *, eta: float = 1.0,
                       z: Tensor | None = None) -> Tensor:
        """One reverse step from t to t_next < t with the data estimate D (the module docstring).
        x, denoised, z (B, K, N), mix (B, 1, N), t, t_next (B,) or scalars -> (B, K, N) at t_next.
        z is needed when eta > 0; at t_next = 0 the step returns P̄ D + mix / K."""
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"the bridge step's eta must be in [0, 1], got {eta}")
        t, t2 = self._time(t, x), self._time(t_next, x)
        a, s, a2, s2 = self.alpha(t), self.std(t), self.alpha(t2), self.std(t2)
        d_null = project_null(denoised)
        live = s > 0  # at t = 1 (or 0) there is no noise in x_t to keep
        safe_s = torch.where(live, s, torch.ones_like(s))
        eps = torch.where(live, project_null(x - a * d_null) / safe_s, torch.zeros_like(x))
        r = torch.where(live, a * s2 / (a2 * safe_s), torch.zeros_like(s)).clamp(0, 1)
        c = eta * s2 * (1 - r.square()).sqrt()
        out = self.prior(mix) + a2 * d_null + (s2.square() - c.square()).clamp_min(0).sqrt() * eps
        if eta > 0:
            if z is None:
                raise ValueError("a stochastic bridge step (eta > 0) needs noise z")
            out = out + c * project_null(z)
        return out


def bridge_time_grid(steps: int, *, device=None, dtype=torch.float32) -> Tensor:
    """Evaluation times 1, 1 − 1/steps, ..., 1/steps followed by the end time 0. -> (steps + 1,)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=dtype)


def bridge_trajectory(denoiser, bridge: MixtureBridge, mix: Tensor, *, steps: int, eta: float = 1.0,
                      noise=None, callback=None) -> Tensor:
    """The bridge sampler from the prior x_1 = mix / K, with gradients (unrolled fine-tuning
    differentiates through it; :func:`bridge_sample` is the no-grad sampler).

    Args:
        denoiser: D(x_t, t, mix) with x_t (B, K, N), t (B,), mix (B, 1, N) -> (B, K, N).
        steps: evaluations, at the times of :func:`bridge_time_grid`; 1 step returns D(mix / K, 1).
        eta: 1 samples the posterior of every step (the bridge's SDE sampler), 0 the deterministic one.
        noise: with eta > 0, the standard normal noise of step i (of steps − 1; the last step ends
            at t = 0 and takes none): a callable i -> (B, K, N), or a tensor (steps − 1, B, K, N).
        callback: called as callback(i, t_next, x) after every step.
    Returns:
        (B, K, N) the state at t = 0, the last data estimate.
    """
    if eta > 0 and noise is None and steps > 1:
        raise ValueError("a stochastic bridge sampler (eta > 0) needs noise")
    B = mix.shape[0]
    grid = bridge_time_grid(steps, device=mix.device, dtype=mix.dtype)
    x = bridge.prior(mix).contiguous()
    for i in range(steps):
        t, t_next = grid[i].expand(B), grid[i + 1].expand(B)
        last = i == steps - 1
        z = None if (eta == 0 or last) else (noise(i) if callable(noise) else noise[i])
        x = bridge.posterior_step(x, denoiser(x, t, mix), mix, t, t_next, eta=0.0 if z is None else eta, z=z)
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


@torch.no_grad()
def bridge_sample(denoiser, bridge: MixtureBridge, mix: Tensor, *, steps: int = 3, eta: float = 1.0,
                  generator: torch.Generator | None = None, callback=None) -> Tensor:
    """Separate from the prior x_1 = mix / K in ``steps`` network evaluations (see
    :func:`bridge_trajectory`), the noise of each stochastic step drawn from ``generator``.
    mix (B, 1, N) -> (B, K, N)."""
    shape = (mix.shape[0], bridge.n_src, mix.shape[-1])
    noise = lambda i: torch.randn(shape, generator=generator, device=mix.device, dtype=mix.dtype)  # noqa: E731
    return bridge_trajectory(denoiser, bridge, mix, steps=steps, eta=eta, noise=noise, callback=callback)
