"""Discriminative separators: one forward pass of a network gives the sources, trained with a
waveform loss. Conv-TasNet (utterance-level PIT on negative SI-SNR, or L1 in a fixed order, the
Demucs paper's music baseline) and Demucs (L1 on the waveform, stems in a fixed order)."""
from __future__ import annotations

from dataclasses import asdict

from torch import Tensor, nn

from ..core.sdr import si_sdr
from ..nets.convtasnet import ConvTasNet
from ..nets.demucs import Demucs
from .family import Family
from .waveform_losses import l1_loss, pit_si_snr_loss


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


class DemucsFamily(Family):
    kind = "demucs"
    model_class = Demucs
    config_sections = ("model", "demucs")

    def build_model(self) -> Demucs:
        m = self.cfg.model
        return Demucs(n_src=m.n_src, audio_channels=m.audio_channels, **asdict(self.cfg.demucs))

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws=None) -> Tensor:
        """mix (B, C, N), sources (B, K, N) or (B, K, C, N) -> mean absolute error per item (B,)."""
        return l1_loss(net(mix).float(), sources)

    def estimate(self, model: nn.Module, mix: Tensor, generator=None) -> Tensor:
        """mix (B, C, N) -> (B, K, C, N); (B, K, N) for mono, as every speech model."""
        est = model(mix)
        return est[:, :, 0] if est.shape[2] == 1 else est

    @staticmethod
    def config_of(model: Demucs) -> dict:
        kwargs = dict(model.init_kwargs)
        model_section = {"kind": "demucs", "n_src": kwargs.pop("n_src"), "audio_channels": kwargs.pop("audio_channels")}
        return {"model": model_section, "demucs": kwargs}
