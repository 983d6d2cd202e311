"""Typed configuration: one dataclass per section, loaded from YAML with omegaconf.

``load_config("configs/default.yaml", ["train.max_steps=10", "model.nf=64"])`` merges a YAML file
(which may name a ``base`` file to start from) and command-line overrides onto the dataclass
defaults. Unknown keys fail with the list of valid ones; values are type-checked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..samplers import SamplerSettings


@dataclass
class ModelConfig:
    kind: str = "diffsep"  # model family (diffsep.families.FAMILIES): diffsep | convtasnet | demucs (settings: the section of that name)
    n_src: int = 2  # number of sources K (enhancement: 2 = [speech, noise]; music: the stems)
    audio_channels: int = 1  # C: 1 (speech) or 2 (stereo music); data files must have as many
    nf: int = 128  # NCSN++ base width (paper: 128, about 65.6 M parameters; 64: 16.5 M)
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 2, 2, 2])  # width per level (= ncsnpp.PAPER_CH_MULT)
    num_res_blocks: int = 2  # residual blocks per level (one more on the way up)
    attn_resolutions: list[int] = field(default_factory=lambda: [16])  # frequency sizes with attention
    fourier_scale: float = 16.0  # std of the Gaussian Fourier time-embedding frequencies
    init_scale: float = 0.0  # scale of the last conv of each residual path (0: near-zero init)
    dropout: float = 0.0  # dropout inside residual blocks
    n_fft: int = 510  # STFT size (510 gives 256 bins)
    hop_length: int = 128  # STFT hop
    spec_factor: float = 0.15  # β of the compression c(X) = β |X|^α e^{i∠X} (0.33 for nf 64)
    spec_abs_exponent: float = 0.5  # α of the compression
    transform: str = "exponent"  # compression: exponent | log | none
    output_scale: str = "t"  # U-Net output divided by t (the paper, the released model) | sqrt_t (learns faster, see ncsnpp.py)


@dataclass
class DemucsConfig:
    channels: int = 64  # channels of the first encoder block (paper: 64)
    depth: int = 6  # encoder / decoder blocks L
    kernel_size: int = 8  # strided convolution size
    stride: int = 4  # stride of the encoder convolutions
    growth: float = 2.0  # channel multiplier per block
    lstm_layers: int = 2  # bidirectional LSTM layers at the bottleneck (0: none)
    context: int = 3  # decoder context convolution size (odd)
    rescale: float = 0.1  # init: weights divided by sqrt(std / rescale) (0: off)


@dataclass
class ConvTasNetConfig:
    N: int = 512  # encoder filters
    L: int = 16  # encoder filter length in samples (stride L/2)
    B: int = 128  # bottleneck channels
    H: int = 512  # channels inside each convolutional block
    P: int = 3  # depthwise kernel size
    X: int = 8  # blocks per repeat (dilations 1 ... 2^(X-1))
    R: int = 3  # repeats
    Sc: int = 128  # skip-connection channels
    norm: str = "gln"  # gln (global, non-causal) | cln (cumulative, causal) | bn
    causal: bool = False  # left-only padding of the depthwise convolutions (needs norm cln or bn)
    mask_activation: str = "sigmoid"  # sigmoid | softmax (over sources) | relu


@dataclass
class SDEConfig:
    gamma: float = 2.0  # stiffness γ of the mixing drift −γ P̄ x
    sigma_min: float = 0.05  # noise scale at t = 0
    sigma_max: float = 0.5  # noise scale at t = 1
    T: float = 1.0  # final time


@dataclass
class LossConfig:
    t_eps: float = 0.03  # smallest training time
    p_T: float = 0.1  # probability of the permutation- and mismatch-aware t = T branch
    fixed_order: bool = False  # keep the source order (enhancement, music stems); otherwise shuffle + min over π
    waveform: str = "si_snr"  # Conv-TasNet's loss: si_snr (negative SI-SNR, PIT unless fixed_order) | l1 (mean absolute error, fixed order)


@dataclass
class DataConfig:
    kind: str = "wsj0_mix"  # wsj0_mix | librimix | vbdemand | folder | musdb
    root: str = ""  # dataset root (see README for each layout)
    sample_rate: int = 8000  # model sample rate; files at another rate are refused
    mode: str = "min"  # wsj0-mix / LibriMix: min | max
    train_split: str = "tr"  # split used for training (tr | train-100 | train-360 | train ...)
    valid_split: str = "cv"  # split used for validation
    test_split: str = "tt"  # split used for testing
    mixture: str = "mix_clean"  # LibriMix: mix_clean | mix_both
    stems: list[str] = field(default_factory=lambda: ["drums", "bass", "other", "vocals"])  # musdb: stem files, in the model's source order
    valid_tracks: list[str] = field(default_factory=list)  # musdb: training tracks held out as the valid split (empty: MUSDB18's list)
    remix: bool = False  # musdb training: each stem from a random track at its own offset (data/music.py)
    shift_seconds: float = 0.0  # musdb training: random time shift of each stem, up to this much
    channel_swap: bool = False  # musdb training: swap a stem's left/right channels with probability 1/2
    sign_flip: bool = False  # musdb training: multiply each stem by ±1
    gain_range: list[float] = field(default_factory=list)  # musdb training: per-stem gain drawn in [lo, hi] (empty: none)
    segment_seconds: float = 5.0  # random crop length for training (<= 0: whole files)
    min_seconds: float = 0.0  # drop training files shorter than this
    num_workers: int = 2  # DataLoader worker processes
    dynamic_mixing: bool = False  # training items are fresh mixtures of K speakers' utterances (data/dynamic.py)
    dm_level_db: float = 5.0  # dynamic mixing: sources' levels differ by up to this many dB (wsj0-2mix: 5)
    speed_perturb: list[float] = field(default_factory=list)  # dynamic mixing: per-source speed factors to draw from, e.g. [0.9, 1.0, 1.1]
    dm_speaker_weights: dict[str, float] = field(default_factory=dict)  # dynamic mixing: {glob of speaker ids: weight} of drawing them (first match; others 1), e.g. {"esp-*": 0.3}
    eq_db: float = 0.0  # dynamic mixing: each source through a random smooth EQ of up to ±eq_db dB (0: off)
    monitor_splits: list[str] = field(default_factory=list)  # more splits separated at every validation (SI-SDRi logged as val_<split>_si_sdri), e.g. [tt]: unseen speakers
    monitor_root: str = ""  # root of the monitor splits (empty: data.root), same layout and kind
    monitor_seconds: float = 4.0  # monitor items are the first N seconds of each mixture (<= 0: whole mixtures)
    monitor_items: int = 0  # monitor splits: separate the first N items (0: all of them; a few items are a noisy estimate)


@dataclass
class OptimConfig:
    lr: float = 2e-4  # Adam learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    weight_decay: float = 0.0  # Adam weight decay
    grad_clip: float = 5.0  # clip the global gradient norm (<= 0: off)
    ema_decay: float = 0.999  # EMA of the weights used for validation and inference
    lr_schedule: str = "none"  # none | cosine (to lr_min at train.max_steps: keep max_steps when resuming) | plateau (multiply lr by lr_factor after lr_patience validations without improvement)
    warmup_steps: int = 0  # linear lr warm-up over this many optimizer steps (none and cosine schedules)
    lr_min: float = 0.0  # cosine: the lr at train.max_steps
    lr_patience: int = 3  # plateau: validations without improvement before the lr is reduced
    lr_factor: float = 0.5  # plateau: lr multiplier


@dataclass
class TrainConfig:
    run_dir: str = "runs/default"  # checkpoints, logs and the resolved config go here
    max_steps: int = 500000  # optimizer steps
    batch_size: int = 6  # items per micro-batch per process
    accumulate: int = 2  # micro-batches per optimizer step
    seed: int = 0  # seed of everything random
    amp: str = "none"  # autocast: none | bf16 | fp16 (fp16 uses a GradScaler)
    ckpt_every: int = 1000  # checkpoint every N optimizer steps (and at each epoch end)
    keep_last: int = 3  # numbered checkpoints to keep besides last.pt and best.pt
    log_every: int = 50  # log training scalars every N steps
    val_every: int = 5000  # validate every N steps (0: only at the end)
    val_every_epochs: int = 0  # also validate at the end of every N-th epoch (0: off)
    val_batches: int = 20  # validation loss batches
    val_sep_items: int = 4  # cv items separated with the sampler for SI-SDR
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: str = "auto"  # auto (RUN_DIR/last.pt if present) | never | PATH
    init_from: str = ""  # a new run starts from this checkpoint's weights (EMA if it has them; fine-tuning); ignored when resuming


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    convtasnet: ConvTasNetConfig = field(default_factory=ConvTasNetConfig)
    demucs: DemucsConfig = field(default_factory=DemucsConfig)
    sde: SDEConfig = field(default_factory=SDEConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A bad configuration: unknown key, wrong type, bad value."""


