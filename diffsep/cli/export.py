"""diffsep export CHECKPOINT OUTPUT [--fp16]: an inference-only copy of a trained model (EMA
weights and config, no optimizer or RNG state), optionally stored as float16."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..inference.packaging import exported
from ..storage.checkpoint import CheckpointError, atomic_save, safe_load


def same_file(a: Path, b: Path) -> bool:
    """Whether two names are one file: the same path once resolved (links, '..', relative), or the
    same file on disk (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsep export", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="a training checkpoint (last.pt, best.pt ...)")
    p.add_argument("output", type=Path, help="the file to write")
    p.add_argument("--fp16", action="store_true", help="store floating-point weights as float16")
    p.add_argument("--raw-weights", action="store_true", help="export the raw weights, not the EMA")
    args = p.parse_args(argv)
    if args.checkpoint.is_file() and same_file(args.checkpoint, args.output):  # it would replace what it is made from
        print(f"error: {args.output}: is the checkpoint being exported ({args.checkpoint}); write the "
              f"exported model to another file", file=sys.stderr)
        return 2
    if args.output.is_dir():
        print(f"error: {args.output}: is a folder; give the name of the file to write", file=sys.stderr)
        return 2
    try:
        ckpt = exported(safe_load(args.checkpoint), ema=not args.raw_weights, fp16=args.fp16)
        atomic_save(ckpt, args.output)
    except (CheckpointError, OSError) as e:
        print(f"error: {args.checkpoint}: {e}" if str(args.checkpoint) not in str(e) else f"error: {e}",
              file=sys.stderr)
        return 2
    mb = args.output.stat().st_size / 2 ** 20
    print(f"wrote {args.output} ({mb:.2f} MiB, {ckpt['exported']['weights']} weights, "
          f"{ckpt['exported']['dtype']}, step {ckpt['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
