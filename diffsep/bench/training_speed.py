"""Training speed: optimizer steps per second and peak memory for a config, on synthetic data.

Example: python -m diffsep.bench train --config configs/tiny.yaml [--steps 10] [key=value ...]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..config.settings import load_config
from .network_speed import _peak_mb, _sync


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/tiny.yaml", help="YAML config (model, batch, amp ...)")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps (after 2 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.amp=bf16")


def run(args) -> int:
    from ..training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    t, d = cfg.train, cfg.data
    N = int(d.segment_seconds * d.sample_rate)
    g = torch.Generator().manual_seed(0)

    shape = (t.batch_size, cfg.model.n_src, cfg.model.audio_channels, N)  # (B, K, C, N)

    def batch():
        s = torch.randn(shape, generator=g)
        return {"mix": s.sum(1), "sources": s}

    tr = Trainer(cfg, datasets=(_Sized(64 * t.batch_size), None))  # no data files needed
    device = tr.device
    name = cfg.model.kind
    if getattr(cfg.model, "backbone", None) == "tasnet":
        name = f"tasnet X={cfg.model.tasnet_X} R={cfg.model.tasnet_R} H={cfg.model.tasnet_H}"
    elif hasattr(cfg.model, "nf"):
        name = f"nf={cfg.model.nf}"
    print(f"train bench: model {name} params={sum(p.numel() for p in tr.model.parameters()):,} "
          f"batch {t.batch_size} x accumulate {t.accumulate}, {d.segment_seconds:g} s at "
          f"{d.sample_rate} Hz x {cfg.model.audio_channels} channel(s), amp={t.amp}, device={device}, threads={torch.get_num_threads()}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.steps + 2):
        micro = [batch() for _ in range(t.accumulate)]
        _sync(device)
        t0 = time.perf_counter()
        tr.train_step(micro)
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"optimizer step    median {med:.3f} s  ->  {1 / med:.2f} steps/s, "
          f"{t.batch_size * t.accumulate / med:.1f} items/s  (runs {len(times)})")
    print(f"peak memory {_peak_mb(device):,.0f} MiB"
          + (" (process max RSS)" if device.type == "cpu" else " (CUDA allocated)"))
    return 0


class _Sized(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n
