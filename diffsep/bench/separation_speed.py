"""Separation speed and memory: real-time factor and peak memory against input length.

Example: python -m diffsep.bench separate --model runs/tiny/last.pt --steps 10 --lengths 10 60 600

Each length runs in a fresh process, so the peak resident memory (CPU) or peak allocated memory
(CUDA) is that of one separation; "base" is the same process right after loading the model, so
peak − base is what the separation itself needs. Without --model a random network is timed
(speed does not depend on the weights): DiffSep of width --nf, or the paper's Conv-TasNet.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (default: a random network of --nf)")
    p.add_argument("--kind", choices=("diffsep", "convtasnet", "demucs"), default="diffsep",  # families with a paper size
                   help="family of the random network (without --model; demucs: 4 stereo stems at 44.1 kHz)")
    p.add_argument("--nf", type=int, default=64, help="width of the random DiffSep network")
    p.add_argument("--lengths", type=float, nargs="+", default=[10.0, 60.0, 600.0],
                   help="input lengths in seconds")
    p.add_argument("--sampler", default=None, help="pc | ode | em (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="time steps (default: the model's)")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length (0: whole input)")
    p.add_argument("--overlap-seconds", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1, help="chunks per network call")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _separator(args):
    from ..inference.loading import load_separator, random_separator

    sampler = {k: v for k, v in (("kind", args.sampler), ("steps", args.steps)) if v is not None}
    if args.model:
        return load_separator(args.model, device=args.device, sampler=sampler)
    return random_separator(args.kind, nf=args.nf, device=args.device, sampler=sampler)


def _one(args, seconds: float, queue) -> None:
    import torch

    from ..inference.loading import chunk_samples
    from ..inference.separator import separate
    from .network_speed import _peak_mb, _sync

    if args.threads:
        torch.set_num_threads(args.threads)
    sep = _separator(args)
    device = torch.device(args.device)
    rate = sep.sample_rate
    chunk, overlap = chunk_samples(args.chunk_seconds, args.overlap_seconds, rate)
    separate(sep, [torch.randn(sep.channels, rate // 2)])  # warm-up on a short input
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = _peak_mb(device) if device.type == "cuda" else _rss_mb()
    mix = torch.randn(sep.channels, int(seconds * rate), generator=torch.Generator().manual_seed(0))
    _sync(device)
    t0 = time.perf_counter()
    separate(sep, [mix], chunk=chunk, overlap=overlap, batch_size=args.batch_size)
    _sync(device)
    elapsed = time.perf_counter() - t0
    queue.put({"seconds": seconds, "time": elapsed, "rtf": elapsed / seconds, "base_mb": base,
               "peak_mb": _peak_mb(device), "nfe": sep.nfe, "rate": rate})


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(args) -> int:
    ctx = mp.get_context("spawn")
    from ..inference.loading import RANDOM_PRESETS

    random = f"random {RANDOM_PRESETS[args.kind](args.nf)}"
    print(f"separate bench: model={args.model or random} sampler={args.sampler or 'model'} "
          f"steps={args.steps or 'model'} chunk={args.chunk_seconds:g}s overlap={args.overlap_seconds:g}s "
          f"batch={args.batch_size} device={args.device}")
    print(f"{'length':>8} {'NFE':>5} {'time':>9} {'RTF':>8} {'base MiB':>9} {'peak MiB':>9} {'peak-base':>9}")
    for seconds in args.lengths:
        queue = ctx.Queue()
        proc = ctx.Process(target=_one, args=(args, seconds, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            print(f"{seconds:7g}s  failed (exit code {proc.exitcode})")
            return 1
        r = queue.get()
        print(f"{seconds:7g}s {r['nfe']:5d} {r['time']:8.2f}s {r['rtf']:8.3f} {r['base_mb']:9.0f} "
              f"{r['peak_mb']:9.0f} {r['peak_mb'] - r['base_mb']:9.0f}")
    return 0
