"""Options shared by the separate and evaluate command lines, checked up front."""
from __future__ import annotations

import argparse


def error_line(e: BaseException) -> str:
    """One line for the user. An exception re-raised from a DataLoader worker carries the worker's
    traceback in its message: keep its last line, without the exception's class name."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    last = lines[-1]
    name = f"{type(e).__module__}.{type(e).__qualname__}: "
    if len(lines) > 1 and last.startswith(name):
        return last[len(name):]
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror[0].lower()}{e.strerror[1:]}"
    return " ".join(lines) if len(lines) > 1 else last


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Sampler, chunking and device options shared by separate and evaluate."""
    from ..samplers import SAMPLERS

    p.add_argument("--sampler", choices=list(SAMPLERS), help="sampler (default: the model's)")
    p.add_argument("--steps", type=positive_int, help="number of time steps N (default: the model's)")
    p.add_argument("--snr", type=positive_float, help="corrector step size r (pc)")
    p.add_argument("--corrector-steps", type=int, help="corrector steps per time step (pc)")
    p.add_argument("--solver", choices=("heun", "euler"), help="ODE solver (ode)")
    p.add_argument("--rescale", default="denormalize",
                   choices=("denormalize", "mix_projection", "mix_consistency"),
                   help="final scaling of the estimates (default: undo the normalisation)")
    p.add_argument("--chunk-seconds", type=float, default=10.0,
                   help="process longer inputs in chunks of this length (0: whole)")
    p.add_argument("--overlap-seconds", type=nonnegative_float, default=1.0,
                   help="overlap between chunks (less than --chunk-seconds)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="chunks per network batch")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--raw-weights", action="store_true",
                   help="use the raw weights instead of the EMA weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler noise")
    p.add_argument("--warm-start", metavar="CKPT",
                   help="start the diffusion from this discriminative model's estimate (Conv-TasNet "
                        "checkpoint or bundled name; 'none': from the prior, also for a bundled model "
                        "that has a partner)")
    p.add_argument("--t-start", type=positive_float,
                   help="with a warm start: the time the reverse process starts at (0 < t <= T; "
                        "default: the bundled model's, else 0.5)")


def check_model_args(parser: argparse.ArgumentParser, args) -> None:
    """Usage errors that involve several options (before any work is done)."""
    if args.corrector_steps is not None and args.corrector_steps < 0:
        parser.error(f"argument --corrector-steps: must be >= 0, got {args.corrector_steps}")
    if args.chunk_seconds > 0 and args.overlap_seconds >= args.chunk_seconds:
        parser.error(f"argument --overlap-seconds: must be less than --chunk-seconds "
                     f"({args.overlap_seconds:g} >= {args.chunk_seconds:g})")


def sampler_overrides(args) -> dict:
    pairs = (("kind", args.sampler), ("steps", args.steps), ("snr", args.snr),
             ("corrector_steps", args.corrector_steps), ("solver", args.solver),
             ("t_start", args.t_start))
    return {k: v for k, v in pairs if v is not None}


def warm_start_arg(args):
    """--warm-start as load_separator takes it: None (the model's own choice), False or a name."""
    if args.warm_start is None:
        return None
    return False if args.warm_start.lower() == "none" else args.warm_start


def load_separator(args):
    """The separator named by --model and the sampler options. Raises CheckpointError."""
    from ..inference.loading import load_separator as load

    sep = load(args.model, ema=not args.raw_weights, device=args.device,
               sampler=sampler_overrides(args), rescale=args.rescale, seed=args.seed,
               warm_start=warm_start_arg(args))
    if args.t_start is not None and "warm_start" not in sep.info:
        raise ValueError("--t-start needs a warm start (--warm-start CKPT, or a bundled model that has one)")
    return sep


def chunking(args) -> dict:
    """Keyword arguments of :func:`diffsep.inference.separate_signal` from the options."""
    return dict(chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds,
                batch_size=args.batch_size)
