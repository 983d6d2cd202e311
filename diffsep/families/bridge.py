"""The mixture-consistent bridge family (``model.kind: bridge``): a network conditioned on x_t and
t predicts the sources, trained on the bridge's marginals (:mod:`diffsep.core.mixture_bridge`: noise only
in the zero-sum subspace, x_1 = mix / K exactly, so training meets the inference prior) with the
best source permutation at every t, and separating from mix / K by the bridge's posterior steps
in a few network evaluations. The backbones are DiffSep's (``model.backbone``: NCSN++ inside the
STFT or the time-conditioned Conv-TasNet)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import Tensor, nn

from ..core.mixture_bridge import MixtureBridge, bridge_sample, bridge_trajectory
from ..core.pit import permute, random_permutation
from ..core.sdr import pit_si_sdr, si_sdr
from ..core.sde import project_null
from .data_prediction import DOMAINS, min_over_permutations, pairwise_errors
from .diffsep import ChannelDraws, fold_channels
from .diffsep_backbones import backbone_frame_hop, backbone_section, build_backbone, check_backbone
from .diffsep_settings import BackboneSettings
from .family import Family, LossSettings
from .score_matching import LossDraws


GAIN_EPS = 1e-6  # ridge of the mixture fit's gains, relative to the mixture's energy


@dataclass
class BridgeSettings:
    """The ``bridge`` section: x_t = P s + (1 − t) P̄ s + σ √(t (1 − t)) P̄ z."""
    sigma: float = field(default=0.5, metadata={"gt": 0})  # noise scale σ (the zero-sum noise std peaks at σ / 2, at t = ½)


@dataclass
class BridgeLossSettings(LossSettings):
    """The error of the data estimate at a bridge marginal, the best source permutation at every t."""
    t_eps: float = field(default=0.01, metadata={"range": (0, 1)})  # smallest training time: t ~ U(t_eps, 1)
    p_T: float = field(default=0.1, metadata={"range": (0, 1)})  # probability of t = 1 exactly (x_1 = mix / K, the first sampling step)
    domain: str = field(default="sisdr", metadata={"choices": DOMAINS})  # the error: sisdr (−SI-SDR) | wave (MSE) | spec (compressed-STFT MSE) | sb (spec + 0.001 × waveform L1)
    unroll_steps: int = field(default=0, metadata={"range": (0, 10)})  # > 0: fine-tune through the sampler: −SI-SDR (best permutation) of its output after this many steps from mix / K, gradients through every step (needs sampler.steps equal)


@dataclass
class BridgeSamplerSettings:
    """The bridge sampler: ``steps`` evaluations at t = 1, 1 − 1/steps, ..., 1/steps."""
    steps: int = field(default=3, metadata={"range": (1, 1000), "help": "network evaluations"})
    eta: float = field(default=1.0, metadata={"range": (0, 1), "help": "1: posterior sampling of each step (stochastic); 0: deterministic"})

    def updated(self, **overrides) -> "BridgeSamplerSettings":
        """A copy with the given fields replaced (None values are ignored; unknown keys fail)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(k for k, v in overrides.items() if v is not None and k not in known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for the bridge sampler; valid: {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


class BridgeDenoiser(nn.Module):
    """D(x_t, t, mix) = P̄ (g ∘ F) + mix / K with F the backbone's output and g the per-source gains
    that best fit the sum of the sources to the mixture, g = argmin ‖Σ_k g_k F_k − mix‖² per item:
    a mixture-consistent estimate of the sources (P D = mix / K exactly) whatever the scale and
    sign of each output, so that a separator trained by a scale-invariant loss (Conv-TasNet,
    SI-SNR, whose outputs may come out with any gain, negative included) is a sound start.
    x_t (B, K, N), t (B,) or a scalar, mix (B, 1, N) -> (B, K, N). The backbone's weights sit under
    ``net.*``.

    Args:
        net: a backbone ``net(x_t, t, mix)`` (families/diffsep_backbones.py).
        bridge: the process whose marginals the network was trained on.
    """

    def __init__(self, net: nn.Module, bridge: MixtureBridge):
        super().__init__()
        if getattr(net, "n_src", bridge.n_src) != bridge.n_src:
            raise ValueError(f"the network separates {net.n_src} sources but the bridge has {bridge.n_src}")
        self.net, self.bridge = net, bridge

    @property
    def n_src(self) -> int:
        return self.bridge.n_src

    def extra_repr(self) -> str:
        return f"bridge={self.bridge!r}"

    def forward(self, x_t: Tensor, t, mix: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).expand(x_t.shape[0])
        return project_null(mixture_fit(self.net(x_t, t, mix), mix)) + mix / x_t.shape[1]


def mixture_fit(est: Tensor, mix: Tensor) -> Tensor:
    """Each estimate scaled by the gain (of either sign) that, over all sources together, best fits
    their sum to the mixture: g = (G + ε ‖mix‖² I)⁻¹ r with Gram matrix G_jk = ⟨F_j, F_k⟩ and
    r_k = ⟨F_k, mix⟩ (ε = :data:`GAIN_EPS` keeps g finite for silent outputs).
    est (B, K, N), mix (B, 1, N) -> (B, K, N)."""
    gram = est @ est.transpose(1, 2)  # (B, K, K)
    ridge = GAIN_EPS * mix.square().sum((1, 2))[:, None, None] * torch.eye(est.shape[1], device=est.device, dtype=est.dtype)
    gains = torch.linalg.solve(gram + ridge, est @ mix.transpose(1, 2))  # (B, K, 1)
    return gains * est


@dataclass
class BridgeDraws(LossDraws):
    """:class:`~diffsep.families.score_matching.LossDraws` and, for the unrolled sampler with
    eta > 0, the noise of its stochastic steps: noise (B, steps − 1, K, N) or None."""
    noise: Tensor | None = None

    def slice(self, start: int, stop: int) -> "BridgeDraws":
        base = LossDraws.slice(self, start, stop)
        return BridgeDraws(base.perm, base.t, base.at_T, base.z, None if self.noise is None else self.noise[start:stop])

    def to(self, device) -> "BridgeDraws":
        base = LossDraws.to(self, device)
        return BridgeDraws(base.perm, base.t, base.at_T, base.z, None if self.noise is None else self.noise.to(device))


def unrolled_bridge_loss(model, bridge: MixtureBridge, sources: Tensor, mix: Tensor, draws: BridgeDraws, *,
                         steps: int, eta: float) -> Tensor:
    """Negative SI-SDR (best permutation unless ``draws.perm`` is None) of the ``steps``-step
    sampler's output from mix / K, with gradients through every network call; the noise of its
    stochastic steps is ``draws.noise``. sources (B, K, N), mix (B, 1, N) -> (B,)."""
    noise = None if draws.noise is None else draws.noise.to(sources.dtype).transpose(0, 1)
    est = bridge_trajectory(model, bridge, mix, steps=steps, eta=eta, noise=noise)
    if draws.perm is None:
        return -si_sdr(est, sources).mean(-1)
    return -pit_si_sdr(est, sources)[0].mean(-1)


def bridge_loss(model, bridge: MixtureBridge, sources: Tensor, mix: Tensor, draws: LossDraws, *,
                domain: str = "sisdr") -> Tensor:
    """Per-item loss: the error (``domain``, :func:`~diffsep.families.data_prediction.pairwise_errors`)
    of D(x_t, t, mix) against the sources, minimum over source permutations (none when
    ``draws.perm`` is None), at x_t = μ_t(s) + σ_t P̄ z with t and z from ``draws`` (t = 1 gives
    x_1 = mix / K whatever z). sources (B, K, N), mix (B, 1, N) -> (B,)."""
    if sources.shape[1] != bridge.n_src:
        raise ValueError(f"sources have K = {sources.shape[1]} but the bridge has n_src = {bridge.n_src}")
    fixed_order = draws.perm is None
    if not fixed_order:
        sources = permute(sources, draws.perm)
    t, z = draws.t.to(sources.dtype), draws.z.to(sources.dtype)
    est = model(bridge.marginal_sample(sources, mix, t, z), t, mix)
    return min_over_permutations(pairwise_errors(est, sources, domain), fixed_order)


class BridgeFamily(Family):
    kind = "bridge"
    model_class = BridgeDenoiser
    sections = {"model": BackboneSettings, "bridge": BridgeSettings, "loss": BridgeLossSettings,
                "sampler": BridgeSamplerSettings}
    sampler_section = "sampler"

    @classmethod
    def check(cls, cfg) -> None:
        if not cfg.loss.t_eps < 1:
            raise ValueError(f"loss.t_eps must be below 1 (training times are U(t_eps, 1)), got {cfg.loss.t_eps}")
        if cfg.model.backbone == "spectral_unet" and cfg.model.time_embedding == "log_t" and cfg.loss.t_eps == 0:
            raise ValueError("loss.t_eps=0 draws t = 0, where the log_t time embedding is undefined: "
                             "set model.time_embedding=t or loss.t_eps > 0")
        n = cfg.loss.unroll_steps
        if n and cfg.sampler.steps != n:
            raise ValueError(f"loss.unroll_steps={n} tunes the model for the sampler it ships with: "
                             f"set sampler.steps={n}")
        check_backbone(cfg.model)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.bridge = MixtureBridge(cfg.model.n_src, cfg.bridge.sigma)
        self.sampler = cfg.sampler

    def build_model(self) -> BridgeDenoiser:
        return BridgeDenoiser(build_backbone(self.cfg.model), self.bridge)

    def draw(self, shape, generator) -> ChannelDraws:
        """Source orders, times (t = 1 with probability p_T) and noise for sources of ``shape``
        (B, K, C, N), and the noise of the unrolled sampler's stochastic steps: draws of the B·C
        channel items."""
        c = self.cfg.loss
        B, K, C, N = shape
        n = B * C
        perm = None if c.fixed_order else random_permutation(n, K, generator=generator)
        t = c.t_eps + (1.0 - c.t_eps) * torch.rand(n, generator=generator)
        at_T = torch.rand(n, generator=generator) < c.p_T
        t = torch.where(at_T, torch.ones_like(t), t)
        z = torch.randn((n, K, N), generator=generator)
        noise = None
        if c.unroll_steps > 1 and self.sampler.eta > 0:
            noise = torch.randn((n, c.unroll_steps - 1, K, N), generator=generator)
        return ChannelDraws(BridgeDraws(perm, t, at_T, z, noise), C)

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws: ChannelDraws) -> Tensor:
        """mix (B, C, N), sources (B, K, C, N) -> per-item loss (B,), the mean over channels."""
        B, C = mix.shape[:2]
        c = self.cfg.loss
        args = (net, self.bridge, fold_channels(sources), mix.reshape(B * C, 1, -1), draws.draws)
        if c.unroll_steps:
            per_channel = unrolled_bridge_loss(*args, steps=c.unroll_steps, eta=self.sampler.eta)
        else:
            per_channel = bridge_loss(*args, domain=c.domain)
        return per_channel.view(B, C).mean(1)

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None,
                 init: Tensor | None = None) -> Tensor:
        """mix (B, C, N) -> (B, K, C, N), each channel separated on its own."""
        B, C = mix.shape[:2]
        est = bridge_sample(model, self.bridge, mix.reshape(B * C, 1, -1), steps=self.sampler.steps,
                            eta=self.sampler.eta, generator=generator)
        return est.view(B, C, *est.shape[1:]).transpose(1, 2)

    @property
    def nfe(self) -> int:
        return self.sampler.steps

    @property
    def frame_hop(self) -> int:
        return backbone_frame_hop(self.cfg.model)

    def info(self) -> dict:
        return {"kind": self.kind, "sampler": asdict(self.sampler)}

    @staticmethod
    def config_of(model: BridgeDenoiser) -> dict:
        return {"model": {"kind": "bridge", **backbone_section(model.net)}, "bridge": {"sigma": model.bridge.sigma}}
