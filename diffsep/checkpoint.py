"""Checkpoints: safe loading, our self-describing format, and the reference DiffSep converter.

Nothing here unpickles arbitrary code: every load goes through ``torch.load(weights_only=True)``.
A reference (PyTorch Lightning) checkpoint stores its hydra config as a pickled omegaconf
DictConfig; exactly the omegaconf container and node classes are allowed for it, anything else
is refused with a clear error.

Our format is a plain dict ``{"format": "diffsep", "model": state_dict, "ema": state_dict | None,
"optimizer": ..., "step": int, "config": {"model": ScoreModel kwargs, ...}}``: the checkpoint
alone rebuilds its model.
"""
from __future__ import annotations

import collections
import os
import pickle
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .score_model import ScoreModel

FORMAT = "diffsep"
REFERENCE_PREFIX = "score_model."
BACKBONE_PREFIX = "score_model.backbone."


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely or is not in a known format."""


def _omegaconf_globals() -> list:
    from omegaconf import DictConfig, ListConfig, base, nodes

    names = ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode",
             "PathNode", "NoneNode")
    return [DictConfig, ListConfig, base.Metadata, base.ContainerMetadata, typing.Any,
            collections.defaultdict, dict, list, tuple, set, int, float, str, bool,
            *(getattr(nodes, n) for n in names if hasattr(nodes, n))]


def safe_load(path_or_obj, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True, allowing the omegaconf classes a reference
    checkpoint needs. Raises CheckpointError naming the file and the problem."""
    if isinstance(path_or_obj, dict):
        return path_or_obj
    path = Path(path_or_obj)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_omegaconf_globals()):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        unsafe = next((ln for ln in lines if "global" in ln.lower()), None)
        if unsafe is None:
            reason = next((ln for ln in lines if "operand" in ln or "load key" in ln),
                          type(e).__name__)
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or another "
                                  f"format: {reason})") from None
        raise CheckpointError(f"{path}: refused to load, it holds objects that are not plain data "
                              f"or an allowed config type ({unsafe})") from None
    except Exception as e:  # corrupt zip, truncated file, not a torch file ...
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def atomic_save(obj: Any, path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- our format ----------------------------------------------------------------------------------
def save_checkpoint(path, model: torch.nn.Module, *, ema: dict | None = None, optimizer: dict | None = None,
                    step: int = 0, config: dict | None = None, **extra) -> None:
    """Write a self-describing checkpoint atomically. ``config["model"]`` (and for Conv-TasNet
    ``config["convtasnet"]``) default to the model's constructor arguments."""
    config = dict(config or {})
    kwargs = dict(model.init_kwargs)
    if type(model).__name__ == "ConvTasNet":
        config.setdefault("model", {"kind": "convtasnet", "n_src": kwargs.pop("n_src")})
        config.setdefault("convtasnet", kwargs)
    config.setdefault("model", {"kind": "diffsep", **kwargs})
    atomic_save({"format": FORMAT, "model": model.state_dict(), "ema": ema, "optimizer": optimizer,
                 "step": int(step), "config": config, **extra}, path)


def is_reference(ckpt: dict) -> bool:
    """True for a reference DiffSep (Lightning) checkpoint."""
    sd = ckpt.get("state_dict")
    return isinstance(sd, dict) and any(str(k).startswith(BACKBONE_PREFIX) for k in sd)


def load_model(path_or_ckpt, ema: bool = True, map_location="cpu") -> torch.nn.Module:
    """Rebuild the model (ScoreModel or ConvTasNet) of one of our checkpoints, or the ScoreModel of
    a reference one (detected).
    ``ema`` selects the EMA weights where the checkpoint has them. Returns the model in eval mode."""
    ckpt = safe_load(path_or_ckpt, map_location)
    if is_reference(ckpt):
        return from_reference(ckpt, ema=ema)
    return _rebuild(ckpt, ema, path_or_ckpt if not isinstance(path_or_ckpt, dict) else "checkpoint")


def _rebuild(ckpt: dict, ema: bool, where) -> torch.nn.Module:
    """The model of one of our checkpoints, in eval mode (EMA weights with ``ema``)."""
    if ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{where}: neither a diffsep nor a reference DiffSep checkpoint "
                              f"(top-level keys: {sorted(map(str, ckpt))[:8]})")
    from .models import build_model

    try:
        model = build_model(ckpt["config"]["model"], ckpt["config"].get("convtasnet"))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: cannot rebuild the model from its config ({e})") from None
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]
    _load_weights(model, weights, where)
    return model.eval()


