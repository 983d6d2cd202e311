"""From a checkpoint to separated audio: load any supported checkpoint as (Config, network), make
its separator, and separate one signal given at any sample rate, in chunks.

    separator = load_separator("ckpt.pt", device="cuda", sampler={"steps": 30})
    est = separate_signal(separator, mix, 44100, chunk_seconds=10, overlap_seconds=1)  # (K, N)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from ..config.build import build_family, build_model
from ..storage.bounded_build import build_for_weights
from ..storage.checkpoint import CheckpointError, check_state_dict, is_ours, load_weights, safe_load
from ..config.settings import Config, ConfigError, config_from_dict
from ..nets.inference_path import FAST, set_inference_path
from .reference import convert_reference, is_reference
from ..families import FAMILIES
from .separator import Separator, separate
from .shift_averaging import shift_averaged, shift_delays


@dataclass
class Trained:
    """A trained network (eval mode, CPU) with the configuration it was trained with."""
    config: Config
    model: nn.Module


def load_trained(path_or_ckpt, ema: bool = True) -> Trained:
    """One of our checkpoints or a reference DiffSep one: read once, its format detected once (a
    reference checkpoint is converted to ours), then the one build path (config, family, network,
    weights). ``ema`` selects the EMA weights where the checkpoint has them. Raises
    CheckpointError naming the file."""
    where = path_or_ckpt if not isinstance(path_or_ckpt, dict) else "checkpoint"
    ckpt = safe_load(path_or_ckpt)
    if is_reference(ckpt):
        try:
            ckpt = convert_reference(ckpt, ema, where)
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # its config or weights are not as written
            raise CheckpointError(f"{where}: a reference DiffSep checkpoint that cannot be read "
                                  f"({type(e).__name__}: {e})") from None
    elif not is_ours(ckpt):
        raise CheckpointError(f"{where}: neither a diffsep nor a reference DiffSep checkpoint "
                              f"(top-level keys: {sorted(map(str, ckpt))[:8]})")
    weights = check_state_dict(ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"], where)
    try:
        if not isinstance(ckpt.get("config"), dict):
            raise ConfigError(f"the config is a {type(ckpt.get('config')).__name__}, not a mapping of sections")
        cfg = config_from_dict(ckpt["config"])  # plausible values, plain stem names (config/settings.py)
        family = build_family(cfg)
        # the config says how big the network is, the weights how big it may be: no more is allocated
        model = build_for_weights(family.build_model, weights, where)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: cannot rebuild the model from its config ({e})") from None
    load_weights(model, family.upgrade_weights(model, weights), where)
    return Trained(cfg, model.eval())


def from_reference(path_or_ckpt, ema: bool = True) -> nn.Module:
    """The converted model of a reference DiffSep checkpoint (and nothing else), eval mode, CPU."""
    where = path_or_ckpt if not isinstance(path_or_ckpt, dict) else "reference checkpoint"
    ckpt = safe_load(path_or_ckpt)
    if not is_reference(ckpt):
        raise CheckpointError(f"{where}: not a reference DiffSep checkpoint (no 'score_model.backbone.*' "
                              f"weights in state_dict)")
    return load_trained(ckpt, ema).model


def load_model(path_or_ckpt, ema: bool = True) -> nn.Module:
    """The network of a checkpoint (see :func:`load_trained`), in eval mode on CPU."""
    return load_trained(path_or_ckpt, ema).model


def make_separator(trained: Trained, *, device="cpu", sampler: dict | None = None,
                   rescale: str = "denormalize", seed: int = 0,
                   warm_start: Trained | None = None, inference_path: str = FAST, shifts: int = 1) -> Separator:
    """The separator of a trained network on ``device``; ``sampler`` overrides the sampler
    settings stored with the model (fields of :class:`diffsep.samplers.SamplerSettings`).

    ``warm_start``: a discriminative model (Conv-TasNet) whose estimate the diffusion starts from
    (sampler init "model", from ``t_start``): the separator runs it, then refines its estimate.

    ``inference_path``: "fast" (default: NCSN++ channels-last, equal to the reference layout
    within float32 rounding) or "reference" (exactly the training computation, what the reference
    fixture pins), set on the networks in place (:mod:`diffsep.nets.inference_path`).

    ``shifts``: average the estimate over that many delays of the input spread over the network's
    frame hop (:mod:`diffsep.inference.shift_averaging`; S times the network evaluations)."""
    set_inference_path(trained.model, inference_path)
    if warm_start is not None:
        set_inference_path(warm_start.model, inference_path)
        check_warm_start(trained, warm_start)
    cfg = with_sampler(trained.config, {**({"init": "model"} if warm_start is not None else {}),
                                        **(sampler or {})})
    family = build_family(cfg)
    model = trained.model.to(device).eval()
    estimate, nfe, info = partial(family.estimate, model), family.nfe, family.info()
    if warm_start is not None:
        first, first_model = build_family(warm_start.config), warm_start.model.to(device).eval()
        estimate = partial(_warm_started, family, model, first, first_model)
        nfe += first.nfe
        info = {**info, "warm_start": first.info()}
    elif family.warm_start and getattr(cfg, family.sampler_section).init == "model":
        raise ValueError("sampler init 'model' needs a warm-start model")
    if shifts != 1:
        estimate = shift_averaged(estimate, shift_delays(shifts, family.frame_hop), cfg.loss.fixed_order)
        nfe, info = nfe * shifts, {**info, "shifts": shifts}
    return Separator(estimate, cfg.model.n_src, cfg.data.sample_rate, channels=cfg.model.audio_channels,
                     device=torch.device(device), nfe=nfe, rescale=rescale,
                     generator=torch.Generator(device=device).manual_seed(seed),
                     fixed_order=cfg.loss.fixed_order, info=info,
                     stems=named_sources(cfg), dataset=dataset_settings(cfg))


def check_warm_start(trained: Trained, partner: Trained, where: str = "the warm-start partner") -> None:
    """Raise ValueError, one sentence naming ``where``, unless ``partner``'s estimate is one that
    ``trained`` can start from: a model that can start from an estimate, and a partner with as
    many sources, at the same sample rate, with as many audio channels."""
    m, p = trained.config, partner.config
    if not FAMILIES[m.model.kind].warm_start:
        raise ValueError(f"a warm start needs a model that can start from an estimate; a {m.model.kind} "
                         f"model cannot ({where} was given)")
    for what, mine, theirs in (("number of sources", m.model.n_src, p.model.n_src),
                               ("sample rate (Hz)", m.data.sample_rate, p.data.sample_rate),
                               ("number of audio channels", m.model.audio_channels, p.model.audio_channels)):
        if mine != theirs:
            raise ValueError(f"{where}: its {what} is {theirs}, the model's is {mine}; a warm start "
                             f"needs the same {what.split(' (')[0]}")


def dataset_settings(config: Config) -> dict:
    """The data settings a model was trained with that say how to score it: the layout, its
    options and the test split (not where the data lay)."""
    d = config.data
    return {"kind": d.kind, "test_split": d.test_split, "mode": d.mode, "mixture": d.mixture,
            "stems": list(d.stems), "valid_tracks": list(d.valid_tracks)}


def named_sources(config: Config) -> tuple[str, ...]:
    """The names of a model's sources when its data layout names them (music stems), else ()."""
    from ..data.layouts import make_layout

    layout = make_layout(config.data.kind, config.model.n_src, config.data.sample_rate, stems=config.data.stems)
    return layout.source_names() if layout.named_sources else ()


