"""Typed configuration: the chosen model family's sections, then data, optim and train, loaded from
YAML with omegaconf.

``load_config("configs/tiny.yaml", ["train.max_steps=10", "model.nf=64"])`` merges a YAML file
(which may name a ``base`` file to start from) and command-line overrides onto the dataclass
defaults. ``model.kind`` chooses the family (:data:`diffsep.families.FAMILIES`); the family
declares its own sections (:attr:`diffsep.families.Family.sections`), so a Conv-TasNet config has
no SDE or sampler section. Unknown keys fail with the list of valid ones; values are type-checked,
and range-checked from each field's metadata.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from ..data.layouts import LAYOUTS
from ..families import FAMILIES
from ..families.family import LossSettings, ModelSettings
from ..storage.names import check_plain_names


@dataclass
class DataConfig:
    kind: str = field(default="wsj0_mix", metadata={"choices": LAYOUTS})  # the layout (diffsep.data.layouts.LAYOUTS): wsj0_mix | librimix | vbdemand | folder | musdb
    root: str = ""  # dataset root (see README for each layout)
    sample_rate: int = field(default=8000, metadata={"range": (1000, 384000)})  # model sample rate (1 kHz to 384 kHz: a checkpoint claiming more is refused); files at another rate are resampled to it (diffsep/data/reading.py)
    mode: str = field(default="min", metadata={"choices": ("min", "max")})  # wsj0-mix / LibriMix: min | max
    train_split: str = "tr"  # split used for training (tr | train-100 | train-360 | train ...)
    valid_split: str = "cv"  # split used for validation
    test_split: str = ""  # the split evaluate scores a model on when --split is not given ("": the layout's test split: tt, test ...)
    mixture: str = "mix_clean"  # LibriMix: mix_clean | mix_both
    stems: list[str] = field(default_factory=lambda: ["drums", "bass", "other", "vocals"])  # musdb: stem files, in the model's source order
    valid_tracks: list[str] = field(default_factory=list)  # musdb: training tracks held out as the valid split (empty: MUSDB18's list)
    remix: bool = False  # musdb training: each stem from a random track at its own offset (data/music.py)
    shift_seconds: float = field(default=0.0, metadata={"min": 0})  # musdb training: random time shift of each stem, up to this much
    channel_swap: bool = False  # musdb training: swap a stem's left/right channels with probability 1/2
    sign_flip: bool = False  # musdb training: multiply each stem by ±1
    gain_range: list[float] = field(default_factory=list)  # musdb training: per-stem gain drawn in [lo, hi] (empty: none)
    segment_seconds: float = 5.0  # random crop length for training (<= 0: whole files)
    min_seconds: float = field(default=0.0, metadata={"min": 0})  # drop training files shorter than this
    num_workers: int = field(default=2, metadata={"min": 0})  # DataLoader worker processes
    dynamic_mixing: bool = False  # training items are fresh mixtures of K speakers' utterances (data/dynamic.py)
    dm_level_db: float = field(default=5.0, metadata={"min": 0})  # dynamic mixing: sources' levels differ by up to this many dB (wsj0-2mix: 5)
    speed_perturb: list[float] = field(default_factory=list)  # dynamic mixing: per-source speed factors to draw from, e.g. [0.9, 1.0, 1.1]
    dm_speaker_weights: dict[str, float] = field(default_factory=dict)  # dynamic mixing: {glob of speaker ids: weight} of drawing them (first match; others 1), e.g. {"esp-*": 0.3}
    eq_db: float = field(default=0.0, metadata={"min": 0})  # dynamic mixing: each source through a random smooth EQ of up to ±eq_db dB (0: off)
    pitch_semitones: float = field(default=0.0, metadata={"range": (0, 12)})  # dynamic mixing: each source's pitch shifted by up to ±this many semitones at constant duration (WSOLA; 0: off)
    vtlp_alpha: float = field(default=0.0, metadata={"range": (0, 0.5)})  # dynamic mixing: each source's formants moved by a factor drawn in [1 - a, 1 + a], pitch kept (VTLP warp of the LPC envelope; 0: off)
    reverb_prob: float = field(default=0.0, metadata={"range": (0, 1)})  # dynamic mixing: probability that a source is reverberated in its own random room (the target is the reverberant voice, aligned at the direct path; 0: off)
    reverb_rt60: list[float] = field(default_factory=lambda: [0.15, 0.6])  # dynamic mixing: the rooms' RT60 is drawn uniformly in [lo, hi] seconds
    codec_prob: float = field(default=0.0, metadata={"range": (0, 1)})  # dynamic mixing: probability that a source goes through a telephone channel (300-3400 Hz; mu-law, A-law or a GSM-like LPC coder) before mixing (0: off)
    monitor_splits: list[str] = field(default_factory=list)  # more splits separated at every validation (SI-SDRi logged as val_<split>_si_sdri), e.g. [tt]: unseen speakers
    monitor_root: str = ""  # root of the monitor splits (empty: data.root), same layout and kind
    monitor_sets: dict[str, str] = field(default_factory=dict)  # more test sets separated at every validation, {name: root} (same layout and kind, the layout's test split), logged as val_<name>_si_sdri, e.g. {libri_tt: PATH/realspeech/libri_tt}
    monitor_seconds: float = 4.0  # monitor items are the first N seconds of each mixture (<= 0: whole mixtures)
    monitor_items: int = field(default=0, metadata={"min": 0})  # monitor splits: separate the first N items (0: all of them; a few items are a noisy estimate)


@dataclass
class OptimConfig:
    lr: float = field(default=2e-4, metadata={"gt": 0})  # Adam learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    weight_decay: float = field(default=0.0, metadata={"min": 0})  # Adam weight decay
    grad_clip: float = field(default=5.0, metadata={"min": 0})  # clip the global gradient norm (<= 0: off)
    ema_decay: float = field(default=0.999, metadata={"range": (0, 1)})  # EMA of the weights used for validation and inference
    lr_schedule: str = field(default="none", metadata={"choices": ("none", "plateau", "cosine")})  # none | cosine (to lr_min at train.max_steps: keep max_steps when resuming) | plateau (multiply lr by lr_factor after lr_patience validations without improvement)
    warmup_steps: int = field(default=0, metadata={"min": 0})  # linear lr warm-up over this many optimizer steps (none and cosine schedules)
    lr_min: float = field(default=0.0, metadata={"min": 0})  # cosine: the lr at train.max_steps
    lr_patience: int = field(default=3, metadata={"min": 0})  # plateau: validations without improvement before the lr is reduced
    lr_factor: float = field(default=0.5, metadata={"gt": 0})  # plateau: lr multiplier


@dataclass
class TrainConfig:
    run_dir: str = "runs/default"  # checkpoints, logs and the resolved config go here
    max_steps: int = field(default=500000, metadata={"min": 0})  # optimizer steps
    max_minutes: float = field(default=0.0, metadata={"min": 0})  # also stop once the run has trained this long (wall-clock minutes, validation included, summed over resumes; 0: no limit), validating and saving as at the last step: recipes compared at equal time
    batch_size: int = field(default=6, metadata={"min": 1})  # items per micro-batch per process
    accumulate: int = field(default=2, metadata={"min": 1})  # micro-batches per optimizer step
    seed: int = 0  # seed of everything random
    amp: str = field(default="none", metadata={"choices": ("none", "bf16", "fp16")})  # autocast: none | bf16 | fp16 (fp16 uses a GradScaler)
    ckpt_every: int = field(default=1000, metadata={"min": 1})  # checkpoint every N optimizer steps (and at each epoch end)
    keep_last: int = field(default=3, metadata={"min": 0})  # numbered checkpoints to keep besides last.pt and best.pt
    log_every: int = field(default=50, metadata={"min": 1})  # log training scalars every N steps
    val_every: int = field(default=5000, metadata={"min": 0})  # validate every N steps (0: only at the end)
    val_every_epochs: int = field(default=0, metadata={"min": 0})  # also validate at the end of every N-th epoch (0: off)
    val_batches: int = field(default=20, metadata={"min": 1})  # validation loss batches
    val_sep_items: int = field(default=4, metadata={"min": 0})  # cv items separated with the sampler for SI-SDR
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: str = "auto"  # auto (RUN_DIR/last.pt if present) | never | PATH
    init_from: str = ""  # a new run starts from this checkpoint's weights (EMA if it has them; fine-tuning); ignored when resuming
    init_deepen: bool = False  # init_from names a shallower Conv-TasNet (every size equal but X and R, each at most the configured one): its blocks keep their repeat and dilation, the new ones start as the identity (zero residual and skip convolutions), so the deeper network starts with the same function
    init_widen: bool = False  # init_from names a narrower Conv-TasNet (N, B, H and Sc each a whole multiple of its own, every other size equal; with init_deepen X and R may grow too): channels are copied and the weights that read them split in random fractions, so the wider network starts with the same function
    val_warm_start: str = ""  # validation separates as the model ships: warm-started from this discriminative model (checkpoint or bundled name; with the sampler section's t_start), so best.pt is the best of what users get (empty: none)
    max_nonfinite: int = field(default=5, metadata={"min": 1})  # stop after this many optimizer steps in a row with a non-finite loss (each one is skipped, the weights untouched); non-finite weights are never saved


@dataclass
class Config:
    """What every run has; :func:`config_class` adds the chosen family's sections."""
    model: ModelSettings = field(default_factory=ModelSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A bad configuration: unknown key, wrong type, bad value."""


_CLASSES: dict[str, type] = {}


def config_class(kind: str) -> type:
    """The Config dataclass of family ``kind``: its own sections, then data, optim and train."""
    if kind not in FAMILIES:
        raise ConfigError(f"unknown model.kind {kind!r}; valid: {', '.join(FAMILIES)}")
    family = FAMILIES[kind]
    if _CLASSES.get(kind, (None,))[0] is not family:
        name = f"{family.__name__.removesuffix('Family')}Config"
        cls = make_dataclass(name, [(s, t, field(default_factory=t)) for s, t in family.sections.items()],
                             bases=(Config,))
        cls.__module__ = __name__
        setattr(sys.modules[__name__], name, cls)  # picklable by name
        _CLASSES[kind] = (family, cls)
    return _CLASSES[kind][1]


def _section_types(cls: type) -> dict[str, type]:
    return {f.name: f.default_factory for f in fields(cls)}


def _owner(section: str) -> list[str]:
    return [k for k, fam in FAMILIES.items() if section in fam.sections]


def _check_keys(d: dict, source: str, cls: type, kind: str) -> None:
    sections = _section_types(cls)
    for section, values in d.items():
        if section == "base":
            continue
        if section not in sections:
            owners = _owner(section)
            if owners:
                raise ConfigError(f"{source}: section {section!r} belongs to model.kind {' / '.join(owners)}, "
                                  f"not {kind}; sections of {kind}: {', '.join(sections)}")
            raise ConfigError(f"{source}: unknown section {section!r}; valid: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        valid = [f.name for f in fields(sections[section])]
        for key in values:
            if key not in valid:
                raise ConfigError(f"{source}: unknown key {section}.{key} for model.kind {kind}; valid keys "
                                  f"of {section}: {', '.join(valid)}")


def _read_yaml(path: Path, seen: tuple = ()) -> list[tuple[str, dict]]:
    """(source, sections) of the YAML file and, first, of the chain of ``base`` files it names
    (relative to it; one name, or a list applied in order, later ones overriding earlier ones)."""
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
    bases = d.get("base") or []
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: 'base' must be a config file name or a list of them, got {d['base']!r}")
    chain = []
    for base in bases:  # in order: a later base overrides an earlier one
        chain += _read_yaml(path.parent / base, seen + (path.resolve(),))
    return chain + [(str(path), {k: v for k, v in d.items() if k != "base"})]


def _kind_of(layers: list[dict]) -> str:
    kind = "diffsep"
    for d in layers:
        model = d.get("model")
        if isinstance(model, dict) and model.get("kind") is not None:
            kind = model["kind"]
    return kind


def _build(cls: type, layers: list[dict]):
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), *layers))
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        key = getattr(e, "full_key", None)
        raise ConfigError(f"bad value{f' for {key}' if key else ''}: {msg}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML (with its base chain) <- ``section.key=value`` overrides -> the Config of
    the family that ``model.kind`` names."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    layers = _read_yaml(Path(path)) if path else []
    dotlist = []
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotlist.append(item)
    try:
        layers.append(("command line", OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad override: {e}") from None
    kind = _kind_of([d for _, d in layers])
    cls = config_class(kind)
    for source, d in layers:
        _check_keys(d, source, cls, kind)
    return check_values(_build(cls, [d for _, d in layers]))


def _field_problem(value, meta) -> str | None:
    if "choices" in meta and value not in meta["choices"]:
        return f"one of {', '.join(map(str, meta['choices']))}"
    if "min" in meta and not value >= meta["min"]:
        return f">= {meta['min']}"
    if "gt" in meta and not value > meta["gt"]:
        return f"> {meta['gt']}"
    if "range" in meta and not meta["range"][0] <= value <= meta["range"][1]:
        return f"in [{meta['range'][0]}, {meta['range'][1]}]"
    return None


def check_values(cfg: Config) -> Config:
    """Refuse values no run can use (a zero batch, a negative count, p_T outside [0, 1] ...),
    naming the key, instead of failing later with an arithmetic error: each field's range from
    its metadata, then what must hold between fields (the family's :meth:`check` and the data
    options')."""
    for section in fields(cfg):
        values = getattr(cfg, section.name)
        for f in fields(values):
            problem = _field_problem(getattr(values, f.name), f.metadata)
            if problem:
                raise ConfigError(f"{section.name}.{f.name} must be {problem}, got {getattr(values, f.name)!r}")
    try:
        FAMILIES[cfg.model.kind].check(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    b = cfg.optim.betas
    if len(b) != 2 or not all(0 <= x < 1 for x in b):
        raise ConfigError(f"optim.betas must be two values [beta1, beta2], each in [0, 1), got {list(b)}")
    g = cfg.data.gain_range
    if g and (len(g) != 2 or not 0 <= g[0] <= g[1]):
        raise ConfigError(f"data.gain_range must be [lo, hi] with 0 <= lo <= hi, got {list(g)}")
    if cfg.data.channel_swap and cfg.model.audio_channels != 2:
        raise ConfigError(f"data.channel_swap needs stereo stems, model.audio_channels is {cfg.model.audio_channels}")
    bad = {k: w for k, w in cfg.data.dm_speaker_weights.items() if not w >= 0}
    if bad:
        raise ConfigError(f"data.dm_speaker_weights must be >= 0, got {bad}")
    try:  # stem names become file and output folder names: plain names only (a checkpoint is untrusted)
        check_plain_names(cfg.data.stems, "data.stems")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if LAYOUTS[cfg.data.kind].named_sources and len(cfg.data.stems) != cfg.model.n_src:
        raise ConfigError(f"data.stems names {len(cfg.data.stems)} sources {list(cfg.data.stems)} but "
                          f"model.n_src is {cfg.model.n_src}")
    return cfg


def config_from_dict(d: dict) -> Config:
    """Rebuild a Config from ``to_dict`` output (e.g. a checkpoint's), checking keys and types.
    Checkpoints written when every family's sections were in every config hold sections and
    model keys of other families: those (and only those) are dropped."""
    kind = _kind_of([d])
    cls = config_class(kind)
    own = _section_types(cls)
    kept = {}
    for section, values in d.items():
        if section not in own and _owner(section):
            continue
        if section in own and isinstance(values, dict):
            valid = {f.name for f in fields(own[section])}
            elsewhere = {f.name for fam in FAMILIES.values() if section in fam.sections
                         for f in fields(fam.sections[section])}
            values = {k: v for k, v in values.items() if k in valid or k not in elsewhere}
        kept[section] = values
    _check_keys(kept, "config", cls, kind)
    return check_values(_build(cls, [kept]))


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (what goes into checkpoints and the run directory)."""
    return asdict(cfg)


def to_yaml(cfg: Config) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
