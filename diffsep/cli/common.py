"""Options shared by the separate and evaluate command lines, checked up front."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


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


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def max_jobs() -> int:
    """The most worker processes an option may ask for: 4 per CPU core."""
    return 4 * (os.cpu_count() or 1)


def worker_count(text: str) -> int:
    """--jobs: 0 (in the main process) up to :func:`max_jobs`."""
    value = int(text)
    if not 0 <= value <= max_jobs():
        raise argparse.ArgumentTypeError(f"must be in [0, {max_jobs()}] (4 per CPU core), got {text}")
    return value


def _field_type(f, meta):
    """An argparse type for a settings field: its Python type, checked against its metadata."""
    base = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]

    def parse(text: str):
        value = base(text)
        if base is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if "min" in meta and not value >= meta["min"]:
            raise argparse.ArgumentTypeError(f"must be >= {meta['min']}, got {text}")
        if "gt" in meta and not value > meta["gt"]:
            raise argparse.ArgumentTypeError(f"must be > {meta['gt']}, got {text}")
        if "range" in meta and not meta["range"][0] <= value <= meta["range"][1]:
            raise argparse.ArgumentTypeError(f"must be in [{meta['range'][0]}, {meta['range'][1]}], got {text}")
        return value
    parse.__name__ = base.__name__
    return parse


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    """One option per field of :class:`diffsep.samplers.SamplerSettings` (``--steps``,
    ``--corrector-steps`` ...; ``kind`` is ``--sampler``), from its type and metadata; None
    (not given) keeps the model's own setting."""
    from dataclasses import fields

    from ..samplers import SamplerSettings

    for f in fields(SamplerSettings):
        meta = f.metadata
        flag = "--" + meta.get("flag", f.name).replace("_", "-")
        help_ = f"{meta.get('help', f.name)} (default: the model's)"
        if (f.type if isinstance(f.type, str) else f.type.__name__) == "bool":
            p.add_argument(flag, dest=f"sampler_{f.name}", action=argparse.BooleanOptionalAction, help=help_)
        else:
            p.add_argument(flag, dest=f"sampler_{f.name}", type=_field_type(f, meta), choices=meta.get("choices"),
                           help=help_, metavar=None if "choices" in meta else f.name.upper())


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Sampler, chunking and device options shared by separate and evaluate."""
    add_sampler_args(p)
    p.add_argument("--rescale", default="denormalize",
                   choices=("denormalize", "mix_projection", "mix_consistency"),
                   help="final scaling of the estimates (default: undo the normalisation)")
    p.add_argument("--chunk-seconds", type=nonnegative_float, default=10.0,
                   help="process longer inputs in chunks of this length (0: whole)")
    p.add_argument("--overlap-seconds", type=nonnegative_float, default=1.0,
                   help="overlap between chunks (less than --chunk-seconds)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="chunks per network batch")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--raw-weights", action="store_true",
                   help="use the raw weights instead of the EMA weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler noise")
    p.add_argument("--shifts", type=positive_int,
                   help="average the estimate over this many small delays of the input, spread over "
                        "the network's frame hop (S times the work; default: the bundled model's "
                        "setting, else 1)")
    p.add_argument("--warm-start", metavar="CKPT",
                   help="start the diffusion from this discriminative model's estimate (Conv-TasNet "
                        "checkpoint or bundled name; 'none': from the prior, also for a bundled model "
                        "that has a partner)")


def check_model_args(parser: argparse.ArgumentParser, args) -> None:
    """Usage errors that involve several options (before any work is done)."""
    if args.chunk_seconds > 0 and args.overlap_seconds >= args.chunk_seconds:
        parser.error(f"argument --overlap-seconds: must be less than --chunk-seconds "
                     f"({args.overlap_seconds:g} >= {args.chunk_seconds:g})")
    check_device(parser, args)


def device_problem(name: str) -> str | None:
    """Why the torch device ``name`` cannot be used on this machine, in one sentence, or None."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"{name!r} is not a torch device (cpu, cuda, cuda:N, mps)"
    if device.type == "cpu":
        return None
    backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None)}.get(device.type,
                                                                                  getattr(torch, device.type, None))
    if backend is None or not getattr(backend, "is_available", lambda: False)():
        return (f"{name} asked for, but this machine has no {device.type.upper()} device that torch "
                f"{torch.__version__} can use (use --device cpu)")
    count = getattr(backend, "device_count", lambda: 1)()
    if device.index is not None and device.index >= count:
        return f"{name} asked for, but this machine has {count} {device.type.upper()} device(s)"
    return None


def check_device(parser: argparse.ArgumentParser, args) -> None:
    """A usage error for a --device this machine does not have (instead of a traceback later)."""
    name = getattr(args, "device", None)
    problem = device_problem(name) if name else None
    if problem:
        parser.error(f"argument --device: {problem}")


def prepare_output_folder(folder: Path) -> int:
    """Before any work: create ``folder`` if needed, check that files can be created in it, and
    remove the temporaries that killed runs of this program left in it and below it (see
    :func:`diffsep.storage.atomic.remove_stale_temporaries`; never another file, never the
    temporary of a run in progress). Returns how many were removed. Raises OSError naming the
    folder."""
    import errno

    from ..storage.atomic import remove_stale_temporaries

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Exists and is not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".diffsep-write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as e:
        raise OSError(e.errno, f"Cannot create files in this folder ({(e.strerror or str(e)).lower()})", str(folder)) from None
    probe.unlink()
    removed = 0
    for here, _, _ in os.walk(folder):
        removed += len(remove_stale_temporaries(here))
    return removed


def sampler_overrides(args) -> dict:
    """The sampler options given on the command line, as SamplerSettings fields."""
    prefix = "sampler_"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


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
               warm_start=warm_start_arg(args), shifts=args.shifts)
    if args.sampler_t_start is not None and "warm_start" not in sep.info:
        raise ValueError("--t-start needs a warm start (--warm-start CKPT, or a bundled model that has one)")
    return sep


def chunking(args) -> dict:
    """Keyword arguments of :func:`diffsep.inference.separate_signal` from the options."""
    return dict(chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds,
                batch_size=args.batch_size)
