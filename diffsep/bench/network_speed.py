"""Score-network speed and memory: forward and forward+backward time, peak memory.

Example: python -m diffsep.bench score --nf 64 --seconds 4 --batch 1
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from ..core.sde import DiffSepSDE
from ..families.preconditioning import Preconditioned
from ..nets.spectral_unet import SpectralUNet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nf", type=int, default=64, help="NCSN++ base width (paper: 128; default config: 64)")
    p.add_argument("--n-src", type=int, default=2, help="number of sources K")
    p.add_argument("--seconds", type=float, default=4.0, help="input length in seconds")
    p.add_argument("--fs", type=int, default=8000, help="sample rate")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="autocast dtype on top of float32 weights (float32 = no autocast)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (after one warm-up)")
    p.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    p.add_argument("--channels-last", action="store_true", help="run the U-Net in channels-last layout")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB


def _time(fn, device, repeat) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = SpectralUNet(n_src=args.n_src, nf=args.nf, init_scale=1.0)
    model = Preconditioned(net, "score_t", DiffSepSDE(args.n_src)).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    N = int(round(args.seconds * args.fs))
    x = torch.randn(args.batch, args.n_src, N, device=device)
    mix = x.sum(1, keepdim=True)
    t = torch.full((args.batch,), 0.5, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    autocast = args.dtype != "float32"
    amp = dict(device_type=device.type, dtype=getattr(torch, args.dtype), enabled=autocast)
    print(f"score model nf={args.nf} K={args.n_src} params={n_params:,} input=({args.batch}, "
          f"{args.n_src}, {N}) [{args.seconds:g} s at {args.fs} Hz] device={device} "
          f"dtype={args.dtype} threads={torch.get_num_threads()}")

    def forward():
        with torch.no_grad(), torch.autocast(**amp):
            model.eval()(x, t, mix)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fw = _time(forward, device, args.repeat)
    peak_fw = _peak_mb(device)
    print(f"forward           median {statistics.median(fw):8.3f} s  (min {min(fw):.3f}, "
          f"runs {len(fw)})  peak memory {peak_fw:,.0f} MiB")
    if not args.no_backward:
        def step():
            model.train()
            with torch.autocast(**amp):
                loss = model(x, t, mix).square().mean()
            loss.backward()
            model.zero_grad(set_to_none=True)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        fb = _time(step, device, args.repeat)
        print(f"forward+backward  median {statistics.median(fb):8.3f} s  (min {min(fb):.3f}, "
              f"runs {len(fb)})  peak memory {_peak_mb(device):,.0f} MiB")
    if device.type == "cpu":
        print("(CPU peak memory is the process's maximum resident set size)")
    return 0
