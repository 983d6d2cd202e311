"""The config sections of the DiffSep family (each network default is the network's own,
read from its constructor): the network and its STFT (``model``), the SDE
(``sde``) and the loss (``loss``); the sampler section is :class:`diffsep.samplers.SamplerSettings`.
Defaults are the paper's (DESIGN.md §1-2)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.spectral import TRANSFORMS
from ..nets.ncsnpp import TIME_EMBEDDINGS
from ..nets.convtasnet import MASK_ACTIVATIONS, NORMS
from ..nets.spectral_unet import SpectralUNet
from ..nets.tasnet_denoiser import TasNetDenoiser
from .diffsep_backbones import BACKBONES
from .family import LossSettings, ModelSettings, arg_default
from .data_prediction import DOMAINS, WEIGHTS
from .preconditioning import HEADS, LEGACY_OUTPUT_SCALES

OBJECTIVES = ("score", "data")


@dataclass
class BackboneSettings(ModelSettings):
    """The backbone of a network conditioned on x_t and t (families/diffsep_backbones.py: NCSN++
    inside STFT / compression, DESIGN.md §2, or a time-conditioned Conv-TasNet, the ``tasnet_*``
    fields); the model section of the bridge family, extended by DiffSep's with the output head."""
    backbone: str = field(default="spectral_unet", metadata={"choices": tuple(BACKBONES)})  # spectral_unet (NCSN++ on the compressed STFT, the paper; the fields nf ... time_embedding) | tasnet (time-conditioned Conv-TasNet, far cheaper per evaluation on CPU; the tasnet_* fields)
    nf: int = field(default=arg_default(SpectralUNet, "nf"), metadata={"min": 1})  # NCSN++ base width (paper: 128, about 65.6 M parameters; 64: 16.5 M)
    ch_mult: list[int] = field(default_factory=lambda: list(arg_default(SpectralUNet, "ch_mult")))  # width per level
    num_res_blocks: int = field(default=arg_default(SpectralUNet, "num_res_blocks"), metadata={"min": 1})  # residual blocks per level (one more on the way up)
    attn_resolutions: list[int] = field(default_factory=lambda: list(arg_default(SpectralUNet, "attn_resolutions")))  # frequency sizes with attention
    fourier_scale: float = arg_default(SpectralUNet, "fourier_scale")  # std of the Gaussian Fourier time-embedding frequencies
    init_scale: float = arg_default(SpectralUNet, "init_scale")  # scale of the last conv of each residual path (0: near-zero init)
    dropout: float = field(default=arg_default(SpectralUNet, "dropout"), metadata={"min": 0})  # dropout inside residual blocks
    n_fft: int = field(default=arg_default(SpectralUNet, "n_fft"), metadata={"range": (1, 16384)})  # STFT size (510 gives 256 bins; at most 16384)
    hop_length: int = field(default=arg_default(SpectralUNet, "hop_length"), metadata={"range": (1, 16384)})  # STFT hop
    spec_factor: float = arg_default(SpectralUNet, "spec_factor")  # β of the compression c(X) = β |X|^α e^{i∠X} (0.33 for nf 64)
    spec_abs_exponent: float = arg_default(SpectralUNet, "spec_abs_exponent")  # α of the compression
    transform: str = field(default=arg_default(SpectralUNet, "transform"), metadata={"choices": TRANSFORMS})  # compression
    time_embedding: str = field(default=arg_default(SpectralUNet, "time_embedding"), metadata={"choices": TIME_EMBEDDINGS})  # NCSN++ embeds log t (the paper, every released model) | t (also valid at t = 0)
    tasnet_N: int = field(default=arg_default(TasNetDenoiser, "N"), metadata={"min": 1})  # backbone tasnet: encoder filters
    tasnet_L: int = field(default=arg_default(TasNetDenoiser, "L"), metadata={"min": 2})  # backbone tasnet: encoder filter length in samples (even; stride L/2)
    tasnet_B: int = field(default=arg_default(TasNetDenoiser, "B"), metadata={"min": 1})  # backbone tasnet: bottleneck channels
    tasnet_H: int = field(default=arg_default(TasNetDenoiser, "H"), metadata={"min": 1})  # backbone tasnet: channels inside each block (FiLM-modulated by t)
    tasnet_P: int = field(default=arg_default(TasNetDenoiser, "P"), metadata={"min": 1})  # backbone tasnet: depthwise kernel size
    tasnet_X: int = field(default=arg_default(TasNetDenoiser, "X"), metadata={"range": (1, 16)})  # backbone tasnet: blocks per repeat (dilations 1 ... 2^(X-1); at most 16)
    tasnet_R: int = field(default=arg_default(TasNetDenoiser, "R"), metadata={"range": (1, 64)})  # backbone tasnet: repeats (at most 64)
    tasnet_Sc: int = field(default=arg_default(TasNetDenoiser, "Sc"), metadata={"min": 1})  # backbone tasnet: skip-connection channels
    tasnet_norm: str = field(default=arg_default(TasNetDenoiser, "norm"), metadata={"choices": NORMS})  # backbone tasnet: gln | cln | bn
    tasnet_mask_activation: str = field(default=arg_default(TasNetDenoiser, "mask_activation"), metadata={"choices": MASK_ACTIVATIONS})  # backbone tasnet: masks on the encoded mixture: sigmoid | softmax (over sources) | relu
    tasnet_emb_dim: int = field(default=arg_default(TasNetDenoiser, "emb_dim"), metadata={"min": 2})  # backbone tasnet: width of the time embedding (even)
    tasnet_fourier_scale: float = field(default=arg_default(TasNetDenoiser, "fourier_scale"), metadata={"gt": 0})  # backbone tasnet: std of the Gaussian Fourier frequencies of t


