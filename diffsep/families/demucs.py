"""Demucs: a waveform U-Net that outputs every stem in a fixed order, trained with an L1 loss on
the waveform (no permutation search: music stems have names)."""
from __future__ import annotations

from dataclasses import asdict

from torch import Tensor, nn

from ..demucs import Demucs
from ..loss import l1_loss
from .base import Family


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