def _load_weights(model: torch.nn.Module, weights: dict, where) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    bad = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"{where}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shape {bad[:3]})")
    model.load_state_dict(weights)


# -- the reference DiffSep checkpoint ---------------------------------------------------------------
def read_reference_config(ckpt: dict) -> dict:
    """Model and SDE settings of a reference checkpoint, from its own hydra config.

    Returns {"model": ScoreModel kwargs, "sde": DiffSepSDE kwargs (without n_src),
    "sampler": dict, "fs": int | None}.
    """
    from omegaconf import DictConfig, OmegaConf

    cfg = ckpt.get("hyper_parameters", {}).get("config")
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise CheckpointError("reference checkpoint has no readable hyper_parameters['config']['model']")
    m = cfg["model"]
    sm = m.get("score_model", {})
    stft = dict(sm.get("stft_args", {}))
    if stft.get("win_length", stft.get("n_fft", 510)) != stft.get("n_fft", 510):
        raise CheckpointError(f"reference STFT with win_length != n_fft is not supported: {stft}")
    if not stft.get("center", True) or stft.get("pad_mode", "constant") != "constant":
        raise CheckpointError(f"reference STFT must be centred with zero padding, got {stft}")
    bb = {k: v for k, v in sm.get("backbone_args", {}).items() if not k.startswith("_")}
    model = dict(n_src=int(sm.get("num_sources", m.get("n_speakers", 2))),
                 n_fft=int(stft.get("n_fft", 510)), hop_length=int(stft.get("hop_length", 128)),
                 spec_factor=float(sm.get("spec_factor", 3.0)),
                 spec_abs_exponent=float(sm.get("spec_abs_exponent", 0.5)),
                 transform=str(sm.get("transform", "exponent")))
    for key in ("nf", "num_res_blocks", "fourier_scale", "init_scale", "dropout"):
        if key in bb:
            model[key] = bb[key]
    for key in ("ch_mult", "attn_resolutions"):
        if key in bb:
            model[key] = tuple(bb[key])
    expected = dict(resblock_type="biggan", progressive="output_skip", progressive_input="input_skip",
                    progressive_combine="sum", embedding_type="fourier", centered=False,
                    scale_by_sigma=True, conditional=True, fir=True, fir_kernel=[1, 3, 3, 1])
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    odd = {k: bb[k] for k in expected if k in bb and as_list(bb[k]) != expected[k]}
    if odd:
        raise CheckpointError(f"reference backbone settings not supported: {odd}")
    s = m.get("sde", {})
    sde = dict(gamma=float(s.get("d_lambda", 2.0)), sigma_min=float(s.get("sigma_min", 0.05)),
               sigma_max=float(s.get("sigma_max", 0.5)))
    return {"model": model, "sde": sde, "sampler": dict(m.get("sampler", {})),
            "t_eps": float(m.get("t_eps", 0.03)), "fs": m.get("fs")}


