"""diffsep curves RUN... -o OUT.png: validation curves of runs against wall-clock time."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..evaluation.learning_curves import curves_figure, read_curves


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsep curves", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run folders (with metrics.jsonl)")
    p.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--keys", nargs="+", default=["val_si_sdri"], help="logged scalars to plot")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    runs = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            print(f"error: {run}: no metrics.jsonl", file=sys.stderr)
            return 2
        runs[run.name] = read_curves(run, args.keys)
        for key, points in runs[run.name].items():
            print(f"{run.name} {key}: " + ", ".join(f"{m:.0f} min {v:.2f}" for m, _, v in points))
    curves_figure(args.out, runs, args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
