"""diffsep curves RUN... -o OUT.png: validation curves of runs against wall-clock time (the figure's
format follows OUT's suffix: .png, .jpg, .pdf, .svg ...). RUN_A+RUN_B+...: one curve of a model
trained in stages (each run started from the previous one's weights), joined end to end."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..evaluation.learning_curves import curves_figure, read_stages
from .common import error_line


def run_labels(runs: list[Path]) -> list[str]:
    """A distinct label per run folder: its name, with as many parent folders as it takes to tell
    runs of the same name apart (a/run, b/run), and a count for a folder given twice."""
    resolved = [run.resolve().parts for run in runs]
    labels = []
    for parts in resolved:
        depth = 1
        while depth < len(parts) - 1 and any(other != parts and other[-depth:] == parts[-depth:]
                                             for other in resolved):
            depth += 1
        label = "/".join(parts[-depth:])
        labels.append(label if label not in labels else f"{label} ({labels.count(label) + 1})")
    return labels


def main(argv=None) -> int:
    from ..evaluation.figures import figure_format

    p = argparse.ArgumentParser(prog="diffsep curves", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run folders (with metrics.jsonl); A+B+...: stages of one model")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="figure to write (PNG; .jpg, .pdf, .svg ... by the suffix)")
    p.add_argument("--keys", nargs="+", default=["val_si_sdri"], help="logged scalars to plot")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    if args.out.is_dir():
        p.error(f"argument -o/--out: {args.out} is a folder; give the figure's file name")
    try:
        figure_format(args.out)
    except ValueError as e:
        p.error(f"argument -o/--out: {e}")
    runs = {}
    for run, label in zip(args.runs, run_labels(args.runs)):
        stages = [Path(part) for part in str(run).split("+")]
        if len(stages) > 1:
            label = "+".join(st.name for st in stages)
        missing = [st for st in stages if not (st / "metrics.jsonl").is_file()]
        if missing:
            print(f"error: {missing[0]}: no metrics.jsonl", file=sys.stderr)
            return 2
        try:
            runs[label] = read_stages(stages, args.keys)
        except (ValueError, OSError) as e:
            print(f"error: {run / 'metrics.jsonl'}: unreadable ({error_line(e)})", file=sys.stderr)
            return 2
        for key, points in runs[label].items():
            print(f"{label} {key}: " + ", ".join(f"{m:.0f} min {v:.2f}" for m, _, v in points))
    try:
        curves_figure(args.out, runs, args.title)
    except OSError as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
