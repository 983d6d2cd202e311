"""Conv-TasNet: a mask-based discriminative separator trained with utterance-level PIT on
negative SI-SNR; one forward pass separates."""
from __future__ import annotations

from dataclasses import asdict

from torch import Tensor, nn

from ..convtasnet import ConvTasNet
from ..loss import pit_si_snr_loss
from .base import Family


class ConvTasNetFamily(Family):
    kind = "convtasnet"
    model_class = ConvTasNet
    config_sections = ("model", "convtasnet")

    def build_model(self) -> ConvTasNet:
        return ConvTasNet(n_src=self.cfg.model.n_src, **asdict(self.cfg.convtasnet))

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws=None) -> Tensor:
        return pit_si_snr_loss(net(mix).float(), sources)

    def estimate(self, model: nn.Module, mix: Tensor, generator=None) -> Tensor:
        return model(mix)

    @staticmethod
    def config_of(model: ConvTasNet) -> dict:
        kwargs = dict(model.init_kwargs)
        return {"model": {"kind": "convtasnet", "n_src": kwargs.pop("n_src")}, "convtasnet": kwargs}
