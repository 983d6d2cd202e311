"""Config to objects: the model family, its network and the datasets. (The training objects, the
optimizer, EMA, lr schedule and gradient scaler, are built in :mod:`diffsep.training.optimization`.)
Defaults live in the settings dataclasses only.
"""
from __future__ import annotations

from torch import nn

from ..families import FAMILIES, Family
from .settings import Config, ConfigError


def build_family(cfg: Config) -> Family:
    kind = cfg.model.kind
    if kind not in FAMILIES:
        raise ConfigError(f"unknown model.kind {kind!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[kind](cfg)


def build_model(cfg: Config) -> nn.Module:
    """The untrained network of ``cfg`` (seed torch first for repeatable weights)."""
    return build_family(cfg).build_model()


def item_options(cfg: Config) -> dict:
    """Keyword arguments of :func:`diffsep.data.build_items` from the config."""
    from ..data.layouts import MUSDB_VALID_TRACKS

    d = cfg.data
    return dict(n_src=cfg.model.n_src, sample_rate=d.sample_rate, mode=d.mode, mixture=d.mixture,
                stems=tuple(d.stems), valid_tracks=tuple(d.valid_tracks) or MUSDB_VALID_TRACKS)


def build_datasets(cfg: Config):
    """(training set with random crops, validation set cropped at the start)."""
    from ..data import SeparationDataset, build_items
    from ..data.layouts import LAYOUTS

    d = cfg.data
    if not d.root:
        raise ConfigError("data.root is not set: give the dataset's root folder, e.g. data.root=PATH")
    layout = LAYOUTS[d.kind]
    kw = item_options(cfg)
    seg = int(d.segment_seconds * d.sample_rate) if d.segment_seconds > 0 else None
    music_options = d.remix or d.shift_seconds or d.channel_swap or d.sign_flip or d.gain_range
    if music_options and not layout.tracks:
        raise ConfigError("data.remix, shift_seconds, channel_swap, sign_flip and gain_range are "
                          f"augmentations of music tracks (musdb layout), not of {d.kind}")
    voice = d.pitch_semitones or d.vtlp_alpha or d.reverb_prob or d.codec_prob
    if (d.speed_perturb or d.eq_db or d.dm_speaker_weights or voice) and not d.dynamic_mixing:
        raise ConfigError("data.speed_perturb, eq_db, pitch_semitones, vtlp_alpha, reverb_prob, codec_prob and "
                          "dm_speaker_weights are augmentations of dynamic mixing: set data.dynamic_mixing=true")
    items = build_items(d.kind, d.root, d.train_split, **kw)
    if layout.tracks:
        from ..data.music import MusicTrainSet

        if seg is None:
            raise ConfigError("musdb training needs data.segment_seconds > 0")
        train = MusicTrainSet(items, d.sample_rate, seg, cfg.model.audio_channels, seed=cfg.train.seed,
                              remix=d.remix, shift_seconds=d.shift_seconds, channel_swap=d.channel_swap,
                              sign_flip=d.sign_flip, gain_range=d.gain_range)
    elif d.dynamic_mixing:
        from ..data.dynamic import DynamicMixDataset

        if not layout.dynamic_mixing or seg is None:
            raise ConfigError(f"data.dynamic_mixing needs a layout of separation mixtures (not {d.kind}) "
                              "and data.segment_seconds > 0")
        if any(f <= 0 for f in d.speed_perturb):
            raise ConfigError(f"data.speed_perturb factors must be > 0, got {d.speed_perturb}")
        if len(d.reverb_rt60) != 2 or not 0 < d.reverb_rt60[0] <= d.reverb_rt60[1]:
            raise ConfigError(f"data.reverb_rt60 must be [lo, hi] seconds with 0 < lo <= hi, got {d.reverb_rt60}")
        train = DynamicMixDataset(items, d.kind, cfg.model.n_src, d.sample_rate, seg, seed=cfg.train.seed,
                                  level_db=d.dm_level_db, speeds=d.speed_perturb,
                                  speaker_weights=d.dm_speaker_weights, eq_db=d.eq_db,
                                  pitch_semitones=d.pitch_semitones, vtlp_alpha=d.vtlp_alpha,
                                  reverb_prob=d.reverb_prob, reverb_rt60=d.reverb_rt60, codec_prob=d.codec_prob)
    else:
        train = SeparationDataset(items, d.sample_rate, segment=seg, random_crop=True, seed=cfg.train.seed,
                                  min_samples=int(d.min_seconds * d.sample_rate), pad_to_segment=True,
                                  channels=cfg.model.audio_channels)
    valid = SeparationDataset(build_items(d.kind, d.root, d.valid_split, **kw), d.sample_rate,
                              segment=seg, random_crop=False, seed=cfg.train.seed,
                              channels=cfg.model.audio_channels)
    return train, valid


def build_monitor_sets(cfg: Config) -> dict:
    """``{name: dataset}`` for ``data.monitor_splits`` (read from ``data.monitor_root``, default
    ``data.root``) and ``data.monitor_sets`` ({name: root}, each root's test split): fixed crops of
    ``data.monitor_seconds`` from the start of each mixture."""
    from ..data import SeparationDataset, build_items
    from ..data.layouts import LAYOUTS

    d = cfg.data
    kw = item_options(cfg)
    seg = int(d.monitor_seconds * d.sample_rate) if d.monitor_seconds > 0 else None
    clash = sorted(set(d.monitor_sets) & set(d.monitor_splits))
    if clash:
        raise ConfigError(f"data.monitor_sets names {', '.join(clash)} are also data.monitor_splits: "
                          "name them apart (they are logged as val_<name>_si_sdri)")
    sources = [(split, d.monitor_root or d.root, split) for split in d.monitor_splits]
    test = d.test_split or LAYOUTS[d.kind].splits["test"]
    sources += [(name, root, test) for name, root in d.monitor_sets.items()]
    return {name: SeparationDataset(build_items(d.kind, root, split, **kw), d.sample_rate,
                                    segment=seg, random_crop=False, seed=cfg.train.seed,
                                    channels=cfg.model.audio_channels)
            for name, root, split in sources}
