"""One scoring path: a separator on dataset items (:func:`score_separator`) or estimates against
references (:func:`score_estimates`: folders of any separator's outputs), with the metrics chosen
from :mod:`diffsep.evaluation.metrics`. Training validation, ``diffsep evaluate``, the overfit
bench and tools/measure_models.py all score through here.

Per item: the estimates are matched to the references by SI-SDR (unless in a fixed order), the
first ``n_scored`` sources are scored, every chosen metric is computed (perceptual ones in worker
processes). A silent or non-finite estimate is not matched and scores each metric's
``degenerate`` value (−inf dB: its eps-regularised SI-SDR would read about 0 dB, the score of the
unprocessed mixture); a separator's own NaN / Inf estimate fails its item instead (see
:func:`score_separator`). An item that cannot be read or separated is reported and skipped.

Signals inside: estimates and references (K, C, N), mixtures (C, N); (K, N) and (N,) are taken
as C = 1.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..core.sdr import pit_si_sdr
from .metrics import METRICS, choose_metrics
from .results import summary_of, write_results

# (name, load): load() -> (est (K, C, N), ref (K, C, N), mix (C, N) | None, rate, extra: dict)
Example = tuple[str, Callable[[], tuple]]
ITEM_ERRORS = (OSError, RuntimeError, ValueError)  # a bad item: reported and skipped


@dataclass(frozen=True)
class Scoring:
    """What is scored: ``metrics`` (None: every one that applies to the signal; ``perceptual``
    False leaves out the slow ones), in a fixed source order or after the best permutation, only
    the first ``n_scored`` sources (None: all). Named ``stems`` make the signal music (scored in
    their order, one column per stem and metric); ``per_source`` adds such columns (s1 ... sK)
    for unnamed sources."""
    metrics: tuple[str, ...] | None = None
    perceptual: bool = True
    fixed_order: bool = False
    n_scored: int | None = None
    stems: tuple[str, ...] = ()
    per_source: bool = False

    @property
    def signal(self) -> str:
        return "music" if self.stems else "speech"


@dataclass
class Scores:
    """Per-item ``rows`` ({name, metric: value, ..., extra}), the ``summary`` (per metric key:
    mean, median, std, ci95, count, excluded), the items that ``failed`` {name: message} and
    ``info`` on how they were scored."""
    rows: list[dict]
    summary: dict
    failed: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def mean(self, key: str) -> float:
        """Plain mean of ``key`` over the scored items, a −inf (degenerate) item included; NaN
        when no item has it."""
        values = [r[key] for r in self.rows if key in r]
        return float(np.mean(values)) if values else float("nan")

    def write(self, out_dir: Path, info: dict | None = None) -> None:
        """OUT/results.csv, summary.json (with ``info``) and summary.md."""
        write_results(out_dir, self.rows, self.summary, {**self.info, **(info or {})})


def match_sources(est: np.ndarray, ref: np.ndarray, fixed_order: bool = False) -> np.ndarray:
    """Estimates reordered to match the references by SI-SDR (unless ``fixed_order``).
    est, ref (K, ...) -> (K, ...)."""
    if fixed_order:
        return est
    e, r = (torch.from_numpy(np.ascontiguousarray(x)).double().flatten(1)[None] for x in (est, ref))
    return est[pit_si_sdr(e, r)[1][0].numpy()]


def degenerate(est: np.ndarray) -> str | None:
    """Why estimates (K, ...) cannot be scored, or None: one is silent (constant: no signal beyond
    a DC offset, such as zeros after denormalisation) or has NaN / Inf samples."""
    for k, e in enumerate(est):
        if not np.isfinite(e).all():
            return f"estimate s{k + 1} has NaN or Inf samples"
        if np.ptp(e) == 0:
            return f"estimate s{k + 1} is silent"
    return None


def compute(functions: dict[str, Callable], est, ref, mix, rate: int, names=None) -> dict:
    """{key: mean over sources} of each metric function (and ``key_NAME`` per source when
    ``names`` are given); the mean leaves out NaN sources. Runs in worker processes too."""
    row = {}
    for key, fn in functions.items():
        v = np.asarray(fn(est, ref, mix, rate), dtype=np.float64)
        defined = v[~np.isnan(v)]
        row[key] = float(defined.mean()) if defined.size else float("nan")
        if names:
            row.update({f"{key}_{n}": float(x) for n, x in zip(names, v)})
    return row


def _channels(x: np.ndarray | None, ndim: int) -> np.ndarray | None:
    """(K, N) -> (K, 1, N), (N,) -> (1, N): the channel axis of mono signals."""
    x = None if x is None else np.asarray(x)
    return x if x is None or x.ndim == ndim else x[..., None, :]


class Scorer:
    """Rows of scored items: :meth:`add` one item, :meth:`result` at the end. Perceptual metrics
    run in ``jobs`` worker processes (0: inline). Raises ValueError for metrics unknown or not
    applying to the signal, before any work."""

    def __init__(self, scoring: Scoring = Scoring(), jobs: int = 0):
        self.scoring = scoring
        self.metrics = choose_metrics(scoring.metrics, scoring.signal, scoring.perceptual)
        self.fixed_order = scoring.fixed_order or bool(scoring.stems)
        slow = any(METRICS[m].perceptual for m in self.metrics)
        self.pool: Executor | None = ProcessPoolExecutor(jobs) if slow and jobs > 0 else None
        self.rows: list[dict] = []
        self.pending: list[tuple[dict, Future]] = []
        self.source_keys: dict[str, str] = {}  # per-source column -> its metric
        self.modes: dict[str, set] = {}

    def add(self, name: str, est, ref, mix, rate: int, **extra) -> np.ndarray:
        """Score one item: est, ref (K, C, N) or (K, N), mix (C, N), (N,) or None, at ``rate``.
        Returns the matched estimates (K, C, N)."""
        est, ref, mix = _channels(est, 3), _channels(ref, 3), _channels(mix, 2)
        if est.shape != ref.shape:
            raise ValueError(f"{name}: estimates {est.shape} and references {ref.shape} differ")
        k = self.scoring.n_scored or ref.shape[0]
        problem = degenerate(est[:k] if self.fixed_order else est)  # PIT may pick any estimate
        est = est if problem else match_sources(est, ref, self.fixed_order)
        chosen = {m: METRICS[m] for m in self.metrics if mix is not None or not METRICS[m].needs_mix}
        row = {"name": name}
        if problem:
            row.update({m: e.degenerate for m, e in chosen.items() if e.degenerate is not None})
            self.rows.append({**row, "problem": problem, **extra})
            return est
        named = self.scoring.stems or self.scoring.per_source
        names = self._source_names(ref.shape[0])[:k] if named else None
        for m, e in chosen.items():
            if e.mode is not None:
                self.modes.setdefault(f"{m}_mode", set()).add(e.mode(rate))
            self.source_keys.update({f"{m}_{n}": m for n in names or ()})
        args = (est[:k], ref[:k], mix, rate, names)
        fast = {m: e.function(self.scoring.signal) for m, e in chosen.items() if not e.perceptual}
        slow = {m: e.function(self.scoring.signal) for m, e in chosen.items() if e.perceptual}
        row.update(compute(fast, *args))
        self.rows.append(row)
        if slow and self.pool is not None:
            self.pending.append((row, self.pool.submit(compute, slow, *args)))
        elif slow:
            row.update(compute(slow, *args))
        row.update(extra)
        return est

    def _source_names(self, K: int) -> list[str]:
        return list(self.scoring.stems) or [f"s{k + 1}" for k in range(K)]

    def close(self) -> None:
        """Wait for the workers and stop them."""
        try:
            for row, fut in self.pending:
                row.update(fut.result())
        finally:
            self.pending.clear()
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
                self.pool = None

    def result(self, failed: dict[str, str] | None = None) -> Scores:
        """The rows, their summary (the chosen metrics, then the per-source columns) and info."""
        self.close()
        keys = [m for m in self.metrics if any(m in r for r in self.rows) or not METRICS[m].needs_mix]
        keys += [key for key in self.source_keys if any(key in r for r in self.rows)]
        reasons = {key: METRICS[self.source_keys.get(key, key)].nan_reason for key in keys}
        info = {"metrics": list(self.metrics), "fixed_order": self.fixed_order,
                "scored_sources": self.scoring.n_scored or "all", "utterances": len(self.rows),
                "failed": len(failed or {}), **{k: "/".join(sorted(v)) for k, v in self.modes.items()}}
        timed = [r for r in self.rows if "runtime_s" in r and "duration_s" in r]
        if timed:  # overall real-time factor, not a mean of ratios
            info["rtf"] = sum(r["runtime_s"] for r in timed) / sum(r["duration_s"] for r in timed)
        return Scores(self.rows, summary_of(self.rows, keys, reasons), dict(failed or {}), info)


def score_item(est, ref, mix, rate: int, scoring: Scoring = Scoring()) -> dict:
    """The row of one item (see :meth:`Scorer.add`), perceptual metrics computed inline."""
    scorer = Scorer(scoring)
    scorer.add("item", est, ref, mix, rate)
    return scorer.result().rows[0]


def score_estimates(examples: Iterable[Example], scoring: Scoring = Scoring(), *, jobs: int = 0,
                    on_error: Callable[[str, str], None] | None = None,
                    on_item: Callable | None = None, progress: bool = False) -> Scores:
    """Score each example (name, load) (see :data:`Example`).

    on_error(name, message): called for an item that cannot be loaded or scored, which is then
        skipped (listed in ``failed``); None: the error is raised.
    on_item(index, name, est, ref, mix, rate): called after scoring an item with its matched
        estimates (K, C, N) (to write examples); its errors count as the item's.
    """
    from tqdm import tqdm

    scorer, failed = Scorer(scoring, jobs), {}
    try:
        for i, (name, load) in enumerate(tqdm(examples, desc="evaluate", unit="item", disable=not progress)):
            try:
                est, ref, mix, rate, extra = load()
                est = scorer.add(name, est, ref, mix, rate, **extra)
                if on_item is not None:
                    on_item(i, name, est, _channels(ref, 3), _channels(mix, 2), rate)
            except ITEM_ERRORS as e:
                if on_error is None:
                    raise
                failed[name] = str(e)
                on_error(name, str(e))
    finally:
        scorer.close()
    return scorer.result(failed)


def dataset_scoring(items, separator) -> Scoring:
    """How a separator's outputs on dataset items are scored: in a fixed order when the model was
    trained in one (enhancement) or when the layout derives its last source from the mixture
    (VoiceBank-DEMAND's noise; then only the other sources, the speech, are scored); music stems
    by name."""
    derived = any(item.noise_from_mix for item in items)
    return Scoring(fixed_order=separator.fixed_order or derived,
                   n_scored=separator.n_src - 1 if derived else None,
                   stems=tuple(getattr(separator, "stems", ())))


def score_separator(separator, items: Sequence, *, crop: int | None = None,
                    metrics: Sequence[str] | None = None, perceptual: bool = True,
                    fixed_order: bool = False, n_scored: int | None = None, per_source: bool = False,
                    separation: dict | None = None, seed: int = 0, jobs: int = 0,
                    on_error: Callable[[str, str], None] | None = None, on_item: Callable | None = None,
                    progress: bool = False, nonfinite_fails: bool = True) -> Scores:
    """Separate dataset items with ``separator`` and score the estimates.

    Args:
        separator: a :class:`~diffsep.inference.separator.Separator` (n_src, sample_rate,
            channels, fixed_order, stems, nfe, info, generator), raw-scale audio in.
        items: :class:`~diffsep.data.dataset.Item` s, read at the separator's sample rate by the
            rule of :mod:`diffsep.data.reading` (a file at another rate is resampled with soxr),
            and scored at that rate; ``crop``: only their first ``crop`` samples (None: whole).
        metrics, perceptual, per_source: see :class:`Scoring`.
        fixed_order, n_scored: forced on top of what the model and the items imply (see
            :func:`dataset_scoring`).
        separation: options of :func:`~diffsep.inference.loading.separate_signal` (chunk_seconds,
            overlap_seconds, batch_size); default: each item whole.
        seed: item i is separated with the separator's generator seeded to ``seed + i``, so that
            an item's estimate does not depend on the items before it.
        jobs, on_error, on_item, progress: see :func:`score_estimates`.
        nonfinite_fails: an item whose estimate has NaN or Inf samples fails (reported through
            ``on_error``, or raised without it); False: it is scored as degenerate (−inf dB), as
            training validation does, so that a diverged model is never the best.

    Returns: :class:`Scores`; each row also has runtime_s, duration_s, rtf and nfe, and ``info``
    the overall rtf, nfe and the separator's info.
    """
    base = dataset_scoring(items, separator)
    scoring = Scoring(tuple(metrics) if metrics is not None else None, perceptual,
                      fixed_order or base.fixed_order, n_scored or base.n_scored, base.stems, per_source)
    examples = separation_examples(separator, items, crop=crop, seed=seed, separation=separation,
                                   nonfinite_fails=nonfinite_fails)
    scores = score_estimates(examples, scoring, jobs=jobs, on_error=on_error, on_item=on_item,
                             progress=progress)
    scores.info.update(nfe=getattr(separator, "nfe", 1), **getattr(separator, "info", {}))
    return scores


def separation_examples(separator, items: Sequence, *, crop: int | None = None, seed: int = 0,
                        separation: dict | None = None, nonfinite_fails: bool = True) -> list[Example]:
    """The :data:`Example` s that :func:`score_separator` scores: item i separated (when loaded)
    with the generator seeded to ``seed + i``; loading one again separates it again, the same way
    (to listen to a few items after scoring without keeping every estimate)."""
    return [(item.name, partial(_separated, separator, item, crop, seed + i, separation, nonfinite_fails))
            for i, item in enumerate(items)]


def _separated(separator, item, crop: int | None, seed: int, separation: dict | None,
               finite: bool = True) -> tuple:
    """An :data:`Example`'s load of one item separated by ``separator``."""
    from ..data.reading import read_item
    from ..inference.loading import separate_signal
    from ..storage.audio import AudioError

    rate = separator.sample_rate
    mix, refs = read_item(item, rate, getattr(separator, "channels", 1), 0, crop)
    if len(refs) != separator.n_src:
        raise AudioError(f"{item.mix}: {len(refs)} references for a {separator.n_src}-source model")
    generator = getattr(separator, "generator", None)
    if generator is not None:
        generator.manual_seed(seed)
    cuda = torch.device(getattr(separator, "device", "cpu")).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    est = separate_signal(separator, mix, rate, finite=finite, **(separation or {"chunk_seconds": 0.0}))
    if cuda:
        torch.cuda.synchronize()
    runtime, duration = time.perf_counter() - t0, mix.shape[-1] / rate
    extra = {"runtime_s": runtime, "duration_s": duration, "rtf": runtime / duration,
             "nfe": getattr(separator, "nfe", 1)}
    return est.reshape(refs.shape), refs, mix, rate, extra


def dataset_items(separator, root, *, kind=None, split=None, mode=None, mixture=None, sample_rate=None):
    """The items a model is scored on and what they are: the layout, its options and the test
    split are the model's own data settings (``separator.dataset``) unless given, so a model
    trained on musdb is scored as music without naming the layout. -> (items, {dataset, split})."""
    from ..data.layouts import LAYOUTS, build_items

    given = {"kind": kind, "test_split": split, "mode": mode, "mixture": mixture}
    d = {**{"kind": "wsj0_mix"}, **separator.dataset, **{k: v for k, v in given.items() if v is not None}}
    if d["kind"] not in LAYOUTS:
        raise ValueError(f"unknown data.kind {d['kind']!r}; valid: {', '.join(LAYOUTS)}")
    split = d.get("test_split") or LAYOUTS[d["kind"]].splits["test"]
    options = {k: d[k] for k in ("mode", "mixture", "valid_tracks") if d.get(k)}
    stems = separator.stems or d.get("stems")
    items = build_items(d["kind"], root, split, n_src=separator.n_src, sample_rate=sample_rate or separator.sample_rate,
                        **options, **({"stems": stems} if stems else {}))
    return items, {"dataset": d["kind"], "split": split}
