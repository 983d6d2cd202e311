"""Result files of a scoring run: per-item rows (results.csv), per-metric statistics with the items
left out of each mean and why (summary.json, with an ``info`` block) and a markdown table
(summary.md). The rows come from :mod:`diffsep.evaluation.scoring`."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ..storage.atomic import write_text_atomic


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def summarize(values) -> dict:
    """mean, median, std, 95 % confidence interval of the mean (Student t) and count of the finite
    values."""
    x = np.asarray([v for v in values if finite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": None, "median": None, "std": None, "ci95": None, "count": 0}
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = 0.0
    if n > 1:
        from scipy.stats import t

        half = float(t.ppf(0.975, n - 1) * std / math.sqrt(n))
    mean = float(x.mean())
    return {"mean": mean, "median": float(np.median(x)), "std": std,
            "ci95": [mean - half, mean + half], "count": n}


def summary_of(rows: list[dict], keys, reasons: dict[str, str] | None = None) -> dict:
    """Per key: :func:`summarize` of the rows' finite values, plus ``excluded``: {item name: why it
    is left out of that mean} (the row's ``problem``, ``reasons[key]`` for NaN, or the value)."""
    out = {}
    for key in keys:
        out[key] = summarize(r.get(key) for r in rows)
        out[key]["excluded"] = {r["name"]: _why_excluded(r, key, (reasons or {}).get(key, ""))
                                for r in rows if not finite(r.get(key))}
    return out


def _why_excluded(row: dict, key: str, nan_reason: str) -> str:
    if row.get("problem"):
        return row["problem"]
    v = row.get(key)
    if v is None:
        return f"{key} not computed"
    return f"{key} is {v} ({nan_reason})" if nan_reason and math.isnan(v) else f"{key} is {v}"


def write_results(out_dir: Path, rows: list[dict], summary: dict, info: dict) -> None:
    """OUT/results.csv (the summary's keys first), OUT/summary.json ({**summary, "info": info})
    and OUT/summary.md, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ["name"] + list(summary)
    keys += sorted({k for r in rows for k in r} - set(keys))
    write_text_atomic(out_dir / "results.csv", _csv_text(rows, keys))
    write_text_atomic(out_dir / "summary.json", json.dumps({**summary, "info": info}, indent=2) + "\n")
    write_text_atomic(out_dir / "summary.md", markdown_table(summary))


def markdown_table(summary: dict) -> str:
    """The summary as a markdown table; ``count`` is the number of items in each mean and
    ``excluded`` how many were left out (the reasons are in summary.json)."""
    lines = ["| metric | mean | 95% CI | median | std | count | excluded |",
             "|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        excluded = len(s.get("excluded", {}))
        if s["count"] == 0:
            lines.append(f"| {key} | – | – | – | – | 0 | {excluded} |")
            continue
        lo, hi = s["ci95"]
        lines.append(f"| {key} | {s['mean']:.3f} | [{lo:.3f}, {hi:.3f}] | {s['median']:.3f} | "
                     f"{s['std']:.3f} | {s['count']} | {excluded} |")
    excluded = sorted({(n, r) for s in summary.values() for n, r in s.get("excluded", {}).items()})
    if excluded:
        lines += ["", "Excluded from means:"] + [f"- {n}: {r}" for n, r in excluded[:10]]
        lines += [f"- ... {len(excluded) - 10} more in summary.json"] if len(excluded) > 10 else []
    return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict], keys: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
