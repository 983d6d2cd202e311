"""diffsep export CHECKPOINT OUTPUT [--fp16]: an inference-only copy of a trained model (EMA
weights and config, no optimizer or RNG state), optionally stored as float16."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..inference.packaging import exported
from ..storage.checkpoint import CheckpointError, atomic_save, safe_load


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsep export", description=__doc__)
    p.add_argument("checkpoint", type=Path, help="a training checkpoint (last.pt, best.pt ...)")
    p.add_argument("output", type=Path, help="the file to write")
    p.add_argument("--fp16", action="store_true", help="store floating-point weights as float16")
    p.add_argument("--raw-weights", action="store_true", help="export the raw weights, not the EMA")
    args = p.parse_args(argv)
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
