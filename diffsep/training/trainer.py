"""The training loop: single process or torchrun DDP, gradient accumulation, clipping, autocast,
EMA, atomic self-describing checkpoints, exact resume, validation of the EMA weights as they ship
(:mod:`diffsep.training.validation`), logs.

Everything model-specific sits in the model family (:mod:`diffsep.families`); every object is
built by :mod:`diffsep.config.build` and :mod:`diffsep.training.optimization`; the checkpoint and RNG state by
:mod:`diffsep.training.training_state`.

Exact resume: the model, EMA, optimizer, scaler, every RNG (torch, numpy, python, the loss
generator) and the position in the epoch are in each checkpoint, data crops are a function of
(seed, epoch, index), and the loss's random draws come from one generator for the global batch.
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed
from ..config.build import build_datasets, build_family, build_monitor_sets
from .optimization import amp_dtype, build_ema, build_optimizer, build_scaler, build_scheduler
from .divergence import NonFiniteSteps, TrainingDiverged, non_finite_tensors
from .run_lock import RunDirBusy, RunLock
from .training_state import (Progress, check_resumable, check_same_seed, grown_start, initial_weights,
                             separator_start, restore_training_state, resume_checkpoint, training_state)
from ..storage.atomic import remove_stale_temporaries
from ..storage.checkpoint import CheckpointError, atomic_save, load_weights
from ..nets.tasnet_denoiser import load_convtasnet
from ..config.settings import Config, ConfigError, TrainConfig, to_dict, to_yaml
from ..data import collate
from ..data.batch_order import GlobalBatchOrder
from ..core.normalization import normalize
from .runlog import RunLog
from .validation import validate, validation_separator


# -- the schedule: pure functions of (step or epoch, config) --------------------------------------
@dataclass(frozen=True)
class Actions:
    log: bool = False
    validate: bool = False  # validation is always followed by a checkpoint (best.pt when best)
    save: bool = False


def after_step(step: int, t: TrainConfig, *, last: bool = False, stop: bool = False) -> Actions:
    """What follows optimizer step ``step``: log every ``log_every`` steps; validate every
    ``val_every`` steps and at the last step; otherwise save every ``ckpt_every`` steps and when
    asked to stop."""
    validate = bool(t.val_every and step % t.val_every == 0) or last
    return Actions(log=step % t.log_every == 0, validate=validate,
                   save=not validate and (step % t.ckpt_every == 0 or stop))


def after_epoch(epochs_done: int, t: TrainConfig) -> Actions:
    """At the end of an epoch: validate every ``val_every_epochs`` epochs, else save."""
    validate = bool(t.val_every_epochs and epochs_done % t.val_every_epochs == 0)
    return Actions(validate=validate, save=not validate)


# -- signals ---------------------------------------------------------------------------------------
class StopSignals(contextlib.AbstractContextManager):
    """Within the block, SIGINT / SIGTERM set ``requested`` instead of stopping the process."""

    def __enter__(self):
        self.requested = False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which saves and stops them.
    (Ctrl-C and `timeout`/schedulers signal the whole process group.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# -- the run ---------------------------------------------------------------------------------------
class Trainer:
    """A training run built from a Config; :meth:`run` trains until ``train.max_steps`` or ``train.max_minutes``."""

    def __init__(self, cfg: Config, datasets: tuple | None = None):
        self.cfg, t = cfg, cfg.train
        if not t.run_dir.strip():
            raise ConfigError("train.run_dir is empty: name the folder for checkpoints and logs, "
                              "e.g. train.run_dir=runs/NAME")
        self.amp = amp_dtype(cfg)
        self.dist = distributed.setup(distributed.resolve_device(t.device).type)
        self.device = distributed.resolve_device(t.device, self.dist.local_rank)
        self.run_dir = Path(t.run_dir)
        if self.dist.is_main:
            RunLock(self.run_dir).check_free()  # a run directory in use: say so before the set-up
        self.family = build_family(cfg)
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.model = self.family.build_model().to(self.device)
        self.ema = build_ema(cfg, self.model)
        self.opt = build_optimizer(cfg, self.model)
        self.scaler = build_scaler(cfg, self.device)
        self.scheduler = build_scheduler(cfg, self.opt)
        self.net = distributed.wrap(self.model, self.dist, self.device)
        self.train_set, self.valid_set = datasets or build_datasets(cfg)
        self.monitor_sets = build_monitor_sets(cfg) if self.dist.is_main else {}
        # the EMA network as it ships (sampler, warm-start partner), for validation
        self.val_separator = validation_separator(cfg, self.ema.module, self.device) if self.dist.is_main else None
        self.order = GlobalBatchOrder(len(self.train_set), t.batch_size, self.dist.world_size,
                                      self.dist.rank, t.seed)
        if len(self.order) < t.accumulate:
            raise ValueError(f"an epoch of {len(self.order)} batches holds no step of "
                             f"{t.accumulate} accumulated batches")
        self.loss_gen = torch.Generator().manual_seed(t.seed)
        self.progress = Progress()
        self.nonfinite = NonFiniteSteps(t.max_nonfinite)
        self.last_saved = "none was written"  # the newest checkpoint of this run, for messages
        self.log = RunLog(self.run_dir, enabled=self.dist.is_main)

    @property
    def step(self) -> int:
        return self.progress.step

    def run(self) -> int:
        """Train to train.max_steps or train.max_minutes (or until SIGINT/SIGTERM), holding the run directory's lock.
        Returns the final step."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            return self._run()

    def _lock(self):
        """The run directory's lock (:mod:`diffsep.training.run_lock`), held by rank 0; when it
        cannot be taken every rank stops."""
        lock, busy = contextlib.nullcontext(), None
        if self.dist.is_main:
            try:
                lock = RunLock(self.run_dir).acquire()
            except RunDirBusy as e:
                busy = e
        if distributed.any_flag(busy is not None, self.dist, self.device):
            raise busy or RunDirBusy(f"{self.run_dir}: rank 0 could not take the run directory's lock")
        return lock

    def _run(self) -> int:
        from tqdm import tqdm

        self._resume()
        if self.dist.is_main:
            (self.run_dir / "config.yaml").write_text(to_yaml(self.cfg))

        bar = tqdm(total=self.cfg.train.max_steps, initial=self.progress.step,
                   disable=not self.dist.is_main, dynamic_ncols=True, desc="train")
        try:
            with StopSignals() as signals, bar:  # the bar is closed before any error is printed
                self._loop(signals, bar)
        finally:
            self.log.close()
        return self.progress.step

    def _resume(self) -> None:
        """Continue from the run directory's checkpoint (or train.resume), if there is one."""
        if self.dist.is_main:
            remove_stale_temporaries(self.run_dir)
        found = resume_checkpoint(self.cfg.train, self.run_dir, map_location=self.device)
        if found is None:
            if self.cfg.train.resume == "auto":
                self.log.trim(0)  # records of a run killed before its first checkpoint: redone now
            if self.cfg.train.init_from:
                self._init_from(self.cfg.train.init_from)
            return
        path, ckpt = found
        check_resumable(ckpt, self.cfg, path, self.family.config_sections)
        check_same_seed(ckpt, self.cfg, path)
        for key in ("model", "ema"):  # checkpoints of an older key layout
            ckpt[key] = self.family.upgrade_weights(self.model, ckpt[key])
        restore_training_state(self, ckpt, path)
        if non_finite_tensors(self.model, self.ema.module):
            raise CheckpointError(f"{path}: its weights are not finite; resume from an older checkpoint "
                                  f"(train.resume=RUN_DIR/step_*.pt) or start over (train.resume=never)")
        self.last_saved = f"{path} (step {self.progress.step})"
        self.log.trim(self.progress.step)

    def _init_from(self, path: str) -> None:
        """A new run from another run's (or an exported model's) weights: model and EMA both; a
        DiffSep model with the tasnet backbone may start from a Conv-TasNet of the same sizes, and
        with ``train.init_deepen`` / ``train.init_widen`` a Conv-TasNet from a shallower or
        narrower one."""
        if self.cfg.train.init_deepen or self.cfg.train.init_widen:
            weights = grown_start(path, self.cfg, self.model.state_dict())
            for net in (self.model, self.ema.module):
                net.load_state_dict(weights)
            return
        separator = separator_start(path, self.cfg)
        if separator is not None:
            try:
                for net in (self.model, self.ema.module):
                    load_convtasnet(net.net, separator)
            except ValueError as e:
                raise CheckpointError(f"{path}: train.init_from: this Conv-TasNet does not fit the "
                                      f"tasnet backbone: {e}") from None
            return
        weights = initial_weights(path, self.cfg, self.family.config_sections)
        weights = self.family.upgrade_weights(self.model, weights)
        load_weights(self.model, weights, path)
        load_weights(self.ema.module, weights, path)
        bad = non_finite_tensors(self.model)
        if bad:
            raise CheckpointError(f"{path}: train.init_from has non-finite weights ({bad[0]}"
                                  f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); no run can start from them")

    def _loop(self, signals: StopSignals, bar) -> None:
        t, p = self.cfg.train, self.progress
        t0, trained_before = time.perf_counter(), p.seconds
        while p.step < t.max_steps and not self._out_of_time():
            with contextlib.closing(self._epoch_steps()) as steps:
                for micro_batches in steps:
                    scalars = self.train_step(micro_batches)
                    p.batch_in_epoch += t.accumulate
                    bar.update(1)
                    bar.set_postfix(loss=f"{scalars['loss']:.4f}")
                    elapsed = time.perf_counter() - t0  # this process's clock
                    p.seconds = trained_before + elapsed
                    stop = distributed.any_flag(signals.requested, self.dist, self.device)
                    last = p.step >= t.max_steps or self._out_of_time()
                    todo = after_step(p.step, t, last=last, stop=stop)
                    if todo.log:
                        self.log.write(p.step, {**scalars, "epoch": p.epoch, "time": elapsed})
                    if self.nonfinite.in_a_row and self.dist.is_main:
                        bar.write(f"warning: step {p.step}: loss {scalars['loss']}, gradient norm "
                                  f"{scalars['grad_norm']}: not finite, update skipped", file=sys.stderr)
                    self.nonfinite.check(p.step, scalars["loss"], scalars["grad_norm"], self.last_saved)
                    self._checkpoint(todo)
                    if stop or last:
                        return
            p.epoch, p.batch_in_epoch = p.epoch + 1, 0
            self._checkpoint(after_epoch(p.epoch, t))

    def _out_of_time(self) -> bool:
        """``train.max_minutes`` reached (every rank answers as one: their clocks differ)."""
        limit = self.cfg.train.max_minutes
        return bool(limit) and distributed.any_flag(self.progress.seconds >= 60 * limit, self.dist, self.device)

    def _epoch_steps(self):
        """The rest of the current epoch as lists of ``accumulate`` collated micro-batches."""
        t, p = self.cfg.train, self.progress
        self.train_set.set_epoch(p.epoch)
        batches = self.order.batches(p.epoch, start=p.batch_in_epoch)
        batches = batches[:len(batches) - len(batches) % t.accumulate]
        loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=batches, collate_fn=collate,
                                             num_workers=self.cfg.data.num_workers,
                                             worker_init_fn=_ignore_stop_signals)
        it = iter(loader)
        try:
            for _ in range(len(batches) // t.accumulate):
                yield [next(it) for _ in range(t.accumulate)]
        finally:
            # Stop the workers now, also when a worker raised (a bad file): left to the garbage
            # collector, they would outlive the process's exit, which they ignore SIGTERM for.
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def train_step(self, micro_batches: list[dict]) -> dict:
        """One optimizer step over ``accumulate`` micro-batches. Returns logged scalars."""
        self.net.train()
        acc, total = len(micro_batches), 0.0
        for j, batch in enumerate(micro_batches):
            mix, sources, _, _ = normalize(batch["mix"].to(self.device), batch["sources"].to(self.device))
            draws = self._draws(sources.shape)
            sync = j == acc - 1 or not self.dist.enabled
            with (contextlib.nullcontext() if sync else self.net.no_sync()):
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    loss = self.family.loss(self.net, mix, sources, draws).mean()
                self.scaler.scale(loss / acc).backward()
            total += loss.item() / acc
        self.scaler.unscale_(self.opt)
        clip = self.cfg.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        loss = distributed.mean_over_ranks(total, self.dist, self.device)
        skip = self.nonfinite.bad(loss, grad_norm.item(), self.scaler.is_enabled())  # the same on every rank
        if not skip:
            self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        lr = self.opt.param_groups[0]["lr"]  # the lr of this step
        if self.scheduler is not None:
            self.scheduler.after_step()
        if not skip:
            self.ema.update_parameters(self.model)
        self.progress.step += 1
        self.nonfinite.record(self.progress.step, skip)
        return {"loss": loss, "grad_norm": grad_norm.item(), "lr": lr}

    def _draws(self, shape):
        """The family's random draws for the global batch (the same generator state on every
        rank), this rank's part, on the device."""
        B, *rest = shape
        W, r = self.dist.world_size, self.dist.rank
        draws = self.family.draw((B * W, *rest), self.loss_gen)
        return None if draws is None else draws.slice(r * B, (r + 1) * B).to(self.device)

    def _checkpoint(self, todo: Actions) -> None:
        if todo.validate or todo.save:
            self._check_finite_weights()
        if todo.validate:
            self._validate_and_save()
        elif todo.save:
            self.save()

    def _validate_and_save(self) -> None:
        score = 0.0
        if self.dist.is_main:
            v = validate(self.family, self.ema.module, self.val_separator, self.valid_set, self.monitor_sets,
                         self.cfg, self.device)
            self.log.write(self.progress.step, v)
            score = v.get("val_si_sdr", -v["val_loss"])
        # every rank takes the same scheduler step: rank 0's score, summed with zeros
        score = distributed.mean_over_ranks(score, self.dist, self.device) * self.dist.world_size
        if self.scheduler is not None:
            self.scheduler.after_validation(score)
        best = score > self.progress.best
        self.progress.best = max(self.progress.best, score)
        self.save(best=best)
        distributed.barrier(self.dist)

    def save(self, best: bool = False) -> None:
        """RUN_DIR/last.pt, best.pt when ``best``, and the last ``keep_last`` step_*.pt."""
        self._check_finite_weights()  # the same weights on every rank: every rank stops
        if not self.dist.is_main:
            return
        state = training_state(self, to_dict(self.cfg), self.dist.world_size)
        atomic_save(state, self.run_dir / "last.pt")
        if best:
            atomic_save(state, self.run_dir / "best.pt")
        if self.cfg.train.keep_last > 0:
            atomic_save(state, self.run_dir / f"step_{self.progress.step:08d}.pt")
            for old in sorted(self.run_dir.glob("step_*.pt"))[:-self.cfg.train.keep_last]:
                old.unlink(missing_ok=True)
        self.last_saved = f"{self.run_dir / 'last.pt'} (step {self.progress.step})"

    def _check_finite_weights(self) -> None:
        """Refuse to validate or save weights (or EMA weights) holding NaN / inf: the checkpoints
        already written stay the last finite ones."""
        bad = non_finite_tensors(self.model) or [f"EMA {n}" for n in non_finite_tensors(self.ema.module)]
        if bad:
            raise TrainingDiverged(f"training diverged: at step {self.progress.step} the weights are not "
                                   f"finite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); "
                                   f"not saved, the last finite checkpoint is kept: {self.last_saved}; "
                                   f"lower optim.lr or check train.init_from")
