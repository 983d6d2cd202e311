"""Backbones side by side: time per network evaluation (forward, forward+backward) of the models of
several configs, interleaved so that load from other processes hits all of them alike, as ratios.
Each is given as wall-clock time and as the process's CPU time: on a machine shared with other jobs
the CPU time of one thread is the steadier measure of work (with several threads it also counts
their waiting). The forward pass is timed as separators run it (the fast inference path,
diffsep/nets/inference_path.py, in inference mode); forward+backward as training runs it.

Example: python -m diffsep.bench backbones --threads 2 --seconds 1.5 4
         (default: configs/small.yaml, NCSN++ nf 16, against configs/tiny_tasnet_data.yaml)
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..config.build import build_model
from ..config.settings import load_config
from ..nets.inference_path import FAST, set_inference_path

DEFAULT_CONFIGS = ("configs/small.yaml", "configs/tiny_tasnet_data.yaml")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                   help="YAML configs of DiffSep models; ratios are against the first")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.5, 4.0], help="input lengths in seconds")
    p.add_argument("--fs", type=int, default=8000, help="sample rate")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds (after one warm-up round)")
    p.add_argument("--no-backward", action="store_true", help="time the forward pass only")


def describe_backbone(cfg) -> str:
    m = cfg.model
    if getattr(m, "backbone", "spectral_unet") == "tasnet":
        return (f"tasnet N{m.tasnet_N} L{m.tasnet_L} B{m.tasnet_B} H{m.tasnet_H} X{m.tasnet_X} "
                f"R{m.tasnet_R} Sc{m.tasnet_Sc}")
    return f"spectral_unet nf{m.nf} ch_mult{list(m.ch_mult)}"


def interleaved(fns: list, repeat: int) -> tuple[list[list[float]], list[list[float]]]:
    """Seconds per call of each function: one untimed round, then ``repeat`` rounds each calling
    every function once in turn. -> (wall-clock, process CPU): per function, ``repeat`` times."""
    for fn in fns:
        fn()
    wall, cpu = [[] for _ in fns], [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[i].append(time.perf_counter() - w0)
            cpu[i].append(time.process_time() - c0)
    return wall, cpu


def _forward(model, x, t, mix):
    def call():  # as separators run it: the fast path, inference mode
        with torch.inference_mode():
            model(x, t, mix)
    return call


def _step(model, x, t, mix):
    def call():
        model(x, t, mix).square().mean().backward()
        model.zero_grad(set_to_none=True)
    return call


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfgs = [load_config(path) for path in args.configs]
    models = []
    for path, cfg in zip(args.configs, cfgs):
        if cfg.model.kind != "diffsep":
            raise SystemExit(f"{path}: a {cfg.model.kind} model; this bench compares DiffSep backbones")
        torch.manual_seed(0)
        models.append(set_inference_path(build_model(cfg), FAST))  # training steps ignore it
        n = sum(p.numel() for p in models[-1].parameters())
        print(f"[{len(models) - 1}] {path}: {describe_backbone(cfg)}, head {cfg.model.head}, params {n:,}")
    print(f"threads={torch.get_num_threads()} batch={args.batch} repeat={args.repeat} (medians; "
          f"ratio = time of [0] / time of [i], > 1: faster than [0])")
    K = {cfg.model.n_src for cfg in cfgs}
    if len(K) > 1:
        raise SystemExit(f"the configs separate different numbers of sources ({sorted(K)})")
    modes = [("forward", _forward)] + ([] if args.no_backward else [("forward+backward", _step)])
    for seconds in args.seconds:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, cfgs[0].model.n_src, int(round(seconds * args.fs)), generator=g)  # (B, K, N)
        mix, t = x.sum(1, keepdim=True), torch.full((args.batch,), 0.5)
        for label, make in modes:
            for model in models:
                model.train(label != "forward")
            for clock, times in zip(("wall", "cpu"), interleaved([make(model, x, t, mix) for model in models],
                                                                 args.repeat)):
                med = [statistics.median(ts) for ts in times]
                cells = "  ".join(f"[{i}] {m * 1e3:8.1f} ms (x{med[0] / m:5.2f})" for i, m in enumerate(med))
                print(f"{seconds:g} s at {args.fs} Hz  {label:<17} {clock:<4} {cells}")
    return 0
