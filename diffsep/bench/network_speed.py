"""Score-network speed and memory: one forward pass side by side on the same weights and input,
(with ``--reference-code DIR``) the reference implementation's, ours on the reference path and
ours on the default path that separation runs, as ratios; then forward+backward and peak memory.

- reference code: the paper's code (github fakufaku/diffusion-separation, a checkout in DIR) run
  with our weights (:mod:`diffsep.bench.reference_code`); NCSN++ only, CPU only;
- reference path: our network exactly as training computes it (NCHW), under ``torch.no_grad``;
- default path: as every separator runs it (:func:`diffsep.inference.loading.make_separator`):
  ``inference_path="fast"`` (NCSN++ channels-last) under ``torch.inference_mode``.

The columns run in interleaved rounds (one untimed round first), so that load from other
processes hits them alike; each is given as the median wall-clock time and process CPU time per
call. The lines "forward" and "forward+backward" are the default path's forward and the training
step (reference path: gradients recorded).

Example: python -m diffsep.bench score --nf 64 --seconds 4 --threads 2 --reference-code ../diffusion-separation
         python -m diffsep.bench score --config configs/tiny_tasnet_data.yaml --threads 1
"""
from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time

import torch

from ..core.sde import DiffSepSDE
from ..families.preconditioning import Preconditioned
from ..nets.inference_path import FAST, REFERENCE, set_inference_path
from ..nets.spectral_unet import SpectralUNet
from .backbone_speed import interleaved


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nf", type=int, default=64, help="NCSN++ base width (paper: 128; default config: 64)")
    p.add_argument("--n-src", type=int, default=2, help="number of sources K")
    p.add_argument("--config", default=None, help="time the DiffSep model of this config (NCSN++ or tasnet "
                   "backbone, its head) instead of an NCSN++ of --nf, e.g. configs/small.yaml")
    p.add_argument("--seconds", type=float, default=4.0, help="input length in seconds")
    p.add_argument("--fs", type=int, default=8000, help="sample rate")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="autocast dtype on top of float32 weights (float32 = no autocast)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds (after one warm-up round)")
    p.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    p.add_argument("--channels-last", action="store_true",
                   help="also store the weights channels-last (all columns and the training step)")
    p.add_argument("--reference-code", default=None, metavar="DIR",
                   help="also time the reference implementation's score network on the same weights: a "
                        "checkout of github.com/fakufaku/diffusion-separation (NCSN++, CPU)")


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


def build(args, device) -> tuple[torch.nn.Module, str]:
    """The model to time (seeded random weights) and a line describing it."""
    torch.manual_seed(0)
    if args.config:
        from ..config.build import build_model
        from ..config.settings import load_config

        cfg = load_config(args.config)
        if cfg.model.kind != "diffsep":
            raise SystemExit(f"{args.config}: a {cfg.model.kind} model; this bench times DiffSep networks")
        model, m = build_model(cfg), cfg.model
        what = (f"{args.config}: backbone {m.backbone}" + (f" nf={m.nf} ch_mult={list(m.ch_mult)}"
                if m.backbone == "spectral_unet" else "") + f" head {m.head} K={m.n_src}")
    else:
        net = SpectralUNet(n_src=args.n_src, nf=args.nf, init_scale=1.0)
        model = Preconditioned(net, "score_t", DiffSepSDE(args.n_src))
        what = f"score model nf={args.nf} K={args.n_src}"
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, what


def side_by_side(columns: dict, x, t, mix, amp: dict, repeat: int) -> dict:
    """{name: (outputs, wall-clock times, CPU times)} of each column's forward, in interleaved
    rounds. ``columns``: {name: (model, grad mode: "no_grad" | "inference_mode")}."""
    outputs = {}

    def call(name, model, mode):
        def run():
            with (torch.inference_mode() if mode == "inference_mode" else torch.no_grad()), torch.autocast(**amp):
                outputs[name] = model(x, t, mix)
            _sync(x.device)
        return run

    names = list(columns)
    wall, cpu = interleaved([call(n, *columns[n]) for n in names], repeat)
    return {n: (outputs[n].float().clone(), w, c) for n, w, c in zip(names, wall, cpu)}


def rel_diff(a, b) -> float:
    """max |a − b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, what = build(args, device)
    model.eval()
    K = model.n_src
    N = int(round(args.seconds * args.fs))
    x = torch.randn(args.batch, K, N, device=device)
    mix = x.sum(1, keepdim=True)
    t = torch.full((args.batch,), 0.5, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    autocast = args.dtype != "float32"
    amp = dict(device_type=device.type, dtype=getattr(torch, args.dtype), enabled=autocast)
    print(f"{what} params={n_params:,} input=({args.batch}, {K}, {N}) [{args.seconds:g} s at {args.fs} Hz] "
          f"device={device} dtype={args.dtype} threads={torch.get_num_threads()}")

    columns = {}
    if args.reference_code:
        from .reference_code import reference_score_model

        net = getattr(model, "net", None)
        if device.type != "cpu" or not isinstance(net, SpectralUNet) or getattr(model, "head", "") != "score_t":
            raise SystemExit("--reference-code times the paper's score network: an NCSN++ (spectral_unet) "
                             "backbone with head score_t, on CPU")
        columns["reference code"] = (reference_score_model(args.reference_code, net).to(device), "no_grad")
    columns["reference path"] = (set_inference_path(copy.deepcopy(model), REFERENCE), "no_grad")
    columns["default path"] = (set_inference_path(model, FAST), "inference_mode")
    notes = {"reference code": f"the paper's code ({args.reference_code}), torch.no_grad",
             "reference path": "ours as training computes it (NCHW), torch.no_grad",
             "default path": "ours as separators run it (fast path), torch.inference_mode"}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    res = side_by_side(columns, x, t, mix, amp, args.repeat)
    base = next(iter(res))
    med = {n: (statistics.median(w), statistics.median(c)) for n, (_, w, c) in res.items()}
    print(f"forward, side by side ({args.repeat} interleaved rounds after one warm-up; median per call; "
          f"speed = time of the {base} / time):")
    for n, (w, c) in med.items():
        print(f"  {n:<15} {w:8.3f} s  (x{med[base][0] / w:4.2f})   CPU {c:8.3f} s  (x{med[base][1] / c:4.2f})   "
              f"{notes[n]}")
    ref_out = res["reference path"][0]
    diffs = [f"default vs reference path {rel_diff(res['default path'][0], ref_out):.1e}"]
    if "reference code" in res:
        diffs += [f"reference path vs reference code {rel_diff(ref_out, res['reference code'][0]):.1e}",
                  f"default path vs reference code {rel_diff(res['default path'][0], res['reference code'][0]):.1e}"]
    print(f"  max |difference| / max |output|: {'; '.join(diffs)}")
    fw = res["default path"][1]
    print(f"forward           median {statistics.median(fw):8.3f} s  (min {min(fw):.3f}, "
          f"runs {len(fw)})  peak memory {_peak_mb(device):,.0f} MiB")
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
