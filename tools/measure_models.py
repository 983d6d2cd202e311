"""Measure separators on a test split and print one markdown table (development tool).

    python tools/measure_models.py --data-root PATH/corpus --out eval/bundled \
        "convtasnet=--model convtasnet-small" \
        "diffsep ODE 10=--model diffsep-small --warm-start none --sampler ode --steps 10"

Each argument is LABEL=EVALUATE OPTIONS (diffsep evaluate options, split tt of the
wsj0-mix layout by default); every run writes its own folder under --out. The table gives the
mean SI-SDRi, PESQ and ESTOI over the split, the network evaluations and the overall real-time
factor.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

from diffsep.cli.evaluate import main as evaluate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=EVALUATE OPTIONS")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="tt")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    rows = []
    for spec in a.runs:
        label, options = spec.split("=", 1)
        out = a.out / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        evaluate(shlex.split(options) + ["--data-root", a.data_root, "--split", a.split, "--out", str(out),
                                         "--quiet", "--jobs", "1"])
        s = json.loads((out / "summary.json").read_text())
        rows.append(f"| {label} | {s['si_sdri']['mean']:.2f} | {s['pesq']['mean']:.2f} | "
                    f"{s['estoi']['mean']:.3f} | {s['info']['nfe']} | {s['info']['rtf']:.3f} |")
        print(rows[-1], flush=True)
    print("\n| separator | SI-SDRi (dB) | PESQ | ESTOI | NFE | RTF |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