def reference_weights(ckpt: dict, ema: bool = True) -> dict:
    """Backbone weights of a reference checkpoint, keys without the ``score_model.backbone.``
    prefix. With ``ema`` the EMA ``shadow_params`` are zipped, in order, with the state_dict's
    parameter keys (every key but the STFT window buffers); without it (or without EMA state) the
    state_dict's own tensors are used."""
    sd = ckpt["state_dict"]
    param_keys = [k for k in sd if k.startswith(REFERENCE_PREFIX) and not k.endswith(".window")]
    tensors = dict(sd)
    if ema and ckpt.get("ema") is not None:
        shadow = ckpt["ema"].get("shadow_params")
        if shadow is None or len(shadow) != len(param_keys):
            raise CheckpointError(f"reference EMA state has {0 if shadow is None else len(shadow)} "
                                  f"tensors but the model has {len(param_keys)} parameters")
        for k, v in zip(param_keys, shadow):
            if tuple(v.shape) != tuple(sd[k].shape):
                raise CheckpointError(f"reference EMA tensor for {k} has shape {tuple(v.shape)}, "
                                      f"expected {tuple(sd[k].shape)}: parameter order mismatch")
            tensors[k] = v
    out = {k[len(BACKBONE_PREFIX):]: tensors[k] for k in param_keys if k.startswith(BACKBONE_PREFIX)}
    learned = {k[len(REFERENCE_PREFIX):]: tensors[k] for k in param_keys if not k.startswith(BACKBONE_PREFIX)}
    return {"backbone": out, "learned": learned}


def from_reference(ckpt, ema: bool = True, **overrides) -> ScoreModel:
    """Convert a reference DiffSep checkpoint (a path or its loaded dict) into a ScoreModel.

    Hyper-parameters come from the checkpoint's own config; ``overrides`` replace any of them
    (ScoreModel keyword arguments). ``ema=True`` (default) uses the EMA weights, as the reference
    does at inference. The returned model is in eval mode on CPU.
    """
    where = ckpt if not isinstance(ckpt, dict) else "reference checkpoint"
    ckpt = safe_load(ckpt)
    if not is_reference(ckpt):
        raise CheckpointError(f"{where}: not a reference DiffSep checkpoint "
                              f"(no '{BACKBONE_PREFIX}*' weights in state_dict)")
    kwargs = {**read_reference_config(ckpt)["model"], **overrides}
    w = reference_weights(ckpt, ema)
    for name, key in (("spec_factor", "spec_factor"), ("spec_abs_exponent", "spec_abs_exponent")):
        if key in w["learned"] and name not in overrides:  # spec_trans_learnable checkpoints
            kwargs[name] = abs(float(w["learned"][key]))
    out_w = w["backbone"].get("output_layer.weight")
    if out_w is not None and out_w.shape[0] != 2 * kwargs["n_src"]:
        raise CheckpointError(f"{where}: config says {kwargs['n_src']} sources but the output layer "
                              f"has {out_w.shape[0]} channels")
    model = ScoreModel(**kwargs)
    _load_weights(model.backbone, w["backbone"], where)
    return model.eval()


# -- inference ---------------------------------------------------------------------------------------
@dataclass
class InferenceModel:
    """What inference needs from a checkpoint: the network (eval mode, CPU) and its settings.

    kind: "diffsep" | "convtasnet"; sde: DiffSepSDE keyword arguments (n_src excluded); sampler: the sampler
    settings the model was validated with; sample_rate: the rate it was trained at.
    """
    model: torch.nn.Module
    kind: str
    n_src: int
    sample_rate: int
    sde: dict = field(default_factory=dict)
    sampler: dict = field(default_factory=dict)


def load_inference(path_or_ckpt, ema: bool = True) -> InferenceModel:
    """Read one of our checkpoints or a reference DiffSep one (detected) for inference."""
    where = path_or_ckpt if not isinstance(path_or_ckpt, dict) else "checkpoint"
    ckpt = safe_load(path_or_ckpt)
    if is_reference(ckpt):
        ref = read_reference_config(ckpt)
        s = ref["sampler"]
        sampler = {k: v for k, v in (("steps", s.get("N")), ("snr", s.get("snr")),
                                     ("corrector_steps", s.get("corrector_steps")),
                                     ("t_eps", ref.get("t_eps"))) if v is not None}
        model = from_reference(ckpt, ema=ema)
        return InferenceModel(model, "diffsep", model.n_src, int(ref["fs"] or 8000), ref["sde"],
                              sampler)
    model = _rebuild(ckpt, ema, where)
    cfg = ckpt["config"]
    return InferenceModel(model, cfg["model"].get("kind", "diffsep"), model.n_src,
                          int((cfg.get("data") or {}).get("sample_rate", 8000)),
                          dict(cfg.get("sde") or {}), dict(cfg.get("sampler") or {}))