def _valid_keys(section: str | None) -> list[str]:
    if section is None:
        return [f.name for f in fields(Config)]
    cls = {f.name: f.default_factory for f in fields(Config)}[section]().__class__
    return [f.name for f in fields(cls)]


def _check_keys(d: dict, source: str) -> None:
    for section, values in d.items():
        if section == "base":
            continue
        if section not in _valid_keys(None):
            raise ConfigError(f"{source}: unknown section {section!r}; valid: {', '.join(_valid_keys(None))}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for key in values:
            if key not in _valid_keys(section):
                raise ConfigError(f"{source}: unknown key {section}.{key}; valid keys of {section}: "
                                  f"{', '.join(_valid_keys(section))}")


def _read_yaml(path: Path, seen: tuple = ()) -> list[dict]:
    """The YAML file and, first, the chain of ``base`` files it names (relative to it)."""
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base' chain")
    try:
        d = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    d = d or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    _check_keys(d, str(path))
    chain = []
    if d.get("base"):
        chain = _read_yaml(path.parent / d["base"], seen + (path.resolve(),))
    return chain + [{k: v for k, v in d.items() if k != "base"}]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML (with its base chain) <- ``section.key=value`` overrides -> Config."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers = _read_yaml(Path(path)) if path else []
    dotlist = []
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotlist.append(item)
    try:
        over = OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad override: {e}") from None
    _check_keys(over, "command line")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), *layers, over)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        key = getattr(e, "full_key", None)
        raise ConfigError(f"bad value{f' for {key}' if key else ''}: {msg}") from None
    return check_values(cfg)


