"""Checkpoint files: safe loading, atomic saving and our self-describing format (below training
and inference, which both read and write them; the training state: :mod:`diffsep.training.training_state`).

Nothing here unpickles arbitrary code: every load goes through ``torch.load(weights_only=True)``.
A reference (PyTorch Lightning) checkpoint stores its hydra config as a pickled omegaconf
DictConfig; exactly the omegaconf container and node classes are allowed for it, anything else
is refused with a clear error. (Converting such a checkpoint: :mod:`diffsep.inference.reference`.)

Our format is a plain dict ``{"format": "diffsep", "model": state_dict, "ema": state_dict | None,
"config": Config as a dict, ...}``; a training checkpoint adds the optimizer, scaler, scheduler,
progress and every RNG state, so that a resumed run continues exactly.
"""
from __future__ import annotations

import collections
import pickle
import typing
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

FORMAT = "diffsep"


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
    """torch.save to a temporary file in the same folder, flushed to disk, then renamed."""
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


def check_state_dict(weights, where) -> dict:
    """``weights`` if it is a mapping of names to tensors (a state dict); else one CheckpointError."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{where}: its weights are a {type(weights).__name__}, not a mapping of "
                              f"names to tensors")
    odd = [k for k, v in weights.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise CheckpointError(f"{where}: its weights hold entries that are not named tensors "
                              f"({', '.join(map(repr, odd[:3]))})")
    return weights


def load_weights(model: torch.nn.Module, weights: dict, where) -> None:
    """load_state_dict with one clear CheckpointError listing missing, unexpected and misshapen
    keys instead of torch's long traceback."""
    check_state_dict(weights, where)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    bad = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"{where}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shape {bad[:3]})")
    model.load_state_dict(weights)


# -- our format -----------------------------------------------------------------------------------
def make_checkpoint(model: torch.nn.Module, *, config: dict, ema: dict | None = None, **state) -> dict:
    """The checkpoint dict of our format. ``config``: a Config as a dict, or the sections that
    describe ``model`` (:func:`diffsep.families.describe`); ``state`` adds anything else
    (optimizer, step, RNG states ...)."""
    return {"format": FORMAT, "model": model.state_dict(), "ema": ema, "config": config,
            "step": 0, **state}


def is_ours(ckpt: dict) -> bool:
    return ckpt.get("format") == FORMAT and "model" in ckpt