@dataclass
class DiffSepModelSettings(BackboneSettings):
    """The backbone and its output head (families/preconditioning.py)."""
    head: str = field(default="score_t", metadata={"choices": HEADS})  # what the network predicts (families/preconditioning.py): score_t (score = net / t, the paper, the released model) | score_sqrt_t (net / √t, learns faster) | data (mixture-consistent E[s | x_t, mix]; score by Tweedie) | v (velocity in the zero-sum subspace)
    output_scale: str = field(default="", metadata={"choices": ("",) + tuple(LEGACY_OUTPUT_SCALES)})  # older name of head, read from older checkpoints and configs: t = score_t, sqrt_t = score_sqrt_t ("": use head)

    def __post_init__(self):
        # an older checkpoint or config names its head by output_scale: read it as today's head
        legacy = LEGACY_OUTPUT_SCALES.get(self.output_scale)
        if legacy and self.head in (HEADS[0], legacy):
            self.head, self.output_scale = legacy, ""


@dataclass
class SDESettings:
    """The forward SDE dx = −γ P̄ x dt + g(t) dw, g(t) = σ_min ρ^t sqrt(2 ln ρ) (Eq. 10)."""
    gamma: float = field(default=2.0, metadata={"gt": 0})  # stiffness γ of the mixing drift −γ P̄ x
    sigma_min: float = field(default=0.05, metadata={"gt": 0})  # noise scale at t = 0
    sigma_max: float = field(default=0.5, metadata={"gt": 0})  # noise scale at t = 1
    T: float = field(default=1.0, metadata={"gt": 0})  # final time


@dataclass
class DiffSepLossSettings(LossSettings):
    """Score matching with the permutation- and mismatch-aware t = T branch (Sec. 3.2), or a loss
    on the data estimate with the same draws (families/data_prediction.py), or the unrolled sampler."""
    t_eps: float = field(default=0.03, metadata={"gt": 0})  # smallest training time
    p_T: float = field(default=0.1, metadata={"range": (0, 1)})  # probability of the t = T branch (0.3 for enhancement)
    objective: str = field(default="score", metadata={"choices": OBJECTIVES})  # score (the paper: Σ-weighted score matching) | data (w(t) × error of the data estimate, best source permutation at every t)
    weight: str = field(default="one", metadata={"choices": WEIGHTS})  # data objective: w(t) = one | snr_plus_one | min_snr (min(SNR, 5)), SNR = e^{−2γt} / λ2(t)
    domain: str = field(default="wave", metadata={"choices": DOMAINS})  # data objective: the error: wave (MSE) | spec (compressed-STFT MSE) | sb (spec + 0.001 × waveform L1) | sisdr (−SI-SDR)
    unroll_steps: int = field(default=0, metadata={"range": (0, 10)})  # > 0: fine-tune through the sampler: −SI-SDR (best permutation) of the ddim sampler's output after this many steps from the prior (needs sampler.kind ddim with as many steps)
