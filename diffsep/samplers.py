"""Reverse-time samplers for the DiffSep SDE (Sec. 3.4). Each sampler is a plain function.

``score_fn(x, t, mix)`` (x (B, K, N), t (B,), mix (B, 1, N) -> (B, K, N)) is any callable: the
network, or the exact score of a known Gaussian marginal in tests. Samplers start from the prior
x_T = mix / K + L_T z and return estimates of shape (B, K, N). Reverse SDE (Eq. 12):
    dx = [−γ P̄ x − g(t)² ∇log p_t(x)] dt + g(t) dw̄.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable

import torch
from torch import Tensor

from .core.sde import DiffSepSDE, ScoreFn, apply_eig


@dataclass
class SamplerSettings:
    """Every sampler option, one object for configs, checkpoints, command lines and benchmarks.
    Each sampler reads the fields it names in :data:`SAMPLERS`; the others are ignored."""
    kind: str = field(default="pc", metadata={"choices": ("pc", "ode", "em", "ddim"), "flag": "sampler", "help": "sampler: pc (predictor-corrector), ode (probability flow), em (Euler–Maruyama), ddim (few-step data-prediction steps in the P / P̄ eigenbasis)"})
    steps: int = field(default=30, metadata={"min": 1, "help": "number of time steps N"})
    snr: float = field(default=0.5, metadata={"gt": 0, "help": "corrector step size r (pc)"})
    corrector_steps: int = field(default=1, metadata={"min": 0, "help": "Langevin corrector steps per time step (pc)"})
    t_eps: float = field(default=0.03, metadata={"gt": 0, "help": "last evaluation time"})
    reference_dt: bool = field(default=False, metadata={"help": "pc: the reference's step 1/N (to reproduce published numbers)"})
    solver: str = field(default="heun", metadata={"choices": ("heun", "euler"), "help": "ODE solver (ode, ddim): heun (second order) or euler (first order)"})
    eta: float = field(default=0.0, metadata={"range": (0, 1), "help": "ddim: DDIM's eta, the stochastic share of each step (0: deterministic, 1: ancestral; solver euler)"})
    init: str = field(default="prior", metadata={"choices": ("prior", "model"), "help": "prior: start at T from mix / K + L_T z; model: from a warm-start estimate"})
    t_start: float = field(default=0.5, metadata={"gt": 0, "help": "warm start: the time the reverse process starts at, from μ_t(ŝ) + L_t z with steps × t_start / T steps"})

    def steps_from(self, T: float = 1.0) -> int:
        """Time steps actually taken: all of them from the prior, proportionally fewer from t_start."""
        return self.steps if self.init == "prior" else max(1, round(self.steps * self.t_start / T))

    def updated(self, **overrides) -> "SamplerSettings":
        """A copy with the given fields replaced (None values are ignored; unknown keys fail)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown sampler option(s) {unknown}; valid: {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def time_grid(steps: int, T: float = 1.0, t_eps: float = 0.03, *, device=None,
              dtype=torch.float32) -> Tensor:
    """Evaluation times and the end time: linspace(T, t_eps, steps) followed by 0. -> (steps + 1,).

    As in the reference implementation, t_eps is the last time at which the score is evaluated;
    the last step then goes from t_eps to 0 (where the reference steps by 1 / steps, i.e. to about
    0 as well).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < t_eps <= T:
        raise ValueError(f"need 0 < t_eps <= T, got t_eps={t_eps}, T={T}")
    times = torch.linspace(T, t_eps, steps, device=device, dtype=dtype)
    return torch.cat((times, times.new_zeros(1)))


def _randn(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def corrector_step(score_fn: ScoreFn, sde: DiffSepSDE, x: Tensor, t: Tensor, mix: Tensor,
                   snr: float, generator=None) -> tuple[Tensor, Tensor]:
    """Annealed Langevin step preconditioned by Σ_t: x_mean = x + 2 r² Σ_t q,
    x = x_mean + 2 r L_t z. Returns (x, x_mean), both (B, K, N)."""
    x_mean = x + 2.0 * snr ** 2 * sde.mult_Sigma(score_fn(x, t, mix), t)
    return x_mean + 2.0 * snr * sde.mult_L(_randn(x, generator), t), x_mean


def predictor_step(score_fn: ScoreFn, sde: DiffSepSDE, x: Tensor, t: Tensor, mix: Tensor,
                   dt: float | Tensor, generator=None) -> tuple[Tensor, Tensor]:
    """Reverse-diffusion step from t to t − dt: x_mean = x + (γ P̄ x + g² q) dt,
    x = x_mean + g sqrt(dt) z. Returns (x, x_mean), both (B, K, N)."""
    g = sde.diffusion(t).reshape(-1, 1, 1)
    x_mean = x - sde.reverse_drift(x, t, score_fn(x, t, mix)) * dt
    return x_mean + g * dt ** 0.5 * _randn(x, generator), x_mean


@torch.no_grad()
def pc_sample(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, *, steps: int = 30,
              snr: float = 0.5, corrector_steps: int = 1, t_eps: float = 0.03,
              reference_dt: bool = False, generator: torch.Generator | None = None,
              x_T: Tensor | None = None, t_start: float | None = None, callback=None) -> Tensor:
    """Predictor-corrector sampler: per time step, ``corrector_steps`` annealed Langevin steps then
    one reverse-diffusion step. Uses steps × (1 + corrector_steps) score evaluations.

    Args:
        mix: (B, 1, N) mixture (normalised as in training).
        steps: number of time steps N; snr: corrector signal-to-noise ratio r.
        t_eps: last evaluation time. Steps are taken at t_i = linspace(T, t_eps, steps) and the
            predictor moves from t_i to t_{i+1}, the last one to 0 (see :func:`time_grid`).
        reference_dt: reproduce the reference implementation exactly: the same times but a
            predictor step of 1 / steps whatever the grid (for published numbers).
        generator: noise source; x_T: start here instead of sampling the prior (B, K, N).
        t_start: the time x_T belongs to (default T); the grid then runs from t_start.
        callback: called as callback(i, t, x_mean) after every step.
    Returns:
        (B, K, N) the last predictor mean.
    """
    B = mix.shape[0]
    x = sde.prior_sample(mix, generator) if x_T is None else x_T
    t0 = sde.T if t_start is None else t_start
    grid = time_grid(steps, t0, t_eps, device=mix.device, dtype=mix.dtype)
    times = grid[:-1]
    dts = [t0 / steps] * steps if reference_dt else (grid[:-1] - grid[1:]).tolist()
    x_mean = x
    for i, (t, dt) in enumerate(zip(times, dts)):
        vec_t = t.expand(B)
        for _ in range(corrector_steps):
            x, x_mean = corrector_step(score_fn, sde, x, vec_t, mix, snr, generator)
        x, x_mean = predictor_step(score_fn, sde, x, vec_t, mix, dt, generator)
        if callback is not None:
            callback(i, t, x_mean)
    return x_mean


def ode_drift(score_fn: ScoreFn, sde: DiffSepSDE, x: Tensor, t: Tensor, mix: Tensor) -> Tensor:
    """Probability-flow ODE velocity dx/dt = −γ P̄ x − ½ g(t)² ∇log p_t(x). (B, K, N) -> (B, K, N)."""
    return sde.reverse_drift(x, t, score_fn(x, t, mix), ode=True)


@torch.no_grad()
def ode_sample(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, *, steps: int = 10,
               t_eps: float = 0.03, solver: str = "heun", generator: torch.Generator | None = None,
               x_T: Tensor | None = None, t_start: float | None = None, callback=None) -> Tensor:
    """Probability-flow ODE on the grid of :func:`time_grid` (T down to t_eps, then 0).

    solver "heun": second-order steps between grid times and a final Euler step from t_eps to 0
    (the score is not defined at t = 0), 2 × steps − 1 evaluations; "euler": ``steps`` evaluations.
    The prior draw is the only randomness. Returns (B, K, N).
    """
    if solver not in ("heun", "euler"):
        raise ValueError(f"unknown ODE solver {solver!r}; valid: heun, euler")
    B = mix.shape[0]
    x = sde.prior_sample(mix, generator) if x_T is None else x_T
    grid = time_grid(steps, sde.T if t_start is None else t_start, t_eps, device=mix.device, dtype=mix.dtype)
    for i in range(steps):
        t, t_next = grid[i].expand(B), grid[i + 1].expand(B)
        h = grid[i + 1] - grid[i]  # negative: integrating backwards in time
        d = ode_drift(score_fn, sde, x, t, mix)
        x_next = x + h * d
        if solver == "heun" and i < steps - 1:
            x_next = x + h * 0.5 * (d + ode_drift(score_fn, sde, x_next, t_next, mix))
        x = x_next
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


@torch.no_grad()
def em_sample(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, *, steps: int = 30,
              t_eps: float = 0.03, generator: torch.Generator | None = None,
              x_T: Tensor | None = None, t_start: float | None = None) -> Tensor:
    """Euler–Maruyama on the reverse SDE (predictor only, no corrector): ``steps`` evaluations.
    Returns the last mean (B, K, N)."""
    return pc_sample(score_fn, sde, mix, steps=steps, corrector_steps=0, t_eps=t_eps,
                     generator=generator, x_T=x_T, t_start=t_start)


def denoised_mean(score_fn: ScoreFn, sde: DiffSepSDE, x: Tensor, t: Tensor, mix: Tensor) -> Tensor:
    """μ_t(D) for the data estimate D ≈ E[s | x_t, mix]: by Tweedie, μ_t(D) = x_t + Σ_t q.
    A model with a ``denoise(x, t, mix)`` method (:class:`~diffsep.families.preconditioning.Preconditioned`)
    gives D directly (no Σ_t⁻¹ Σ_t round trip at small t). (B, K, N) -> (B, K, N)."""
    denoise = getattr(score_fn, "denoise", None)
    if denoise is not None:
        return sde.mean(denoise(x, t, mix), t)
    return x + sde.mult_Sigma(score_fn(x, t, mix), t)


def _subspace_scales(sde: DiffSepSDE, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The P̄ mean scale a = e^{−γt} (the P one is 1) and the noise-to-signal ratios κ = √λ / a of
    both subspaces at t (B,): (a_P̄, κ_P = √λ1, κ_P̄ = √λ2 e^{γt}), each (B,)."""
    lam1, lam2 = sde.eigvals(t)
    a_null = torch.exp(-sde.gamma * t)
    return a_null, lam1.clamp_min(0).sqrt(), lam2.clamp_min(0).sqrt() / a_null


def ddim_trajectory(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, x: Tensor, grid: Tensor, *,
                    solver: str = "euler", eta: float = 0.0, generator: torch.Generator | None = None,
                    callback=None) -> Tensor:
    """Few-step sampling with data estimates in the P / P̄ eigenbasis, with gradients (the unrolled
    fine-tuning differentiates through it; :func:`ddim_sample` is the no-grad sampler).

    In each subspace the marginal is x = a (s + κ z) (P: a = 1, κ = √λ1; P̄: a = e^{−γt},
    κ = √λ2 e^{γt}), so the probability-flow ODE reads dy/dκ = ε̂ with y = x / a and
    ε̂ = (y − D) / κ = L_t⁻¹ (x − μ_t(D)). Euler in κ is the first-order step, exact for a point
    mass (DESIGN.md §1, the DDIM analogue):
        x_{t'} = μ_{t'}(D) + L_{t'} L_t⁻¹ (x_t − μ_t(D));
    "heun" averages ε̂ at t and at the Euler point (the trapezoid rule in κ): one more evaluation
    per step but the last, which ends at t = 0 where the step returns D.
    ``eta`` > 0 (first order only) is DDIM's stochastic step: in each subspace, y_{t'} = D +
    √(κ'² − ς²) ε̂ + ς z with ς = η κ' √(1 − κ'² / κ²), the posterior std of the forward process
    in κ at η = 1 (ancestral sampling).

    Args:
        x: (B, K, N) the state at grid[0]; grid: (steps + 1,) decreasing times ending at 0.
    Returns:
        (B, K, N) the state at grid[-1] (the data estimate when the grid ends at 0).
    """
    if solver not in ("heun", "euler"):
        raise ValueError(f"unknown ddim solver {solver!r}; valid: heun, euler")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"ddim eta must be in [0, 1], got {eta}")
    if eta > 0 and solver != "euler":
        raise ValueError("ddim eta > 0 is the first-order stochastic step: set the solver to euler")
    B = mix.shape[0]

    def direction(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(ε̂ = L_t⁻¹ (x − μ_t(D)), μ_t(D)), each (B, K, N)."""
        mu = denoised_mean(score_fn, sde, x, t, mix)
        return sde.mult_L_inv(x - mu, t), mu

    for i in range(len(grid) - 1):
        t, t_next = grid[i].expand(B), grid[i + 1].expand(B)
        eps, mu = direction(x, t)
        a, k_p, k_n = _subspace_scales(sde, t)
        if float(grid[i + 1]) == 0.0:  # the last step returns D = P μ_t(D) + P̄ μ_t(D) / a
            x = apply_eig(mu, torch.ones_like(t), 1.0 / a)
        elif solver == "heun" or eta == 0:
            a2, k_p2, k_n2 = _subspace_scales(sde, t_next)
            # y' = y + (κ' − κ) ε̂: P part (a = 1) x' = x + (κ'_P − κ_P) ε̂, P̄ part x' = (a'/a)(x + a (κ'_P̄ − κ_P̄) ε̂)
            step = lambda e: apply_eig(x + apply_eig(e, k_p2 - k_p, (k_n2 - k_n) * a), torch.ones_like(t), a2 / a)  # noqa: E731
            x_next = step(eps)
            if solver == "heun":
                x_next = step(0.5 * (eps + direction(x_next, t_next)[0]))
            x = x_next
        else:
            a2, k_p2, k_n2 = _subspace_scales(sde, t_next)
            sd_p, sd_n = (eta * k2 * (1 - (k2 / k).square()).clamp_min(0).sqrt() for k, k2 in ((k_p, k_p2), (k_n, k_n2)))
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            mu_next = apply_eig(mu, torch.ones_like(t), a2 / a)  # μ_{t'}(D)
            keep_p, keep_n = ((k2.square() - sd.square()).clamp_min(0).sqrt() for k2, sd in ((k_p2, sd_p), (k_n2, sd_n)))
            x = mu_next + apply_eig(eps, keep_p, a2 * keep_n) + apply_eig(z, sd_p, a2 * sd_n)
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


@torch.no_grad()
def ddim_sample(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, *, steps: int = 5,
                t_eps: float = 0.03, solver: str = "euler", eta: float = 0.0,
                generator: torch.Generator | None = None, x_T: Tensor | None = None,
                t_start: float | None = None, callback=None) -> Tensor:
    """Few-step sampler with data estimates (see :func:`ddim_trajectory`) on the grid of
    :func:`time_grid` (linspace(T, t_eps, steps), then 0): ``steps`` evaluations with "euler",
    2 × steps − 1 with "heun"; one step returns D(x_T, T). Returns (B, K, N)."""
    x = sde.prior_sample(mix, generator) if x_T is None else x_T
    grid = time_grid(steps, sde.T if t_start is None else t_start, t_eps, device=mix.device, dtype=mix.dtype)
    return ddim_trajectory(score_fn, sde, mix, x, grid, solver=solver, eta=eta, generator=generator,
                           callback=callback)


@dataclass(frozen=True)
class Sampler:
    """A registry entry: the function (called with ``steps``, ``x_T``, ``t_start`` and the settings
    fields it names), and its number of score evaluations as a function of (settings, steps)."""
    fn: Callable[..., Tensor]
    options: tuple[str, ...]
    nfe: Callable[[SamplerSettings, int], int]


# The one list of samplers: adding one means its function above and one entry here.
SAMPLERS: dict[str, Sampler] = {
    "pc": Sampler(pc_sample, ("snr", "corrector_steps", "t_eps", "reference_dt"),
                  lambda s, n: n * (1 + s.corrector_steps)),
    "ode": Sampler(ode_sample, ("t_eps", "solver"), lambda s, n: 2 * n - 1 if s.solver == "heun" else n),
    "em": Sampler(em_sample, ("t_eps",), lambda s, n: n),
    "ddim": Sampler(ddim_sample, ("t_eps", "solver", "eta"), lambda s, n: 2 * n - 1 if s.solver == "heun" else n),
}


def _entry(kind: str) -> Sampler:
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[kind]


def sample(score_fn: ScoreFn, sde: DiffSepSDE, mix: Tensor, settings: SamplerSettings | None = None,
           *, generator: torch.Generator | None = None, init: Tensor | None = None, **overrides) -> Tensor:
    """Run the sampler ``settings.kind`` with the options that apply to it (``overrides`` replace
    fields of ``settings``). mix (B, 1, N) -> (B, K, N).

    With ``settings.init == "model"``, ``init`` is an estimate ŝ (B, K, N) of the sources (a
    discriminative model's, normalised like ``mix``): the reverse process starts at t_start from
    x = μ_t_start(ŝ) + L_t_start z and takes proportionally fewer steps (warm start)."""
    settings = (settings or SamplerSettings()).updated(**overrides)
    entry = _entry(settings.kind)
    x_T, t_start = None, None
    if settings.init == "model":
        if init is None:
            raise ValueError("sampler init 'model' needs an estimate to start from (a warm-start model)")
        if not 0 < settings.t_start <= sde.T:
            raise ValueError(f"sampler t_start must be in (0, T = {sde.T}], got {settings.t_start}")
        t_start = settings.t_start
        z = torch.randn(init.shape, generator=generator, device=init.device, dtype=init.dtype)
        x_T = sde.marginal_sample(init, t_start, z)
    elif settings.init != "prior":
        raise ValueError(f"unknown sampler init {settings.init!r}; valid: prior, model")
    return entry.fn(score_fn, sde, mix, steps=settings.steps_from(sde.T), x_T=x_T, t_start=t_start,
                    generator=generator, **{k: getattr(settings, k) for k in entry.options})


def nfe(settings: SamplerSettings | None = None, T: float = 1.0, **overrides) -> int:
    """Number of score evaluations the sampler of ``settings`` makes (T: the SDE's final time)."""
    settings = (settings or SamplerSettings()).updated(**overrides)
    return _entry(settings.kind).nfe(settings, settings.steps_from(T))
