"""Conv-TasNet: a mask-based discriminative separator trained with utterance-level PIT on
negative SI-SNR (or, ``loss.waveform: l1``, with the L1 distance of the Demucs paper's music
baseline); one forward pass separates. ``loss.fixed_order`` keeps the source order."""
from __future__ import annotations

from dataclasses import asdict

from torch import Tensor, nn

from ..convtasnet import ConvTasNet
from ..loss import l1_loss, pit_si_snr_loss
from ..metrics import si_sdr
from .base import Family


class ConvTasNetFamily(Family):
    kind = "convtasnet"
    model_class = ConvTasNet
    config_sections = ("model", "convtasnet")

    def build_model(self) -> ConvTasNet:
        m = self.cfg.model
        return ConvTasNet(n_src=m.n_src, audio_channels=m.audio_channels, **asdict(self.cfg.convtasnet))

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws=None) -> Tensor:
        """mix (B, C, N), sources (B, K, N) or (B, K, C, N) -> (B,); a multichannel source is
        scored as one signal."""
        est = net(mix).float()
        if self.cfg.loss.waveform == "l1":
            return l1_loss(est, sources)
        est, sources = est.flatten(2), sources.flatten(2)
        if self.cfg.loss.fixed_order:
            return -si_sdr(est, sources).mean(-1)
        return pit_si_snr_loss(est, sources)

    def estimate(self, model: nn.Module, mix: Tensor, generator=None) -> Tensor:
        return model(mix)

    @staticmethod
    def config_of(model: ConvTasNet) -> dict:
        kwargs = dict(model.init_kwargs)
        model_section = {"kind": "convtasnet", "n_src": kwargs.pop("n_src"), "audio_channels": kwargs.pop("audio_channels")}
        return {"model": model_section, "convtasnet": kwargs}
