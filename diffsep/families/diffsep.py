"""DiffSep: the NCSN++ score model trained by score matching on the DiffSep SDE, separating by
solving the reverse SDE (or its probability-flow ODE)."""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor, nn

from ..ncsnpp import rename_reference_keys
from ..loss import LossDraws, draw, score_matching_loss
from ..sampler import nfe, sample
from ..score_model import ScoreModel
from ..sde import DiffSepSDE
from .base import Family


class DiffSepFamily(Family):
    kind = "diffsep"
    model_class = ScoreModel

    def __init__(self, cfg):
        super().__init__(cfg)
        self.sde = DiffSepSDE(cfg.model.n_src, **asdict(cfg.sde))
        self.sampler = cfg.sampler

    def build_model(self) -> ScoreModel:
        kwargs = asdict(self.cfg.model)
        kwargs.pop("kind")
        kwargs["ch_mult"], kwargs["attn_resolutions"] = tuple(kwargs["ch_mult"]), tuple(kwargs["attn_resolutions"])
        return ScoreModel(**kwargs)

    def draw(self, shape, generator) -> LossDraws:
        c = self.cfg.loss
        return draw(self.sde, shape, t_eps=c.t_eps, p_T=c.p_T, fixed_order=c.fixed_order,
                    generator=generator)

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws: LossDraws) -> Tensor:
        return score_matching_loss(net, self.sde, sources, mix, draws=draws)

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None,
                 init: Tensor | None = None) -> Tensor:
        """``init``: a warm-start estimate (B, K, N), used when the sampler's init is "model"."""
        return sample(model, self.sde, mix, self.sampler, generator=generator, init=init)

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
