"""Learning curves against wall-clock time from runs' ``metrics.jsonl``.

    diffsep curves runs/small runs/convtasnet_small -o docs/curves.png \
        --keys val_si_sdri val_tt_si_sdri

``RUN_A+RUN_B`` joins the stages of a model trained in steps (:func:`read_stages`).

Training records carry ``time`` (seconds since the process started; a resumed run starts again at
0, so times are accumulated across restarts); validation records are placed at the time of the
training record of the same or the nearest earlier step.
"""
from __future__ import annotations

import bisect
import json
from pathlib import Path


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if ln]


def _clock(records: list[dict]) -> dict[int, float]:
    """{step: seconds} of the training records, with times accumulated across restarts."""
    clock, offset, last_time = {}, 0.0, 0.0
    for r in records:
        if "time" in r:
            if r["time"] < last_time:  # a resumed process: its clock restarted
                offset += last_time
            last_time = r["time"]
            clock[r["step"]] = offset + r["time"]
    return clock


def _curves(records: list[dict], clock: dict[int, float], keys: list[str]) -> dict[str, list]:
    steps = sorted(clock)
    out: dict[str, list] = {k: [] for k in keys}
    for r in records:
        for k in keys:
            if k in r:
                i = bisect.bisect_right(steps, r["step"])  # the last training record at or before
                seconds = clock[steps[i - 1]] if i else 0.0
                out[k].append((seconds / 60, r["step"], float(r[k])))
    return {k: v for k, v in out.items() if v}


def read_curves(run_dir: Path, keys: list[str]) -> dict[str, list[tuple[float, int, float]]]:
    """{key: [(minutes, step, value), ...]} for every key the run logged."""
    records = _records(run_dir)
    return _curves(records, _clock(records), keys)


def read_stages(run_dirs: list[Path], keys: list[str]) -> dict[str, list[tuple[float, int, float]]]:
    """:func:`read_curves` of runs that continue one another (each started from the previous one's
    weights, ``train.init_from``), joined end to end: each stage's minutes and steps follow the
    previous stage's last training record."""
    out: dict[str, list] = {k: [] for k in keys}
    minutes, steps = 0.0, 0
    for run in run_dirs:
        records = _records(run)
        clock = _clock(records)
        for k, points in _curves(records, clock, keys).items():
            out[k] += [(m + minutes, st + steps, v) for m, st, v in points]
        if clock:
            last = max(clock)
            minutes, steps = minutes + clock[last] / 60, steps + last
    return {k: v for k, v in out.items() if v}


def curves_figure(path: Path, runs: dict[str, dict], title: str = "") -> None:
    """One line per (run, key): value against minutes of training. ``runs``: {label: read_curves(...)}."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .figures import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curves in runs.items():
        for key, points in curves.items():
            ax.plot([p[0] for p in points], [p[2] for p in points], marker="o", ms=3, label=f"{label}: {key}")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("dB")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path, dpi=90)
