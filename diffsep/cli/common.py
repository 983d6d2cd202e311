"""Options and model loading shared by the separate and evaluate command lines."""
from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Sampler, chunking and device options shared by separate and evaluate."""
    p.add_argument("--sampler", choices=("pc", "ode", "em"), help="sampler (default: the model's)")
    p.add_argument("--steps", type=int, help="number of time steps N (default: the model's)")
    p.add_argument("--snr", type=float, help="corrector step size r (pc)")
    p.add_argument("--corrector-steps", type=int, help="corrector steps per time step (pc)")
    p.add_argument("--solver", choices=("heun", "euler"), help="ODE solver (ode)")
    p.add_argument("--rescale", default="denormalize",
                   choices=("denormalize", "mix_projection", "mix_consistency"),
                   help="final scaling of the estimates (default: undo the normalisation)")
    p.add_argument("--chunk-seconds", type=float, default=10.0,
                   help="process longer inputs in chunks of this length (0: whole)")
    p.add_argument("--overlap-seconds", type=float, default=1.0, help="overlap between chunks")
    p.add_argument("--batch-size", type=int, default=1, help="chunks per network batch")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--raw-weights", action="store_true",
                   help="use the raw weights instead of the EMA weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler noise")


def sampler_overrides(args) -> dict:
    pairs = (("kind", args.sampler), ("steps", args.steps), ("snr", args.snr),
             ("corrector_steps", args.corrector_steps), ("solver", args.solver))
    return {k: v for k, v in pairs if v is not None}


def load_separator(args):
    """The separator named by --model and the sampler options. Raises CheckpointError."""
    import torch

    from ..checkpoint import load_inference
    from ..hub import resolve_model
    from ..separation import make_separator

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    inference = load_inference(resolve_model(args.model), ema=not args.raw_weights)
    return make_separator(inference, device=device, sampler=sampler_overrides(args),
                          rescale=args.rescale, seed=args.seed)


def separate_signal(separator, mix, rate: int, args, out_rate: int | None = None):
    """Separate one mono signal given at ``rate``: resample to the model's rate, separate in chunks
    (--chunk-seconds, --overlap-seconds, --batch-size), resample to ``out_rate`` (default: rate).
    mix (N,) -> (K, round(N · out_rate / rate)) float32 numpy."""
    import torch

    from ..audio import resample
    from ..separation import separate

    model_rate, out_rate = separator.sample_rate, out_rate or rate
    x = resample(mix[None], rate, model_rate)[0]
    chunk, overlap = chunk_samples(args, model_rate)
    est, = separate(separator, [torch.from_numpy(x)], chunk=chunk, overlap=overlap,
                    batch_size=args.batch_size)
    return resample(est.numpy(), model_rate, out_rate, length=int(round(len(mix) * out_rate / rate)))


def chunk_samples(args, sample_rate: int) -> tuple[int, int]:
    """(chunk, overlap) in samples from --chunk-seconds / --overlap-seconds (chunk 0: whole)."""
    if args.chunk_seconds <= 0:
        return 0, 0
    chunk = int(round(args.chunk_seconds * sample_rate))
    overlap = int(round(args.overlap_seconds * sample_rate))
    return chunk, max(0, min(overlap, chunk - 1))
