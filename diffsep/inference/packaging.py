"""Export a trained model for sharing: the weights used for inference (EMA by default) and the
configuration, without optimizer, RNG or schedule state; fp16 storage halves the size again.

    diffsep export runs/small/best.pt diffsep-small.pt --fp16

The file loads wherever a checkpoint is accepted; fp16 weights are widened to float32 on load
(estimates differ from the fp32 model's by the rounding of the weights only).
"""
from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

import torch

from ..families import describe
from ..storage.checkpoint import FORMAT, CheckpointError, atomic_save, is_ours, make_checkpoint


# Settings that name places on the training machine: data folders are cleared, run and checkpoint
# paths keep only their file name when absolute (provenance without the machine's layout).
_DATA_PATHS = ("root", "monitor_root")
_TRAIN_PATHS = ("run_dir", "init_from", "resume", "val_warm_start")


def machine_free(config: dict) -> dict:
    """A copy of a checkpoint's config without the training machine's paths: ``data.root`` and
    ``data.monitor_root`` empty, ``data.monitor_sets`` empty, and an
    absolute ``train.run_dir`` / ``init_from`` / ``resume`` / ``val_warm_start`` becomes its last
    component; relative paths (``runs/x/last.pt``, bundled names) are kept as they are."""
    config = dict(config)
    data = config.get("data")
    if isinstance(data, dict):
        data = {**data, **{k: "" for k in _DATA_PATHS if k in data}}
        if data.get("monitor_sets"):  # {name: root}: an empty root would mean the current folder
            data["monitor_sets"] = {}
        config["data"] = data
    train = config.get("train")
    if isinstance(train, dict):
        config["train"] = {**train, **{k: PureWindowsPath(train[k]).name for k in _TRAIN_PATHS
                                       if isinstance(train.get(k), str) and _is_absolute(train[k])}}
    return config


def _is_absolute(path: str) -> bool:
    """Absolute on POSIX or Windows (a checkpoint may come from either)."""
    return PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()


def exported(ckpt: dict, *, ema: bool = True, fp16: bool = False, note: str | None = None) -> dict:
    """An inference-only checkpoint of our format from a full one. Floating-point tensors are
    stored as float16 when ``fp16``; integer buffers keep their type. Paths of the training
    machine are not shared (:func:`machine_free`)."""
    if not is_ours(ckpt):
        raise CheckpointError("only diffsep checkpoints can be exported (convert reference ones by "
                              "loading them with diffsep.load_trained first)")
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]

    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if fp16 and t.is_floating_point() else t.clone()

    config = machine_free(ckpt["config"])
    out = {"format": FORMAT, "model": {k: store(v) for k, v in weights.items()}, "ema": None,
           "config": config, "step": ckpt.get("step", 0),
           "exported": {"weights": "ema" if weights is ckpt.get("ema") else "model",
                        "dtype": "float16" if fp16 else "float32"}}
    if note:
        out["exported"]["note"] = note
    return out


def save_model(path, model: torch.nn.Module, *, config: dict | None = None, **state) -> None:
    """Write a bare network of any family as a checkpoint of our format, atomically. ``config``
    (sections of a Config as a dict) is merged over the sections that describe ``model``;
    ``state`` adds anything else (ema, step ...)."""
    atomic_save(make_checkpoint(model, config={**describe(model), **(config or {})}, **state), path)
