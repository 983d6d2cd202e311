"""The training loop: single process or torchrun DDP, gradient accumulation, clipping, autocast,
EMA, atomic self-describing checkpoints, exact resume, validation with the EMA weights, logs.

Exact resume: the model, EMA, optimizer, scaler, every RNG (torch, numpy, python, the loss
generator) and the position in the epoch are in each checkpoint, data crops are a function of
(seed, epoch, index), and the loss's random draws come from one generator for the global batch.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import distributed
from .checkpoint import FORMAT, CheckpointError, atomic_save, safe_load
from .config import Config, to_dict, to_yaml
from .data import SeparationDataset, build_items, collate, normalize
from .data.sampler import GlobalBatchOrder
from .loss import draw, pit_si_snr_loss, score_matching_loss
from .metrics import pit_si_sdr, si_sdr
from .sampler import sample
from .models import build_model
from .sde import DiffSepSDE

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def build_datasets(cfg: Config) -> tuple[SeparationDataset, SeparationDataset]:
    d = cfg.data
    kw = dict(n_src=cfg.model.n_src, sample_rate=d.sample_rate, mode=d.mode, mixture=d.mixture)
    seg = int(d.segment_seconds * d.sample_rate) if d.segment_seconds > 0 else None
    train = SeparationDataset(build_items(d.kind, d.root, d.train_split, **kw), d.sample_rate,
                              segment=seg, random_crop=True, seed=cfg.train.seed,
                              min_samples=int(d.min_seconds * d.sample_rate), pad_to_segment=True)
    valid = SeparationDataset(build_items(d.kind, d.root, d.valid_split, **kw), d.sample_rate,
                              segment=seg, random_crop=False, seed=cfg.train.seed)
    return train, valid


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which saves and stops them.
    (Ctrl-C and `timeout`/schedulers signal the whole process group.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Trainer:
    """Build everything from a Config; :meth:`run` trains until ``train.max_steps``."""

    def __init__(self, cfg: Config, datasets: tuple | None = None):
        self.cfg = cfg
        t = cfg.train
        if t.amp not in AMP_DTYPES:
            raise ValueError(f"unknown train.amp {t.amp!r}; valid: {', '.join(AMP_DTYPES)}")
        self.dist = distributed.setup(resolve_device(t.device).type)
        self.device = resolve_device(t.device, self.dist.local_rank)
        self.run_dir = Path(t.run_dir)
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.kind = cfg.model.kind
        self.model = build_model(asdict(cfg.model), asdict(cfg.convtasnet)).to(self.device)
        self.sde = DiffSepSDE(cfg.model.n_src, **asdict(cfg.sde))
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr,
                                    betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        o = cfg.optim
        if o.lr_schedule not in ("none", "plateau"):
            raise ValueError(f"unknown optim.lr_schedule {o.lr_schedule!r}; valid: none, plateau")
        self.scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="max", factor=o.lr_factor, patience=o.lr_patience,
            threshold=1e-3, threshold_mode="abs")  # 1e-3 of the score (dB), also for negative scores
            if o.lr_schedule == "plateau" else None)
        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.train_set, self.valid_set = datasets or build_datasets(cfg)
        self.order = GlobalBatchOrder(len(self.train_set), t.batch_size, self.dist.world_size,
                                      self.dist.rank, t.seed)
        self.steps_per_epoch = len(self.order) // t.accumulate
        if self.steps_per_epoch == 0:
            raise ValueError(f"an epoch of {len(self.order)} batches holds no step of "
                             f"{t.accumulate} accumulated batches")
        self.loss_gen = torch.Generator().manual_seed(t.seed)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best = -math.inf
        self._stop = False
        self._writer = None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        rng = {"torch": torch.get_rng_state(), "loss": self.loss_gen.get_state(),
               "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
               "python": random.getstate()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"format": FORMAT, "model": self.model.state_dict(),
                "ema": self.ema.module.state_dict(), "ema_n_averaged": self.ema.n_averaged.item(),
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best": self.best, "rng": rng, "config": to_dict(self.cfg),
                "world_size": self.dist.world_size}

    def load_state_dict(self, ck: dict) -> None:
        self.model.load_state_dict(ck["model"])
        self.ema.module.load_state_dict(ck["ema"])
        self.ema.n_averaged.fill_(ck["ema_n_averaged"])
        self.opt.load_state_dict(ck["optimizer"])
        self.scaler.load_state_dict(ck["scaler"])
        if self.scheduler is not None and ck.get("scheduler"):
            self.scheduler.load_state_dict(ck["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = ck["step"], ck["epoch"], ck["batch_in_epoch"]
        self.best = ck["best"]
        rng = ck["rng"]
        torch.set_rng_state(rng["torch"])
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(rng["python"])
        self.loss_gen.set_state(rng["loss"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def resume_path(self) -> Path | None:
        r = self.cfg.train.resume
        if r == "never":
            return None
        if r == "auto":
            p = self.run_dir / "last.pt"
            return p if p.is_file() else None
        if not Path(r).is_file():
            raise CheckpointError(f"{r}: train.resume names no checkpoint file")
        return Path(r)

    def save(self, best: bool = False) -> None:
        if not self.dist.is_main:
            return
        state = self.state_dict()
        atomic_save(state, self.run_dir / "last.pt")
        if best:
            atomic_save(state, self.run_dir / "best.pt")
        if self.cfg.train.keep_last > 0:
            atomic_save(state, self.run_dir / f"step_{self.step:08d}.pt")
            numbered = sorted(self.run_dir.glob("step_*.pt"))
            for old in numbered[:-self.cfg.train.keep_last]:
                old.unlink(missing_ok=True)

    # -- steps ------------------------------------------------------------------------------------
    def _autocast(self):
        dtype = AMP_DTYPES[self.cfg.train.amp]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _draws(self, batch_shape):
        """Loss draws of the global batch (same generator state on every rank), this rank's part."""
        B, K, N = batch_shape
        W, r = self.dist.world_size, self.dist.rank
        c = self.cfg.loss
        d = draw(self.sde, (B * W, K, N), t_eps=c.t_eps, p_T=c.p_T, fixed_order=c.fixed_order,
                 generator=self.loss_gen)
        return d.slice(r * B, (r + 1) * B).to(self.device)

    def train_step(self, micro_batches: list[dict]) -> dict:
        """One optimizer step over ``accumulate`` micro-batches. Returns logged scalars."""
        self.net.train()
        acc, total = len(micro_batches), 0.0
        for j, batch in enumerate(micro_batches):
            mix, sources, _, _ = normalize(batch["mix"].to(self.device), batch["sources"].to(self.device))
            draws = self._draws(sources.shape) if self.kind == "diffsep" else None
            sync = j == acc - 1 or not self.dist.enabled
            with (contextlib.nullcontext() if sync else self.net.no_sync()):
                with self._autocast():
                    loss = self._loss(self.net, mix, sources, draws).mean()
                self.scaler.scale(loss / acc).backward()
            total += loss.item() / acc
        self.scaler.unscale_(self.opt)
        clip = self.cfg.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.ema.update_parameters(self.model)
        self.step += 1
        return {"loss": distributed.mean_over_ranks(total, self.dist, self.device),
                "grad_norm": grad_norm.item(), "lr": self.opt.param_groups[0]["lr"]}

    def _loss(self, net, mix: Tensor, sources: Tensor, draws) -> Tensor:
        """Per-item training loss (B,): score matching (DiffSep) or negative PIT SI-SNR."""
        if self.kind == "diffsep":
            return score_matching_loss(net, self.sde, sources, mix, draws=draws)
        return pit_si_snr_loss(net(mix).float(), sources)

    def _separate(self, model, mix: Tensor, seed: int) -> Tensor:
        """Estimates of a normalised mixture (1, 1, N) -> (1, K, N)."""
        if self.kind != "diffsep":
            return model(mix)
        s = self.cfg.sampler
        return sample(model, self.sde, mix, kind=s.kind, steps=s.steps, snr=s.snr,
                      corrector_steps=s.corrector_steps, t_eps=s.t_eps, reference_dt=s.reference_dt,
                      solver=s.solver, generator=torch.Generator(self.device).manual_seed(seed))

    @torch.no_grad()
    def validate(self) -> dict:
        """Loss on the cv split and SI-SDR(i) of a few cv items, with the EMA weights."""
        model, c, t = self.ema.module.eval(), self.cfg, self.cfg.train
        loader = torch.utils.data.DataLoader(self.valid_set, batch_size=t.batch_size,
                                             collate_fn=collate)
        gen = torch.Generator().manual_seed(t.seed + 1)  # same draws at every validation
        losses = []
        for i, batch in enumerate(loader):
            if i >= t.val_batches:
                break
            mix, sources, _, _ = normalize(batch["mix"].to(self.device), batch["sources"].to(self.device))
            d = draw(self.sde, sources.shape, t_eps=c.loss.t_eps, p_T=c.loss.p_T,
                     fixed_order=c.loss.fixed_order, generator=gen).to(self.device) \
                if self.kind == "diffsep" else None
            losses.append(self._loss(model, mix, sources, d).mean().item())
        out = {"val_loss": float(np.mean(losses))}
        scores, gains = [], []
        for i in range(min(t.val_sep_items, len(self.valid_set))):
            item = self.valid_set[i]
            mix, sources, _, _ = normalize(item["mix"][None].to(self.device),
                                           item["sources"][None].to(self.device))
            sc, _ = pit_si_sdr(self._separate(model, mix, t.seed + i), sources)
            scores.append(sc.mean().item())
            gains.append((sc - si_sdr(mix.expand_as(sources), sources)).mean().item())
        if scores:
            out.update(val_si_sdr=float(np.mean(scores)), val_si_sdri=float(np.mean(gains)))
        return out

    # -- logging ----------------------------------------------------------------------------------
    def log(self, scalars: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **scalars}) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        for k, v in scalars.items():
            self._writer.add_scalar(k, v, self.step)

    def _trim_metrics(self) -> None:
        """Drop log lines written after the checkpoint we resume from (a killed run)."""
        path = self.run_dir / "metrics.jsonl"
        if self.dist.is_main and path.is_file():
            keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= self.step]
            path.write_text("".join(ln + "\n" for ln in keep))

    # -- main loop --------------------------------------------------------------------------------
    def _request_stop(self, signum, frame):
        self._stop = True

    def run(self) -> int:
        """Train to train.max_steps (or until SIGINT/SIGTERM). Returns the final step."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.resume_path()
        if path is not None:
            self.load_state_dict(safe_load(path, map_location=self.device))
            self._trim_metrics()
        if self.dist.is_main:
            (self.run_dir / "config.yaml").write_text(to_yaml(self.cfg))
        old = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self._writer is not None:
                self._writer.close()
        return self.step

    def _loop(self) -> None:
        from tqdm import tqdm

        t = self.cfg.train
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not self.dist.is_main,
                   dynamic_ncols=True, desc="train")
        t0 = time.perf_counter()
        while self.step < t.max_steps:
            self.train_set.set_epoch(self.epoch)
            batches = self.order.batches(self.epoch, start=self.batch_in_epoch)
            batches = batches[:len(batches) - len(batches) % t.accumulate]
            loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=batches,
                                                 collate_fn=collate, num_workers=self.cfg.data.num_workers,
                                                 worker_init_fn=_ignore_stop_signals)
            it = iter(loader)
            for _ in range(len(batches) // t.accumulate):
                scalars = self.train_step([next(it) for _ in range(t.accumulate)])
                self.batch_in_epoch += t.accumulate
                bar.update(1)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}")
                if self.step % t.log_every == 0:
                    self.log({**scalars, "epoch": self.epoch, "time": time.perf_counter() - t0})
                stop = distributed.any_flag(self._stop, self.dist, self.device)
                last = self.step >= t.max_steps
                if (t.val_every and self.step % t.val_every == 0) or last:
                    self._validate_and_save()
                elif self.step % t.ckpt_every == 0 or stop:
                    self.save()
                if stop or last:
                    bar.close()
                    return
            del it, loader
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            if t.val_every_epochs and self.epoch % t.val_every_epochs == 0:
                self._validate_and_save()
            else:
                self.save()  # end of epoch
        bar.close()

    def _validate_and_save(self) -> None:
        score = 0.0
        if self.dist.is_main:
            v = self.validate()
            self.log(v)
            score = v.get("val_si_sdr", -v["val_loss"])
        # every rank takes the same scheduler step: rank 0's score, summed with zeros
        score = distributed.mean_over_ranks(score, self.dist, self.device) * self.dist.world_size
        if self.scheduler is not None:
            self.scheduler.step(score)
        best = score > self.best
        self.best = max(self.best, score)
        self.save(best=best)
        distributed.barrier(self.dist)
