"""The one place that turns a :class:`~diffsep.config.Config` into objects: the model family,
its network, the datasets, the optimizer, the EMA, the lr schedule and the gradient scaler.
Defaults live in :mod:`diffsep.config` only.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .config import Config, ConfigError
from .families import FAMILIES, Family

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_family(cfg: Config) -> Family:
    kind = cfg.model.kind
    if kind not in FAMILIES:
        raise ConfigError(f"unknown model.kind {kind!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[kind](cfg)


def build_model(cfg: Config) -> nn.Module:
    """The untrained network of ``cfg`` (seed torch first for repeatable weights)."""
    return build_family(cfg).build_model()


def config_of(model: nn.Module) -> dict:
    """Config sections that rebuild a bare network of any family (for checkpoints)."""
    for family in FAMILIES.values():
        if isinstance(model, family.model_class):
            return family.config_of(model)
    raise TypeError(f"{type(model).__name__} belongs to no model family; known: {', '.join(FAMILIES)}")


def item_options(cfg: Config) -> dict:
    """Keyword arguments of :func:`diffsep.data.build_items` from the config."""
    from .data.layouts import MUSDB_VALID_TRACKS

    d = cfg.data
    return dict(n_src=cfg.model.n_src, sample_rate=d.sample_rate, mode=d.mode, mixture=d.mixture,
                stems=tuple(d.stems), valid_tracks=tuple(d.valid_tracks) or MUSDB_VALID_TRACKS)


def build_datasets(cfg: Config):
    """(training set with random crops, validation set cropped at the start)."""
    from .data import SeparationDataset, build_items

    d = cfg.data
    if not d.root:
        raise ConfigError("data.root is not set: give the dataset's root folder, e.g. data.root=PATH")
    kw = item_options(cfg)
    seg = int(d.segment_seconds * d.sample_rate) if d.segment_seconds > 0 else None
    music_options = d.remix or d.shift_seconds or d.channel_swap or d.sign_flip or d.gain_range
    if music_options and d.kind != "musdb":
        raise ConfigError("data.remix, shift_seconds, channel_swap, sign_flip and gain_range are "
                          "augmentations of the musdb layout")
    if (d.speed_perturb or d.eq_db or d.dm_speaker_weights) and not d.dynamic_mixing:
        raise ConfigError("data.speed_perturb, eq_db and dm_speaker_weights are augmentations of "
                          "dynamic mixing: set data.dynamic_mixing=true")
    items = build_items(d.kind, d.root, d.train_split, **kw)
    if d.kind == "musdb":
        from .data.music import MusicTrainSet

        if seg is None:
            raise ConfigError("musdb training needs data.segment_seconds > 0")
        train = MusicTrainSet(items, d.sample_rate, seg, cfg.model.audio_channels, seed=cfg.train.seed,
                              remix=d.remix, shift_seconds=d.shift_seconds, channel_swap=d.channel_swap,
                              sign_flip=d.sign_flip, gain_range=d.gain_range)
    elif d.dynamic_mixing:
        from .data.dynamic import DynamicMixDataset

        if d.kind == "vbdemand" or seg is None:
            raise ConfigError("data.dynamic_mixing needs a separation layout (not vbdemand) and "
                              "data.segment_seconds > 0")
        if any(f <= 0 for f in d.speed_perturb):
            raise ConfigError(f"data.speed_perturb factors must be > 0, got {d.speed_perturb}")
        train = DynamicMixDataset(items, d.kind, cfg.model.n_src, d.sample_rate, seg, seed=cfg.train.seed,
                                  level_db=d.dm_level_db, speeds=d.speed_perturb,
                                  speaker_weights=d.dm_speaker_weights, eq_db=d.eq_db)
    else:
        train = SeparationDataset(items, d.sample_rate, segment=seg, random_crop=True, seed=cfg.train.seed,
                                  min_samples=int(d.min_seconds * d.sample_rate), pad_to_segment=True,
                                  channels=cfg.model.audio_channels)
    valid = SeparationDataset(build_items(d.kind, d.root, d.valid_split, **kw), d.sample_rate,
                              segment=seg, random_crop=False, seed=cfg.train.seed,
                              channels=cfg.model.audio_channels)
    return train, valid


def build_monitor_sets(cfg: Config) -> dict:
    """``{split: dataset}`` for ``data.monitor_splits``: fixed crops of ``data.monitor_seconds``
    from the start of each mixture, read from ``data.monitor_root`` (default ``data.root``)."""
    from .data import SeparationDataset, build_items

    d = cfg.data
    kw = item_options(cfg)
    seg = int(d.monitor_seconds * d.sample_rate) if d.monitor_seconds > 0 else None
    return {split: SeparationDataset(build_items(d.kind, d.monitor_root or d.root, split, **kw), d.sample_rate,
                                     segment=seg, random_crop=False, seed=cfg.train.seed,
                                     channels=cfg.model.audio_channels)
            for split in d.monitor_splits}


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def build_ema(cfg: Config, model: nn.Module) -> AveragedModel:
    """Exponential moving average of the weights: the first update copies, then
    ema ← decay · ema + (1 − decay) · weights after every optimizer step."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay))


def build_scheduler(cfg: Config, opt: torch.optim.Optimizer):
    """None (constant lr, no warm-up) or an :class:`~diffsep.lr_schedule.LRSchedule`."""
    from .lr_schedule import SCHEDULES, LRSchedule

    o = cfg.optim
    if o.lr_schedule not in SCHEDULES:
        raise ConfigError(f"unknown optim.lr_schedule {o.lr_schedule!r}; valid: {', '.join(SCHEDULES)}")
    if o.lr_schedule == "none" and not o.warmup_steps:
        return None
    try:
        return LRSchedule(opt, o.lr_schedule, lr=o.lr, warmup_steps=o.warmup_steps,
                          total_steps=cfg.train.max_steps, lr_min=o.lr_min, patience=o.lr_patience,
                          factor=o.lr_factor)
    except ValueError as e:
        raise ConfigError(f"optim: {e}") from None


def amp_dtype(cfg: Config) -> torch.dtype | None:
    if cfg.train.amp not in AMP_DTYPES:
        raise ConfigError(f"unknown train.amp {cfg.train.amp!r}; valid: {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[cfg.train.amp]


def build_scaler(cfg: Config, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (disabled otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(cfg) == torch.float16)
