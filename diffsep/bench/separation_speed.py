"""Separation speed and memory: real-time factor and peak memory against input length.

Example: python -m diffsep.bench separate --model runs/tiny/last.pt --steps 10 --lengths 10 60 600
         python -m diffsep.bench separate --model convtasnet-small --rate 44100 --channels 2 --minutes 1 10 60

--lengths separates a random signal held in memory at the model's rate (the network and the
chunking); --minutes separates a generated audio file of --rate and --channels the way the
separate command does (read, resampled, separated and written in blocks): peak memory of the whole
pipeline, which must not grow with the file's length.

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
    p.add_argument("--kind", choices=("diffsep", "convtasnet", "demucs", "passthrough"), default="diffsep",  # families with a paper size
                   help="family of the random network (without --model; demucs: 4 stereo stems at 44.1 kHz; "
                        "passthrough: no network, what the pipeline costs by itself)")
    p.add_argument("--nf", type=int, default=64, help="width of the random DiffSep network")
    p.add_argument("--lengths", type=float, nargs="+", default=[10.0, 60.0, 600.0],
                   help="input lengths in seconds")
    p.add_argument("--sampler", default=None, help="pc | ode | em (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="time steps (default: the model's)")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length (0: whole input)")
    p.add_argument("--overlap-seconds", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1, help="chunks per network call")
    p.add_argument("--device", default="cpu")
    p.add_argument("--minutes", type=float, nargs="+", default=None,
                   help="separate generated audio files of these lengths (minutes) instead, file to files")
    p.add_argument("--rate", type=int, default=None, help="sample rate of those files (default: the model's)")
    p.add_argument("--channels", type=int, default=None,
                   help="channels of those files (default: the model's; a mono model averages them)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _separator(args):
    from ..inference.loading import load_separator, random_separator

    sampler = {k: v for k, v in (("kind", args.sampler), ("steps", args.steps)) if v is not None}
    if args.model:
        return load_separator(args.model, device=args.device, sampler=sampler)
    if args.kind == "passthrough":
        return _passthrough(args.device)
    return random_separator(args.kind, nf=args.nf, device=args.device, sampler=sampler)


def _passthrough(device):
    """No network: two sources, each half the mixture, at 8 kHz mono: what reading, resampling,
    chunking and writing cost by themselves."""
    from ..inference.separator import Separator

    return Separator(lambda mix, generator: mix[:, None].repeat(1, 2, 1, 1) / 2, 2, 8000, device=device,
                     info={"kind": "passthrough"})


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


def _write_test_file(path, seconds: float, rate: int, channels: int) -> None:
    """A tone in noise, written in blocks (16-bit WAV): any length without holding it."""
    import numpy as np
    import soundfile as sf

    n, block, rng = int(seconds * rate), 10 * rate, np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, channels, subtype="PCM_16") as f:
        for t in range(0, n, block):
            m = min(block, n - t)
            tone = 0.1 * np.sin(2 * np.pi * 220 * (t + np.arange(m)) / rate)
            f.write((tone[:, None] + 0.05 * rng.standard_normal((m, channels))).astype(np.float32))


def _one_file(args, path, outdir, seconds: float, queue) -> None:
    import torch

    from ..inference.streaming import separate_to_files
    from .network_speed import _peak_mb, _sync

    if args.threads:
        torch.set_num_threads(args.threads)
    sep = _separator(args)
    device = torch.device(args.device)
    sep(torch.randn(1, sep.channels, sep.sample_rate // 2))  # warm-up on a short input
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = _rss_mb()
    outs = [outdir / f"{name}.wav" for name in sep.source_names]
    t0 = time.perf_counter()
    separate_to_files(sep, path, outs, downmix=True, chunk_seconds=args.chunk_seconds,
                      overlap_seconds=args.overlap_seconds, batch_size=args.batch_size)
    _sync(device)
    elapsed = time.perf_counter() - t0
    queue.put({"seconds": seconds, "time": elapsed, "rtf": elapsed / seconds, "base_mb": base,
               "peak_mb": _peak_mb(torch.device("cpu")), "nfe": sep.nfe, "rate": sep.sample_rate})


def run_files(args) -> int:
    """--minutes: one generated file per length, separated file to files in a fresh process;
    the peak is the process's peak resident memory (model, pipeline and all)."""
    import tempfile
    from pathlib import Path

    ctx = mp.get_context("spawn")
    probe = _separator(args)
    rate, channels = args.rate or probe.sample_rate, args.channels or probe.channels
    del probe
    name = args.model or ("passthrough (no network)" if args.kind == "passthrough" else f"random {args.kind}")
    print(f"separate bench (files): {rate} Hz, {channels} channel(s) -> model={name} chunk={args.chunk_seconds:g}s "
          f"overlap={args.overlap_seconds:g}s batch={args.batch_size} device={args.device}")
    print(f"{'minutes':>8} {'NFE':>5} {'time':>9} {'RTF':>8} {'base MiB':>9} {'peak MiB':>9} {'peak-base':>9}")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory(prefix="diffsep-bench-") as tmp:
            path = Path(tmp) / "input.wav"
            _write_test_file(path, minutes * 60, rate, channels)
            r = _in_child(ctx, _one_file, args, path, Path(tmp) / "out", minutes * 60)
            if isinstance(r, int):
                print(f"{minutes:7g}m  failed (exit code {r})")
                return 1
        _print_row(f"{minutes:7g}m", r, 1)
    return 0


def _print_row(label: str, r: dict, time_decimals: int) -> None:
    """One table row of a measurement ``r`` (nfe, time, rtf, base_mb, peak_mb)."""
    print(f"{label} {r['nfe']:5d} {r['time']:8.{time_decimals}f}s {r['rtf']:8.3f} {r['base_mb']:9.0f} "
          f"{r['peak_mb']:9.0f} {r['peak_mb'] - r['base_mb']:9.0f}")


def _in_child(ctx, target, *args) -> dict | int:
    """Run ``target(*args, queue)`` in a fresh process (its own peak memory): the dict it puts on
    the queue, or the process's non-zero exit code."""
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join()
    return proc.exitcode if proc.exitcode != 0 else queue.get()


def run(args) -> int:
    if args.minutes:
        return run_files(args)
    ctx = mp.get_context("spawn")
    from ..inference.loading import RANDOM_PRESETS

    random = "passthrough (no network)" if args.kind == "passthrough" else f"random {RANDOM_PRESETS[args.kind](args.nf)}"
    print(f"separate bench: model={args.model or random} sampler={args.sampler or 'model'} "
          f"steps={args.steps or 'model'} chunk={args.chunk_seconds:g}s overlap={args.overlap_seconds:g}s "
          f"batch={args.batch_size} device={args.device}")
    print(f"{'length':>8} {'NFE':>5} {'time':>9} {'RTF':>8} {'base MiB':>9} {'peak MiB':>9} {'peak-base':>9}")
    for seconds in args.lengths:
        r = _in_child(ctx, _one, args, seconds)
        if isinstance(r, int):
            print(f"{seconds:7g}s  failed (exit code {r})")
            return 1
        _print_row(f"{seconds:7g}s", r, 2)
    return 0