_AT_LEAST_1 = ("model.n_src", "model.audio_channels", "demucs.channels", "demucs.depth", "demucs.kernel_size",
               "demucs.stride", "demucs.context", "model.nf", "model.num_res_blocks", "model.n_fft", "model.hop_length",
               "convtasnet.N", "convtasnet.L", "convtasnet.B", "convtasnet.H", "convtasnet.P",
               "convtasnet.X", "convtasnet.R", "convtasnet.Sc", "sampler.steps", "data.sample_rate",
               "train.batch_size", "train.accumulate", "train.log_every", "train.ckpt_every",
               "train.val_batches")
_AT_LEAST_0 = ("model.dropout", "sampler.corrector_steps", "sampler.snr", "data.min_seconds",
               "data.num_workers", "optim.weight_decay", "optim.grad_clip", "train.max_steps",
               "train.val_every", "train.val_every_epochs", "train.keep_last", "train.val_sep_items",
               "optim.lr_patience", "optim.warmup_steps", "optim.lr_min", "data.dm_level_db", "data.shift_seconds", "data.eq_db", "data.monitor_items",
               "demucs.lstm_layers", "demucs.rescale")
_POSITIVE = ("optim.lr", "optim.lr_factor", "sde.gamma", "sde.T", "demucs.growth")
_UNIT = ("loss.p_T", "optim.ema_decay")


def check_values(cfg: Config) -> Config:
    """Refuse values no run can use (a zero batch, a negative count, p_T outside [0, 1] ...),
    naming the key, instead of failing later with an arithmetic error."""
    def get(key):
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    rules = ([(k, lambda v: v >= 1, ">= 1") for k in _AT_LEAST_1]
             + [(k, lambda v: v >= 0, ">= 0") for k in _AT_LEAST_0]
             + [(k, lambda v: v > 0, "> 0") for k in _POSITIVE]
             + [(k, lambda v: 0 <= v <= 1, "in [0, 1]") for k in _UNIT])
    for key, ok, what in rules:
        value = get(key)
        if not ok(value):
            raise ConfigError(f"{key} must be {what}, got {value}")
    if not 0 < cfg.sde.sigma_min < cfg.sde.sigma_max:
        raise ConfigError(f"need 0 < sde.sigma_min < sde.sigma_max, got {cfg.sde.sigma_min}, {cfg.sde.sigma_max}")
    g = cfg.data.gain_range
    if g and (len(g) != 2 or not 0 <= g[0] <= g[1]):
        raise ConfigError(f"data.gain_range must be [lo, hi] with 0 <= lo <= hi, got {list(g)}")
    if cfg.data.channel_swap and cfg.model.audio_channels != 2:
        raise ConfigError(f"data.channel_swap needs stereo stems, model.audio_channels is {cfg.model.audio_channels}")
    bad = {k: w for k, w in cfg.data.dm_speaker_weights.items() if not w >= 0}
    if bad:
        raise ConfigError(f"data.dm_speaker_weights must be >= 0, got {bad}")
    if cfg.loss.waveform not in ("si_snr", "l1"):
        raise ConfigError(f"loss.waveform must be si_snr or l1, got {cfg.loss.waveform!r}")
    if cfg.loss.waveform == "l1" and not cfg.loss.fixed_order:
        raise ConfigError("loss.waveform l1 compares sources in their order: set loss.fixed_order=true")
    for key in ("loss.t_eps", "sampler.t_eps", "sampler.t_start"):
        if not 0 < get(key) <= cfg.sde.T:
            raise ConfigError(f"{key} must be in (0, sde.T = {cfg.sde.T}], got {get(key)}")
    return cfg


def config_from_dict(d: dict) -> Config:
    """Rebuild a Config from ``to_dict`` output (e.g. a checkpoint's), checking keys and types."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _check_keys(d, "config")
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), d))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config: {str(e).splitlines()[0]}") from None
    return check_values(cfg)


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (what goes into checkpoints and the run directory)."""
    return asdict(cfg)


def to_yaml(cfg: Config) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
