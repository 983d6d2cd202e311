"""DiffSep: the NCSN++ score model trained by score matching on the DiffSep SDE, separating by
solving the reverse SDE (or its probability-flow ODE)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..core.sde import DiffSepSDE
from ..nets.ncsnpp import rename_reference_keys
from ..samplers import SamplerSettings, nfe, sample
from .diffsep_backbones import backbone_frame_hop, backbone_section, build_backbone, check_backbone
from .diffsep_settings import DiffSepLossSettings, DiffSepModelSettings, SDESettings
from .family import Family
from .preconditioning import Preconditioned, resolve_head
from .data_prediction import data_loss, unrolled_loss
from .score_matching import LossDraws, draw, score_matching_loss


def fold_channels(x: Tensor) -> Tensor:
    """(B, K, C, N) -> (B·C, K, N), item b channel c at row b·C + c."""
    B, K, C, N = x.shape
    return x.transpose(1, 2).reshape(B * C, K, N)


@dataclass
class ChannelDraws:
    """Loss draws of a batch of (B, K, C, N) items: ``draws`` for the B·C channel items, sliced by item."""
    draws: LossDraws
    channels: int

    def slice(self, start: int, stop: int) -> "ChannelDraws":
        return ChannelDraws(self.draws.slice(start * self.channels, stop * self.channels), self.channels)

    def to(self, device) -> "ChannelDraws":
        return ChannelDraws(self.draws.to(device), self.channels)


class DiffSepFamily(Family):
    kind = "diffsep"
    model_class = Preconditioned
    sections = {"model": DiffSepModelSettings, "sde": SDESettings, "loss": DiffSepLossSettings,
                "sampler": SamplerSettings}
    sampler_section = "sampler"
    warm_start = True  # the reverse process can start at t_start from another separator's estimate

    @classmethod
    def check(cls, cfg) -> None:
        if not cfg.sde.sigma_min < cfg.sde.sigma_max:
            raise ValueError(f"need sde.sigma_min < sde.sigma_max, got {cfg.sde.sigma_min}, {cfg.sde.sigma_max}")
        for key, value in (("loss.t_eps", cfg.loss.t_eps), ("sampler.t_eps", cfg.sampler.t_eps),
                           ("sampler.t_start", cfg.sampler.t_start)):
            if not 0 < value <= cfg.sde.T:
                raise ValueError(f"{key} must be in (0, sde.T = {cfg.sde.T}], got {value}")
        if cfg.sampler.init == "model" and not cfg.sampler.t_start > cfg.sampler.t_eps:
            raise ValueError(f"sampler.t_start must be in (sampler.t_eps = {cfg.sampler.t_eps}, sde.T = "
                             f"{cfg.sde.T}] to start from a warm-start estimate, got {cfg.sampler.t_start}")
        resolve_head(cfg.model.head, cfg.model.output_scale)  # the older output_scale agrees with head
        n = cfg.loss.unroll_steps
        if n and (cfg.sampler.kind, cfg.sampler.steps, cfg.sampler.init, cfg.sampler.eta) != ("ddim", n, "prior", 0):
            raise ValueError(f"loss.unroll_steps={n} tunes the model for the sampler it ships with: set "
                             f"sampler.kind=ddim sampler.steps={n} sampler.init=prior sampler.eta=0")
        check_backbone(cfg.model)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.sde = DiffSepSDE(cfg.model.n_src, **asdict(cfg.sde))
        self.sampler = cfg.sampler

    def build_model(self) -> Preconditioned:
        """The model section's backbone (``model.backbone``: the spectral U-Net or the
        time-conditioned Conv-TasNet, families/diffsep_backbones.py) with its head (an older
        ``output_scale`` is read as the head when the settings are made, and checked against it
        by :meth:`check`)."""
        return Preconditioned(build_backbone(self.cfg.model), self.cfg.model.head, self.sde)

    def draw(self, shape, generator) -> ChannelDraws:
        """Draws for sources of ``shape`` (B, K, C, N): those of the B·C channel items."""
        c = self.cfg.loss
        B, K, C, N = shape
        return ChannelDraws(draw(self.sde, (B * C, K, N), t_eps=c.t_eps, p_T=c.p_T, fixed_order=c.fixed_order,
                                 generator=generator), C)

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws: ChannelDraws) -> Tensor:
        """mix (B, C, N), sources (B, K, C, N) -> per-item loss (B,). The channels of an item are
        separate items of the diffusion (B·C of them, (B·C, K, N)); its loss is their mean."""
        B, C = mix.shape[:2]
        c = self.cfg.loss
        args = (net, self.sde, fold_channels(sources), mix.reshape(B * C, 1, -1), draws.draws)
        if c.unroll_steps:
            per_channel = unrolled_loss(*args, steps=c.unroll_steps, t_eps=self.sampler.t_eps,
                                        solver=self.sampler.solver)
        elif c.objective == "data":
            per_channel = data_loss(*args, weight=c.weight, domain=c.domain)
        else:
            per_channel = score_matching_loss(*args[:4], draws=draws.draws)
        return per_channel.view(B, C).mean(1)

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None,
                 init: Tensor | None = None) -> Tensor:
        """mix (B, C, N) -> (B, K, C, N), each channel separated on its own by the sampler (as
        (B·C, K, N) diffusion items). ``init``: a warm-start estimate (B, K, C, N), used when the
        sampler's init is "model"."""
        B, C = mix.shape[:2]
        est = sample(model, self.sde, mix.reshape(B * C, 1, -1), self.sampler, generator=generator,
                     init=None if init is None else fold_channels(init))
        return est.view(B, C, *est.shape[1:]).transpose(1, 2)

    @property
    def nfe(self) -> int:
        return nfe(self.sampler, self.sde.T)

    @property
    def frame_hop(self) -> int:
        return backbone_frame_hop(self.cfg.model)

    def info(self) -> dict:
        return {"kind": self.kind, "sampler": asdict(self.sampler)}

    def upgrade_weights(self, model: Preconditioned, weights: dict) -> dict:
        """Older key layouts: ``backbone.*`` (before the head was apart from the spectral U-Net)
        is ``net.backbone.*``; ``backbone.all_modules.<i>`` (before the U-Net had named levels,
        the reference's layout) is renamed to the named levels."""
        weights = {f"net.{k}" if k.startswith("backbone.") else k: v for k, v in weights.items()}
        prefix = "net.backbone."
        if not any(k.startswith(prefix + "all_modules.") for k in weights):
            return weights
        backbone = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        rest = {k: v for k, v in weights.items() if not k.startswith(prefix)}
        renamed = rename_reference_keys(backbone, model.net.backbone.reference_module_names())
        return {**rest, **{prefix + k: v for k, v in renamed.items()}}

    @staticmethod
    def config_of(model: Preconditioned) -> dict:
        sde = model.sde
        return {"model": {"kind": "diffsep", **backbone_section(model.net), "head": model.head},
                "sde": {"gamma": sde.gamma, "sigma_min": sde.sigma_min, "sigma_max": sde.sigma_max, "T": sde.T}}
