"""Export a trained model for sharing: the weights used for inference (EMA by default) and the
configuration, without optimizer, RNG or schedule state; fp16 storage halves the size again.

    diffsep export runs/small/best.pt diffsep-small.pt --fp16

The file loads wherever a checkpoint is accepted; fp16 weights are widened to float32 on load
(estimates differ from the fp32 model's by the rounding of the weights only).
"""
from __future__ import annotations

import torch

from ..families import describe
from ..storage.checkpoint import FORMAT, CheckpointError, atomic_save, is_ours, make_checkpoint


def exported(ckpt: dict, *, ema: bool = True, fp16: bool = False, note: str | None = None) -> dict:
    """An inference-only checkpoint of our format from a full one. Floating-point tensors are
    stored as float16 when ``fp16``; integer buffers keep their type. The data folders of the
    training machine (``data.root``, ``data.monitor_root``) are cleared."""
    if not is_ours(ckpt):
        raise CheckpointError("only diffsep checkpoints can be exported (convert reference ones by "
                              "loading them with diffsep.load_trained first)")
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]

    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if fp16 and t.is_floating_point() else t.clone()

    config = dict(ckpt["config"])
    if isinstance(config.get("data"), dict):  # where the data lay on the training machine: not shared
        config["data"] = {**config["data"], **{k: "" for k in ("root", "monitor_root") if k in config["data"]}}
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
