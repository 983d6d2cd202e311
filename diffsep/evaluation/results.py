"""Scoring separated utterances: per-utterance metrics after permutation matching, PESQ / STOI in
a pool of worker processes, and the summary files (CSV, summary.json, markdown table).

Metric keys: si_sdr, si_sdri, sdr (dB), pesq, estoi, stoi; each is the mean over the scored
sources of one utterance.
"""
from __future__ import annotations

import csv
import json
import math
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..storage.atomic import write_text_atomic
from .metrics import pesq, pesq_mode, stoi
from ..core.sdr import pit_si_sdr, sdr, si_sdr

METRICS = ("si_sdr", "si_sdri", "sdr", "pesq", "estoi", "stoi")


def match_sources(est: np.ndarray, ref: np.ndarray, fixed_order: bool = False) -> np.ndarray:
    """Estimates reordered to match the references by SI-SDR (unless ``fixed_order``).
    est (K, N), ref (K, N) -> (K, N)."""
    if fixed_order:
        return est
    _, perm = pit_si_sdr(torch.from_numpy(est)[None].double(), torch.from_numpy(ref)[None].double())
    return est[perm[0].numpy()]


def degenerate(est: np.ndarray, n_scored: int | None = None) -> str | None:
    """Why the first ``n_scored`` estimates (K, N) cannot be scored, or None: a silent estimate
    (no signal at all) or non-finite samples."""
    for k, e in enumerate(est[:n_scored or est.shape[0]]):
        if not np.isfinite(e).all():
            return f"estimate s{k + 1} has NaN or Inf samples"
        if not np.any(e):
            return f"estimate s{k + 1} is silent"
    return None


def signal_metrics(est: np.ndarray, ref: np.ndarray, mix: np.ndarray | None,
                   n_scored: int | None = None) -> dict:
    """SI-SDR, SI-SDRi (when the mixture is given) and SDR, averaged over the first ``n_scored``
    sources (all by default) of already matched est, ref (K, N); mix (N,). A degenerate estimate
    (see :func:`degenerate`) scores −inf dB: its eps-regularised SI-SDR would read about 0 dB,
    the score of the unprocessed mixture."""
    k = n_scored or ref.shape[0]
    if degenerate(est, k):
        out = {"si_sdr": -math.inf, "sdr": -math.inf}
        return {**out, "si_sdri": -math.inf} if mix is not None else out
    e, r = torch.from_numpy(est[:k]).double(), torch.from_numpy(ref[:k]).double()
    out = {"si_sdr": si_sdr(e, r).mean().item(), "sdr": sdr(e, r).mean().item()}
    if mix is not None:
        m = torch.from_numpy(mix).double().expand_as(r)
        out["si_sdri"] = out["si_sdr"] - si_sdr(m, r).mean().item()
    return out


def stem_metrics(est: np.ndarray, ref: np.ndarray, mix: np.ndarray | None, sample_rate: int,
                 stems) -> dict:
    """Music, in the stems' fixed order: per stem the BSS Eval v4 SDR (median over 1 s frames,
    see :mod:`diffsep.bsseval`), its improvement over the mixture taken as the stem's estimate
    (``sdri_``), and the SI-SDR of all channels together; ``sdr`` / ``sdri`` / ``si_sdr`` are
    means over stems and ``si_sdri`` the gain of SI-SDR over the mixture.
    est, ref (K, C, N); mix (C, N) or None."""
    from .bsseval import stem_sdrs

    e, r = torch.from_numpy(est).double().flatten(1), torch.from_numpy(ref).double().flatten(1)
    si, sdr_k = si_sdr(e, r).numpy(), stem_sdrs(est, ref, sample_rate)
    out = {}
    for name, v_sdr, v_si in zip(stems, sdr_k, si):
        out[f"sdr_{name}"], out[f"si_sdr_{name}"] = float(v_sdr), float(v_si)
    out["sdr"], out["si_sdr"] = float(np.nanmean(sdr_k)), float(si.mean())
    if mix is not None:
        sdr_mix = stem_sdrs(np.broadcast_to(mix, est.shape), ref, sample_rate)
        for name, a, b in zip(stems, sdr_k, sdr_mix):
            out[f"sdri_{name}"] = float(a - b)
        out["sdri"] = float(np.nanmean(sdr_k - sdr_mix))
        m = torch.from_numpy(mix).double().flatten()[None].expand_as(r)
        out["si_sdri"] = out["si_sdr"] - si_sdr(m, r).mean().item()
    return out


def perceptual_metrics(est: np.ndarray, ref: np.ndarray, sample_rate: int,
                       n_scored: int | None = None) -> dict:
    """PESQ, ESTOI and STOI averaged over the first ``n_scored`` sources of matched (K, N) arrays.
    Runs in a worker process."""
    k = n_scored or ref.shape[0]
    vals = {"pesq": [], "estoi": [], "stoi": []}
    for e, r in zip(est[:k], ref[:k]):
        vals["pesq"].append(pesq(e, r, sample_rate))
        vals["estoi"].append(stoi(e, r, sample_rate, extended=True))
        vals["stoi"].append(stoi(e, r, sample_rate))
    return {key: float(np.mean(v)) for key, v in vals.items()}


