"""Measure separators on a test split and print one markdown table (development tool).

    python tools/measure_models.py --data-root PATH/corpus --out eval/bundled \
        "convtasnet=--model convtasnet-small" \
        "diffsep ODE 10=--model diffsep-small --warm-start none --sampler ode --steps 10"

Each argument is LABEL=MODEL OPTIONS (the model, sampler, chunking and device options of
diffsep evaluate), scored on split tt of the wsj0-mix layout by default with
:func:`diffsep.evaluation.scoring.score_separator`; every run writes its result files in its own
folder under --out. The table gives the mean SI-SDRi, PESQ and ESTOI over the split, the network
evaluations and the overall real-time factor.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from diffsep.cli.common import add_model_args, check_model_args, chunking, load_separator
from diffsep.data import build_items
from diffsep.evaluation.scoring import score_separator

METRICS = ("si_sdri", "pesq", "estoi")


def model_options(text: str):
    """The options of one run, parsed as diffsep evaluate parses them."""
    p = argparse.ArgumentParser(prog="LABEL=", add_help=False)
    p.add_argument("--model", required=True)
    add_model_args(p)
    args = p.parse_args(shlex.split(text))
    check_model_args(p, args)
    return args


def measure(label: str, options: str, data_root: str, split: str, out: Path) -> str:
    """Score one separator on the split; write its result files under ``out``; its table row."""
    args = model_options(options)
    separator = load_separator(args)
    items = build_items("wsj0_mix", data_root, split, n_src=separator.n_src,
                        sample_rate=separator.sample_rate)
    scores = score_separator(separator, items, metrics=METRICS, separation=chunking(args), seed=args.seed,
                             jobs=1, on_error=lambda name, e: print(f"skipped {name}: {e}"))
    scores.write(out / re.sub(r"[^A-Za-z0-9_.-]+", "_", label), {"model": args.model, "split": split})
    s = scores.summary
    return (f"| {label} | {s['si_sdri']['mean']:.2f} | {s['pesq']['mean']:.2f} | {s['estoi']['mean']:.3f} | "
            f"{scores.info['nfe']} | {scores.info['rtf']:.3f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=MODEL OPTIONS")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="tt")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    rows = []
    for spec in a.runs:
        label, options = spec.split("=", 1)
        rows.append(measure(label, options, a.data_root, a.split, a.out))
        print(rows[-1], flush=True)
    print("\n| separator | SI-SDRi (dB) | PESQ | ESTOI | NFE | RTF |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
