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
from ..nets.convtasnet_growth import WIDTHS, deepened, widened
from ..storage.checkpoint import CheckpointError, is_ours, load_weights, make_checkpoint, safe_load


# -- training state -------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where a run is: optimizer steps taken, epoch, batches consumed in it, best validation score."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = -float("inf")
    seconds: float = 0.0  # wall-clock time trained, summed over resumes (train.max_minutes)


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
        epoch=p.epoch, batch_in_epoch=p.batch_in_epoch, best=p.best, seconds=p.seconds,
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
    run.progress = Progress(ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["best"],
                            ckpt.get("seconds", 0.0))  # checkpoints before train.max_minutes have no clock
    restore_rng(ckpt["rng"], run.device, run.loss_gen)


# -- run directories --------------------------------------------------------------------------------
TRAINING_KEYS = ("optimizer", "scaler", "rng", "ema", "ema_n_averaged", "epoch", "batch_in_epoch", "best")


def training_checkpoint(ckpt: dict, where) -> dict:
    """``ckpt`` if a run can resume from it (a training checkpoint of ours, with every part of
    :func:`training_state`); else one CheckpointError saying what it is and what to do instead."""
    if not is_ours(ckpt):
        raise CheckpointError(f"{where}: not a diffsep training checkpoint, so a run cannot resume from it; "
                              f"train.resume takes a checkpoint a diffsep training wrote (last.pt, step_*.pt)")
    missing = [k for k in TRAINING_KEYS if ckpt.get(k) is None]
    if "exported" in ckpt or "optimizer" in missing:
        raise CheckpointError(f"{where}: an exported model (weights and config, no optimizer or training "
                              f"state) cannot be resumed; start a new run from its weights with "
                              f"train.init_from={where}")
    if missing:
        raise CheckpointError(f"{where}: the training state is incomplete (no {', '.join(missing)}), so a "
                              f"run cannot resume from it; start a new run from its weights with "
                              f"train.init_from={where}")
    return ckpt


def resume_checkpoint(t: TrainConfig, run_dir: Path, map_location="cpu") -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its contents: ``train.resume`` = auto (RUN_DIR/last.pt
    if present; if it cannot be read, the newest readable RUN_DIR/step_*.pt, with a warning),
    never, or a path."""
    if t.resume == "never":
        return None
    if t.resume != "auto":
        if not Path(t.resume).is_file():
            raise CheckpointError(f"{t.resume}: train.resume names no checkpoint file")
        return Path(t.resume), training_checkpoint(safe_load(t.resume, map_location), t.resume)
    candidates = [run_dir / "last.pt"] if (run_dir / "last.pt").is_file() else []
    candidates += sorted(run_dir.glob("step_*.pt"), reverse=True)
    if not candidates:
        return None
    errors = []
    for path in candidates:
        try:
            ckpt = training_checkpoint(safe_load(path, map_location), path)
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


def check_same_seed(ckpt: dict, cfg: Config, where) -> None:
    """Refuse, in one sentence, to resume a checkpoint written with another ``train.seed``: the data
    order and crops follow the seed, so the result would be neither run."""
    seed = ((ckpt.get("config") or {}).get("train") or {}).get("seed")
    if seed is not None and seed != cfg.train.seed:
        raise CheckpointError(f"{where}: written with train.seed={seed!r} (configured: {cfg.train.seed!r}); "
                              f"resume with train.seed={seed!r}, or start a new run (another train.run_dir, "
                              f"train.resume=never, or train.init_from={where} for its weights)")


def separator_start(path, cfg: Config) -> dict | None:
    """A Conv-TasNet checkpoint's weights (EMA if it has them, float32) when ``train.init_from``
    names one and the configured model is DiffSep with the ``tasnet`` backbone, which then starts
    as that separator (:func:`~diffsep.nets.tasnet_denoiser.load_convtasnet`); None otherwise."""
    model = getattr(cfg, "model", None)
    if getattr(model, "backbone", None) != "tasnet":
        return None
    ckpt = safe_load(path)
    if not is_ours(ckpt) or ((ckpt.get("config") or {}).get("model") or {}).get("kind") != "convtasnet":
        return None
    weights = ckpt.get("ema") or ckpt["model"]
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


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


def grown_start(path, cfg: Config, target: dict) -> dict:
    """``train.init_deepen`` / ``train.init_widen``: the weights of a Conv-TasNet checkpoint laid
    into the configured larger Conv-TasNet, whose current state dict is ``target``: deeper (X and R
    at least the checkpoint's), wider (N, B, H and Sc whole multiples of the checkpoint's), or
    both, every other size equal; the same function (:mod:`diffsep.nets.convtasnet_growth`; the
    split fractions of widening are drawn from ``train.seed``)."""
    flags = [f for f in ("init_deepen", "init_widen") if getattr(cfg.train, f)]
    what = " / ".join(f"train.{f}" for f in flags)
    if cfg.model.kind != "convtasnet":
        raise CheckpointError(f"{path}: {what} grows a Conv-TasNet, not a {cfg.model.kind} model")
    ckpt = safe_load(path)
    have = (ckpt.get("config") or {}) if is_ours(ckpt) else {}
    if (have.get("model") or {}).get("kind") != "convtasnet":
        raise CheckpointError(f"{path}: {what} needs a diffsep Conv-TasNet checkpoint")
    old, new = have.get("convtasnet") or {}, to_dict(cfg)["convtasnet"]
    free = (("X", "R") if cfg.train.init_deepen else ()) + (WIDTHS if cfg.train.init_widen else ())
    diff = [f"convtasnet.{k}={old.get(k)!r} (configured: {v!r})" for k, v in new.items()
            if k not in free and old.get(k, v) != v]
    if diff:
        raise CheckpointError(f"{path}: {what}: only {' and '.join((', '.join(free[:-1]), free[-1]))} may differ "
                              f"({'; '.join(diff[:3])})")
    weights = ckpt.get("ema") or ckpt["model"]
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    try:
        if cfg.train.init_widen:
            generator = torch.Generator().manual_seed(cfg.train.seed)
            weights = widened(weights, {k: old[k] for k in WIDTHS}, {k: new[k] for k in WIDTHS}, generator)
        return deepened(weights, old["X"], old["R"], target, new["X"], new["R"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: {what}: {e}") from None