def summarize(values) -> dict:
    """mean, median, std, 95 % confidence interval of the mean (Student t) and count of the finite
    values."""
    x = np.asarray([v for v in values if _finite(v)], dtype=np.float64)
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


class Evaluator:
    """Collects per-utterance results; PESQ / STOI run in ``jobs`` worker processes (0: inline).

    add(name, est, ref, mix, sample_rate, **extra) scores one utterance (est, ref (K, N) at the
    same rate; mix (N,) or None); finish(out_dir) waits for the workers and writes
    results.csv, summary.json and summary.md.
    """

    def __init__(self, jobs: int = 2, fixed_order: bool = False, n_scored: int | None = None,
                 perceptual: bool = True, stems=()):
        self.stems = tuple(stems)
        perceptual = perceptual and not self.stems  # PESQ / STOI are speech measures
        self.fixed_order, self.n_scored, self.perceptual = fixed_order or bool(self.stems), n_scored, perceptual
        self.rows: list[dict] = []
        self.pending: list[tuple[dict, Future]] = []
        self.pool: Executor | None = ProcessPoolExecutor(jobs) if perceptual and jobs > 0 else None
        self.pesq_modes: set[str] = set()

    def add(self, name: str, est: np.ndarray, ref: np.ndarray, mix: np.ndarray | None,
            sample_rate: int, **extra) -> np.ndarray:
        """Score one utterance; returns the matched estimates (K, N)."""
        if est.shape != ref.shape:
            raise ValueError(f"{name}: estimates {est.shape} and references {ref.shape} differ")
        problem = degenerate(est, self.n_scored if self.fixed_order else None)  # PIT may pick any
        est = est if problem else match_sources(est, ref, self.fixed_order)
        if self.stems and not problem:
            row = {"name": name, **stem_metrics(est, ref, mix, sample_rate, self.stems), **extra}
        else:
            row = {"name": name, **signal_metrics(est, ref, mix, self.n_scored), **extra}
        if problem:
            row["problem"] = problem
        self.rows.append(row)
        if self.perceptual and not problem:
            self.pesq_modes.add(pesq_mode(sample_rate)[0])
            args = (est, ref, sample_rate, self.n_scored)
            if self.pool is None:
                row.update(perceptual_metrics(*args))
            else:
                self.pending.append((row, self.pool.submit(perceptual_metrics, *args)))
        return est

    def close(self) -> None:
        for row, fut in self.pending:
            row.update(fut.result())
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def summary(self) -> dict:
        """Per metric: :func:`summarize` of the finite values, plus ``excluded``: the utterances
        left out of that metric's mean, with the reason."""
        self.close()
        out = {}
        per_stem = ["sdri"] + [f"{m}_{s}" for s in self.stems for m in ("sdr", "sdri", "si_sdr")]
        for key in (*METRICS, *per_stem):
            if self.perceptual and key in ("pesq", "estoi", "stoi") or any(key in r for r in self.rows):
                out[key] = summarize(r.get(key) for r in self.rows)
                out[key]["excluded"] = {r["name"]: _why_excluded(r, key) for r in self.rows
                                        if not _finite(r.get(key))}
        return out

    def real_time_factor(self) -> float | None:
        """Total separation time / total audio duration of the timed utterances (None: none)."""
        timed = [r for r in self.rows if "runtime_s" in r and "duration_s" in r]
        if not timed:
            return None
        return sum(r["runtime_s"] for r in timed) / sum(r["duration_s"] for r in timed)

    def finish(self, out_dir: Path, info: dict | None = None) -> dict:
        """Write results.csv, summary.json (per metric key: mean, median, std, ci95, count; plus
        ``info``, with the overall real-time factor ``rtf`` of timed utterances) and summary.md.
        Returns the summary."""
        summary = self.summary()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        keys = ["name"] + [k for k in METRICS if k in summary]
        keys += sorted({k for r in self.rows for k in r} - set(keys))
        write_text_atomic(out_dir / "results.csv", _csv_text(self.rows, keys))
        meta = {**(info or {}), "utterances": len(self.rows)}
        rtf = self.real_time_factor()
        if rtf is not None:
            meta["rtf"] = rtf
        if self.pesq_modes:
            meta["pesq_mode"] = "/".join(sorted(self.pesq_modes))
        write_text_atomic(out_dir / "summary.json", json.dumps({**summary, "info": meta}, indent=2) + "\n")
        write_text_atomic(out_dir / "summary.md", markdown_table(summary))
        return summary


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _why_excluded(row: dict, key: str) -> str:
    if row.get("problem"):
        return row["problem"]
    v = row.get(key)
    if key == "pesq" and v is not None:
        return f"pesq is {v} (PESQ found no speech: silent or too short reference or estimate)"
    return f"{key} is {v}" if v is not None else f"{key} not computed"


def markdown_table(summary: dict) -> str:
    """The summary as a markdown table; ``count`` is the number of utterances in each mean and
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
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
