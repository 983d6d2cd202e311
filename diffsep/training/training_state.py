"""The state of a training run in a checkpoint: progress, every RNG, optimizer, scaler, schedule
and EMA, written so that a resumed run continues exactly; which checkpoint a run resumes from;
the weights a new run starts from (``train.init_from``)."""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config, ConfigError, TrainConfig, config_from_dict, to_dict
from ..storage.checkpoint import CheckpointError, is_ours, load_weights, make_checkpoint, safe_load


# -- training state -------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where a run is: optimizer steps taken, epoch, batches consumed in it, best validation score."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = -float("inf")


def capture_rng(device: torch.device, loss_gen: torch.Generator) -> dict:
    """Every RNG state a run uses: torch (CPU and the run's CUDA device), numpy, python, and the
    generator of the loss draws."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    rng = {"torch": torch.get_rng_state(), "loss": loss_gen.get_state(),
           "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
           "python": random.getstate()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def restore_rng(rng: dict, device: torch.device, loss_gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(rng["python"])
    loss_gen.set_state(rng["loss"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def training_state(run, config: dict, world_size: int = 1) -> dict:
    """The checkpoint of a run in progress. ``run`` has .model, .ema (AveragedModel), .opt,
    .scaler, .scheduler (or None), .loss_gen, .device and .progress (:class:`Progress`)."""
    p = run.progress
    return make_checkpoint(
        run.model, config=config, ema=run.ema.module.state_dict(),
        ema_n_averaged=run.ema.n_averaged.item(), optimizer=run.opt.state_dict(),
        scaler=run.scaler.state_dict(),
        scheduler=run.scheduler.state_dict() if run.scheduler else None, step=p.step,
        epoch=p.epoch, batch_in_epoch=p.batch_in_epoch, best=p.best,
        rng=capture_rng(run.device, run.loss_gen), world_size=world_size)


def restore_training_state(run, ckpt: dict, where) -> None:
    """Inverse of :func:`training_state`: weights, EMA, optimizer, scaler, scheduler, RNGs and
    ``run.progress``."""
    load_weights(run.model, ckpt["model"], where)
    load_weights(run.ema.module, ckpt["ema"], where)
    run.ema.n_averaged.fill_(ckpt["ema_n_averaged"])
    run.opt.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    if run.scheduler is not None and ckpt.get("scheduler"):
        run.scheduler.load_state_dict(ckpt["scheduler"])
    run.progress = Progress(ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["best"])
    restore_rng(ckpt["rng"], run.device, run.loss_gen)


# -- run directories --------------------------------------------------------------------------------
def resume_checkpoint(t: TrainConfig, run_dir: Path, map_location="cpu") -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its contents: ``train.resume`` = auto (RUN_DIR/last.pt
    if present; if it cannot be read, the newest readable RUN_DIR/step_*.pt, with a warning),
    never, or a path."""
    if t.resume == "never":
        return None
    if t.resume != "auto":
        if not Path(t.resume).is_file():
            raise CheckpointError(f"{t.resume}: train.resume names no checkpoint file")
        return Path(t.resume), safe_load(t.resume, map_location)
    candidates = [run_dir / "last.pt"] if (run_dir / "last.pt").is_file() else []
    candidates += sorted(run_dir.glob("step_*.pt"), reverse=True)
    if not candidates:
        return None
    errors = []
    for path in candidates:
        try:
            ckpt = safe_load(path, map_location)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            print(f"warning: {errors[0]}; resuming from {path} (step {ckpt.get('step')}) instead",
                  file=sys.stderr)
        return path, ckpt
    raise CheckpointError(f"no readable checkpoint to resume in {run_dir} ({errors[0]}); "
                          f"start over with train.resume=never")


def check_resumable(ckpt: dict, cfg: Config, where, sections=("model",),
                    hint="use the same model settings, another train.run_dir, or train.resume=never") -> None:
    """Refuse, in one sentence, a checkpoint of another model than the configured one (compared
    on the config ``sections`` that define the network, see ``Family.config_sections``)."""
    have = ckpt.get("config") or {}
    try:  # read as a config now reads it (older key names, other families' sections)
        have = to_dict(config_from_dict(have))
    except ConfigError:
        pass  # compared as written
    want = to_dict(cfg)
    diff = [f"{s}.{k}={(have.get(s) or {}).get(k)!r} (configured: {v!r})" for s in sections
            for k, v in want[s].items() if (have.get(s) or {}).get(k, v) != v]
    if diff:
        raise CheckpointError(f"{where}: written by a different model ({'; '.join(diff[:3])}); "
                              f"{hint}")


def initial_weights(path, cfg: Config, sections=("model",)) -> dict:
    """The weights a new run starts from (``train.init_from``): the checkpoint's EMA weights if it
    has them (training checkpoints), else its model weights (exported ones, maybe fp16), as
    float32, after checking that the checkpoint was written by the configured network."""
    ckpt = safe_load(path)
    if not is_ours(ckpt):
        raise CheckpointError(f"{path}: train.init_from needs a diffsep checkpoint")
    check_resumable(ckpt, cfg, path, sections, hint="train.init_from needs the same model settings")
    weights = ckpt.get("ema") or ckpt["model"]
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of checkpoint writes a killed run left behind (``.NAME.*.tmp*``)."""
    stale = [p for p in run_dir.glob(".*.tmp*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
