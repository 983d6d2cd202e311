"""Discriminative separators: one forward pass of a network gives the sources, trained with a
waveform loss. Conv-TasNet (utterance-level PIT on negative SI-SNR, or L1 in a fixed order, the
Demucs paper's music baseline) and Demucs (L1 on the waveform, stems in a fixed order)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import Tensor, nn

from ..core.sdr import si_sdr
from ..nets.convtasnet import MASK_ACTIVATIONS, ConvTasNet
from ..nets.demucs import Demucs
from .family import Family, LossSettings, arg_default
from .waveform_losses import l1_loss, pit_si_snr_loss


@dataclass
class ConvTasNetSettings:
    """The ``convtasnet`` section: the network of Luo & Mesgarani (2019), their letters."""
    N: int = field(default=arg_default(ConvTasNet, "N"), metadata={"min": 1})  # encoder filters
    L: int = field(default=arg_default(ConvTasNet, "L"), metadata={"min": 1})  # encoder filter length in samples (stride L/2)
    B: int = field(default=arg_default(ConvTasNet, "B"), metadata={"min": 1})  # bottleneck channels
    H: int = field(default=arg_default(ConvTasNet, "H"), metadata={"min": 1})  # channels inside each convolutional block
    P: int = field(default=arg_default(ConvTasNet, "P"), metadata={"min": 1})  # depthwise kernel size
    X: int = field(default=arg_default(ConvTasNet, "X"), metadata={"range": (1, 16)})  # blocks per repeat (dilations 1 ... 2^(X-1); at most 16)
    R: int = field(default=arg_default(ConvTasNet, "R"), metadata={"min": 1})  # repeats
    Sc: int = field(default=arg_default(ConvTasNet, "Sc"), metadata={"min": 1})  # skip-connection channels
    norm: str = field(default=arg_default(ConvTasNet, "norm"), metadata={"choices": ("gln", "cln", "bn")})  # gln (global, non-causal) | cln (cumulative, causal) | bn
    causal: bool = arg_default(ConvTasNet, "causal")  # left-only padding of the depthwise convolutions (needs norm cln or bn)
    mask_activation: str = field(default=arg_default(ConvTasNet, "mask_activation"), metadata={"choices": MASK_ACTIVATIONS})  # softmax: over sources


@dataclass
class WaveformLossSettings(LossSettings):
    """The ``loss`` section of Conv-TasNet."""
    waveform: str = field(default="si_snr", metadata={"choices": ("si_snr", "l1")})  # si_snr (negative SI-SNR, PIT unless fixed_order) | l1 (mean absolute error, fixed order)


@dataclass
class DemucsSettings:
    """The ``demucs`` section: the waveform U-Net of Défossez et al. (2019)."""
    channels: int = field(default=arg_default(Demucs, "channels"), metadata={"min": 1})  # channels of the first encoder block (paper: 64)
    depth: int = field(default=arg_default(Demucs, "depth"), metadata={"range": (1, 16)})  # encoder / decoder blocks L (stride^depth at most 2^24)
    kernel_size: int = field(default=arg_default(Demucs, "kernel_size"), metadata={"min": 1})  # strided convolution size
    stride: int = field(default=arg_default(Demucs, "stride"), metadata={"min": 1})  # stride of the encoder convolutions
    growth: float = field(default=arg_default(Demucs, "growth"), metadata={"gt": 0})  # channel multiplier per block
    lstm_layers: int = field(default=arg_default(Demucs, "lstm_layers"), metadata={"min": 0})  # bidirectional LSTM layers at the bottleneck (0: none)
    context: int = field(default=arg_default(Demucs, "context"), metadata={"min": 1})  # decoder context convolution size (odd)
    rescale: float = field(default=arg_default(Demucs, "rescale"), metadata={"min": 0})  # init: weights divided by sqrt(std / rescale) (0: off)


@dataclass
class StemLossSettings(LossSettings):
    """The ``loss`` section of Demucs: L1 on the stems in their order."""
    fixed_order: bool = True  # stems have names: always their order


class DiscriminativeFamily(Family):
    """A network whose forward pass is the estimate: mix (B, C, N) -> (B, K, C, N). Its settings
    are the section named :attr:`net_section` (plus the model's n_src and audio_channels)."""
    net_section: str = ""

    def build_model(self) -> nn.Module:
        m = self.cfg.model
        return self.model_class(n_src=m.n_src, audio_channels=m.audio_channels,
                                **asdict(getattr(self.cfg, self.net_section)))

    def estimate(self, model: nn.Module, mix: Tensor, generator=None, init=None) -> Tensor:
        """mix (B, C, N) -> (B, K, C, N)."""
        return model(mix)

    @classmethod
    def config_of(cls, model: nn.Module) -> dict:
        kwargs = dict(model.init_kwargs)
        model_section = {"kind": cls.kind, "n_src": kwargs.pop("n_src"), "audio_channels": kwargs.pop("audio_channels")}
        return {"model": model_section, cls.net_section: kwargs}


class ConvTasNetFamily(DiscriminativeFamily):
    kind = "convtasnet"
    model_class = ConvTasNet
    net_section = "convtasnet"
    sections = {**Family.sections, "convtasnet": ConvTasNetSettings, "loss": WaveformLossSettings}
    config_sections = ("model", "convtasnet")

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.loss.waveform == "l1" and not cfg.loss.fixed_order:
            raise ValueError("loss.waveform l1 compares sources in their order: set loss.fixed_order=true")

    @property
    def frame_hop(self) -> int:
        return max(1, self.cfg.convtasnet.L // 2)  # the encoder's stride

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws=None) -> Tensor:
        """mix (B, C, N), sources (B, K, C, N) -> (B,); a multichannel source is scored as one
        signal."""
        est = net(mix).float()
        if self.cfg.loss.waveform == "l1":
            return l1_loss(est, sources)
        est, sources = est.flatten(2), sources.flatten(2)
        if self.cfg.loss.fixed_order:
            return -si_sdr(est, sources).mean(-1)
        return pit_si_snr_loss(est, sources)


class DemucsFamily(DiscriminativeFamily):
    kind = "demucs"
    model_class = Demucs
    net_section = "demucs"
    sections = {**Family.sections, "demucs": DemucsSettings, "loss": StemLossSettings}
    config_sections = ("model", "demucs")

    @classmethod
    def check(cls, cfg) -> None:
        if not cfg.loss.fixed_order:
            raise ValueError("Demucs outputs its stems in a fixed order: set loss.fixed_order=true")
        d = cfg.demucs
        if d.stride ** d.depth > 2 ** 24:  # an input is padded to a multiple of about stride^depth samples
            raise ValueError(f"demucs.stride ** demucs.depth must be at most 2^24, got {d.stride}^{d.depth}")

    @property
    def frame_hop(self) -> int:
        return self.cfg.demucs.stride ** self.cfg.demucs.depth  # the encoder's total stride

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws=None) -> Tensor:
        """mix (B, C, N), sources (B, K, C, N) -> mean absolute error per item (B,)."""
        return l1_loss(net(mix).float(), sources)