def with_sampler(config: Config, overrides: dict) -> Config:
    """``config`` with sampler settings replaced (fields of the family's sampler section, e.g.
    :class:`diffsep.samplers.SamplerSettings`). A family without a sampler takes none. Raises
    ValueError for settings the family refuses together (a warm start's t_start outside
    (t_eps, T])."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    section = FAMILIES[config.model.kind].sampler_section
    if section is None:
        if overrides:
            raise ValueError(f"a {config.model.kind} model has no sampler; sampler options "
                             f"{sorted(overrides)} do not apply")
        return config
    updated = dataclasses.replace(config, **{section: getattr(config, section).updated(**overrides)})
    loss = getattr(updated, "loss", None)
    if overrides and getattr(loss, "unroll_steps", 0):  # training's tie to the tuned sampler: not for separating
        updated = dataclasses.replace(updated, loss=dataclasses.replace(loss, unroll_steps=0))
    FAMILIES[config.model.kind].check(updated)  # values that are wrong together (t_start beyond T ...)
    return updated


def _warm_started(family, model, first, first_model, mix, generator=None):
    """DiffSep refining a discriminative estimate. mix (B, C, N) normalised -> (B, K, C, N)."""
    return family.estimate(model, mix, generator, init=first.estimate(first_model, mix, generator))


def load_separator(model: str, *, ema: bool = True, device=None, warm_start: str | bool | None = None,
                   sampler: dict | None = None, shifts: int | None = None, **kwargs) -> Separator:
    """:func:`make_separator` for a checkpoint path, a bundled model's name or
    ``hf://owner/repo[/file]`` (and a warm-start partner's); the device defaults to CUDA when
    available. A bundled model comes with the sampler settings and warm-start partner it was
    measured with (its model card); ``sampler``, ``warm_start`` and ``shifts`` override them
    (``warm_start=False``: none; ``shifts`` defaults to the bundled entry's, else 1)."""
    from .hub import locate

    location = locate(model)
    if location.bundled is not None:
        entry = location.bundled
        sampler = {**entry.sampler, **(sampler or {})}
        warm_start = entry.warm_start if warm_start is None else warm_start
        if not warm_start:  # the entry's t_start belongs to its partner
            sampler.pop("t_start", None)
        shifts = entry.shifts if shifts is None else shifts
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    trained = load_trained(location.path, ema)
    partner = None
    if warm_start:
        partner_location = locate(warm_start)
        partner = load_trained(partner_location.path, ema)
        check_warm_start(trained, partner, f"warm-start partner {partner_location.path}")
    return make_separator(trained, device=device, warm_start=partner, sampler=sampler, shifts=shifts or 1, **kwargs)


# untrained networks of the paper's settings, per family: config sections as a function of nf
RANDOM_PRESETS = {
    "diffsep": lambda nf: {"model": {"kind": "diffsep", "nf": nf, "init_scale": 1.0}},
    "convtasnet": lambda nf: {"model": {"kind": "convtasnet"}},
    "demucs": lambda nf: {"model": {"kind": "demucs", "n_src": 4, "audio_channels": 2},
                          "data": {"sample_rate": 44100}},
}


def random_separator(kind: str = "diffsep", *, nf: int = 64, device="cpu", sampler: dict | None = None,
                     seed: int = 0) -> Separator:
    """An untrained network of the paper's settings (DiffSep of width ``nf``, Conv-TasNet, or
    Demucs: 4 stereo stems at 44.1 kHz) as a separator: speed does not depend on the weights
    (benchmarks)."""
    cfg = config_from_dict(RANDOM_PRESETS[kind](nf))
    torch.manual_seed(seed)
    return make_separator(Trained(cfg, build_model(cfg).eval()), device=device, sampler=sampler)


def chunk_samples(chunk_seconds: float, overlap_seconds: float, sample_rate: int) -> tuple[int, int]:
    """(chunk, overlap) in samples; a chunk of 0 seconds or less means whole inputs (0, 0).
    Raises ValueError unless 0 <= overlap < chunk."""
    if not (np.isfinite(chunk_seconds) and np.isfinite(overlap_seconds)):
        raise ValueError(f"chunk and overlap durations must be finite, got {chunk_seconds:g} s and "
                         f"{overlap_seconds:g} s")
    if chunk_seconds <= 0:
        return 0, 0
    chunk = int(round(chunk_seconds * sample_rate))
    overlap = int(round(overlap_seconds * sample_rate))
    if chunk < 1 or not 0 <= overlap < chunk:
        raise ValueError(f"need 0 <= overlap < chunk, got {overlap_seconds:g} s overlap for "
                         f"{chunk_seconds:g} s chunks")
    return chunk, overlap


class NonFiniteEstimate(RuntimeError):
    """A separation gave NaN or Inf samples (weights out of range, or an input level the network
    overflows on): a failure of that input, never audio to write or score."""


def check_finite(est: np.ndarray, mix: np.ndarray | None = None) -> np.ndarray:
    """``est`` if all its samples are finite; else raise :class:`NonFiniteEstimate` saying how
    many are not (and the input's peak, when ``mix`` is given)."""
    est = np.asarray(est)
    bad = est.size - int(np.isfinite(est).sum())
    if bad:
        peak = f"; input peak {float(np.abs(mix).max()):.3g}" if mix is not None and np.size(mix) else ""
        raise NonFiniteEstimate(f"the separation gave NaN or Inf samples ({bad} of {est.size}{peak}): "
                                f"the model's weights or the input's level are out of range")
    return est


def separate_signal(separator, mix: np.ndarray, rate: int, *, chunk_seconds: float = 10.0,
                    overlap_seconds: float = 1.0, batch_size: int = 1,
                    out_rate: int | None = None, finite: bool = True) -> np.ndarray:
    """Separate one signal given at ``rate`` (numpy in, numpy out: the edge where mono signals
    lose their channel axis): resample to the model's rate, separate in chunks, resample to
    ``out_rate`` (default: ``rate``). mix (N,) -> (K, N') or mix (C, N) -> (K, C, N') float32,
    with N' = round(N · out_rate / rate). Raises :class:`NonFiniteEstimate` when the estimate
    has NaN or Inf samples (``finite=False``: returns it as it is, for scoring as degenerate)."""
    from ..storage.audio import resample

    model_rate, out_rate = separator.sample_rate, out_rate or rate
    x = resample(np.atleast_2d(mix), rate, model_rate)
    chunk, overlap = chunk_samples(chunk_seconds, overlap_seconds, model_rate)
    est, = separate(separator, [torch.from_numpy(x)], chunk=chunk, overlap=overlap, batch_size=batch_size)
    est = est.numpy()  # (K, C, n)
    n_out = int(round(mix.shape[-1] * out_rate / rate))
    est = resample(est.reshape(-1, est.shape[-1]), model_rate, out_rate, length=n_out).reshape(*est.shape[:-1], n_out)
    if finite:
        check_finite(est, mix)
    return est[:, 0] if np.ndim(mix) == 1 else est
