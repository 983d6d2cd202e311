"""DiffSep: the NCSN++ score model trained by score matching on the DiffSep SDE, separating by
solving the reverse SDE (or its probability-flow ODE)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..nets.ncsnpp import rename_reference_keys
from .score_matching import LossDraws, draw, score_matching_loss
from ..samplers import nfe, sample
from ..nets.score_model import ScoreModel
from ..core.sde import DiffSepSDE
from .family import Family


def fold_channels(x: Tensor) -> Tensor:
    """(B, K, C, N) -> (B·C, K, N), item b channel c at row b·C + c."""
    B, K, C, N = x.shape
    return x.transpose(1, 2).reshape(B * C, K, N)


@dataclass
class ChannelDraws:
    """Loss draws of multichannel items: ``draws`` for the B·C channel items, sliced by item."""
    draws: LossDraws
    channels: int

    def slice(self, start: int, stop: int) -> "ChannelDraws":
        return ChannelDraws(self.draws.slice(start * self.channels, stop * self.channels), self.channels)

    def to(self, device) -> "ChannelDraws":
        return ChannelDraws(self.draws.to(device), self.channels)


class DiffSepFamily(Family):
    kind = "diffsep"
    model_class = ScoreModel

    def __init__(self, cfg):
        super().__init__(cfg)
        self.sde = DiffSepSDE(cfg.model.n_src, **asdict(cfg.sde))
        self.sampler = cfg.sampler

    def build_model(self) -> ScoreModel:
        kwargs = asdict(self.cfg.model)
        kwargs.pop("kind"), kwargs.pop("audio_channels")
        kwargs["ch_mult"], kwargs["attn_resolutions"] = tuple(kwargs["ch_mult"]), tuple(kwargs["attn_resolutions"])
        return ScoreModel(**kwargs)

    def draw(self, shape, generator) -> LossDraws | ChannelDraws:
        """Draws for sources (B, K, N); for (B, K, C, N), draws of the B·C channel items."""
        c = self.cfg.loss
        if len(shape) == 4:
            B, K, C, N = shape
            return ChannelDraws(draw(self.sde, (B * C, K, N), t_eps=c.t_eps, p_T=c.p_T,
                                     fixed_order=c.fixed_order, generator=generator), C)
        return draw(self.sde, shape, t_eps=c.t_eps, p_T=c.p_T, fixed_order=c.fixed_order,
                    generator=generator)

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws) -> Tensor:
        """Per-item loss (B,); the channels of a multichannel item are separate items of the
        diffusion, and its loss is their mean."""
        if sources.dim() == 4:
            B, C = mix.shape[:2]
            per_channel = score_matching_loss(net, self.sde, fold_channels(sources), mix.reshape(B * C, 1, -1),
                                              draws=draws.draws)
            return per_channel.view(B, C).mean(1)
        return score_matching_loss(net, self.sde, sources, mix, draws=draws)

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None,
                 init: Tensor | None = None) -> Tensor:
        """mix (B, 1, N) -> (B, K, N); mix (B, C, N) -> (B, K, C, N), each channel separated on
        its own. ``init``: a warm-start estimate of the same shape, used when the sampler's
        init is "model"."""
        B, C = mix.shape[:2]
        if C == 1:
            return sample(model, self.sde, mix, self.sampler, generator=generator, init=init)
        est = sample(model, self.sde, mix.reshape(B * C, 1, -1), self.sampler, generator=generator,
                     init=None if init is None else fold_channels(init))
        return est.view(B, C, *est.shape[1:]).transpose(1, 2)

    @property
    def nfe(self) -> int:
        return nfe(self.sampler, self.sde.T)

    def info(self) -> dict:
        return {"kind": self.kind, "sampler": asdict(self.sampler)}

    def upgrade_weights(self, model: ScoreModel, weights: dict) -> dict:
        """Checkpoints written before the U-Net had named levels hold ``backbone.all_modules.<i>``
        keys, the reference's layout: rename them."""
        legacy = "backbone.all_modules."
        if not any(k.startswith(legacy) for k in weights):
            return weights
        backbone = {k[len("backbone."):]: v for k, v in weights.items() if k.startswith("backbone.")}
        rest = {k: v for k, v in weights.items() if not k.startswith("backbone.")}
        renamed = rename_reference_keys(backbone, model.backbone.reference_module_names())
        return {**rest, **{f"backbone.{k}": v for k, v in renamed.items()}}

    @staticmethod
    def config_of(model: ScoreModel) -> dict:
        return {"model": {"kind": "diffsep", **model.init_kwargs}}
