"""The metrics registry: every measure evaluation can report, "higher is better".

A metric is one function and one entry in :data:`METRICS`. The function takes matched
estimates and references ``est, ref (K, C, N)`` (estimate k belongs to reference k), the
mixture ``mix (C, N)`` (None when there is none) and the sample rate, and returns one value per
source ``(K,)``. A row of the results holds the mean over the sources where the value is defined
(NaN: undefined, such as the SDR of a silent stem), and, for named sources (music stems), every
source's value as ``NAME_STEM``. The entry says which signals the metric applies to (speech;
music stems, with a function of its own where the benchmark's definition differs), whether it
needs the mixture, whether it is slow (perceptual: computed in worker processes) and what a
silent or non-finite estimate scores.

    METRICS["my_metric"] = Metric(speech=my_metric)   # and `diffsep evaluate --metrics my_metric`
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

SIGNALS = ("speech", "music")


@dataclass(frozen=True)
class Metric:
    speech: Callable | None = None  # fn(est, ref, mix, rate) -> (K,) on speech (None: n/a)
    music: Callable | None = None  # the same on music stems (None: n/a)
    needs_mix: bool = False  # not computed without a mixture
    perceptual: bool = False  # slow: computed in worker processes, left out by --no-perceptual
    degenerate: float | None = -math.inf  # score of a silent / NaN estimate (None: not computed)
    nan_reason: str = ""  # why a NaN value is excluded from the mean, for the result files
    mode: Callable[[int], str] | None = None  # how it runs at a rate (recorded as NAME_mode)

    def function(self, signal: str) -> Callable | None:
        return self.music if signal == "music" else self.speech


# -- the functions -------------------------------------------------------------------------------
def _torch(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).double().flatten(1)


def si_sdr_db(est, ref, mix, rate) -> np.ndarray:
    """SI-SDR (dB) of each source, the channels of a source taken as one signal."""
    from ..core.sdr import si_sdr

    return si_sdr(_torch(est), _torch(ref)).numpy()


def si_sdri_db(est, ref, mix, rate) -> np.ndarray:
    """SI-SDR improvement (dB) over the mixture taken as every source's estimate."""
    return si_sdr_db(est, ref, None, rate) - si_sdr_db(np.broadcast_to(mix, ref.shape), ref, None, rate)


def sdr_db(est, ref, mix, rate) -> np.ndarray:
    """BSS Eval SDR (dB) with 512-tap distortion filters over the whole signal (fast_bss_eval)."""
    from ..core.sdr import sdr

    return sdr(_torch(est), _torch(ref)).numpy()


def stem_sdr_db(est, ref, mix, rate) -> np.ndarray:
    """Music: BSS Eval v4 SDR (dB), median over 1 s frames (:mod:`diffsep.evaluation.bsseval`)."""
    from .bsseval import stem_sdrs

    return stem_sdrs(est, ref, rate)


def stem_sdri_db(est, ref, mix, rate) -> np.ndarray:
    """Music: BSS Eval v4 SDR improvement (dB) over the mixture taken as the stem's estimate."""
    return stem_sdr_db(est, ref, None, rate) - stem_sdr_db(np.broadcast_to(mix, ref.shape), ref, None, rate)


def _per_channel(measure: Callable, est, ref, rate) -> np.ndarray:
    """measure(e (N,), r (N,), rate) of each source, the mean over its channels. -> (K,)."""
    return np.array([np.mean([measure(e, r, rate) for e, r in zip(es, rs)]) for es, rs in zip(est, ref)])


def pesq_mode(sample_rate: int) -> tuple[str, int]:
    """(PESQ mode, rate it runs at): narrow-band at 8 kHz, wide-band at 16 kHz; other rates are
    resampled, to 8 kHz below 16 kHz and to 16 kHz from 16 kHz up."""
    if sample_rate < 16000:
        return "nb", 8000
    return "wb", 16000


def pesq(est, ref, sample_rate: int) -> float:
    """PESQ (ITU-T P.862 MOS-LQO) of one estimate against its reference, (N,) arrays. NaN when
    PESQ finds no speech in the reference."""
    from pesq import pesq as _pesq

    from ..storage.audio import resample

    mode, rate = pesq_mode(sample_rate)
    est, ref = np.asarray(est, np.float32)[None], np.asarray(ref, np.float32)[None]
    est, ref = resample(est, sample_rate, rate)[0], resample(ref, sample_rate, rate)[0]
    try:
        return float(_pesq(rate, ref.astype(np.float64), est.astype(np.float64), mode))
    except Exception:  # pesq.NoUtterancesError, too short inputs
        return float("nan")


def stoi(est, ref, sample_rate: int, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``) of one estimate against its reference, (N,) arrays."""
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(ref, np.float64), np.asarray(est, np.float64), sample_rate,
                       extended=extended))


def pesq_each(est, ref, mix, rate) -> np.ndarray:
    return _per_channel(pesq, est, ref, rate)


def estoi_each(est, ref, mix, rate) -> np.ndarray:
    return _per_channel(lambda e, r, sr: stoi(e, r, sr, extended=True), est, ref, rate)


def stoi_each(est, ref, mix, rate) -> np.ndarray:
    return _per_channel(stoi, est, ref, rate)


# -- the registry --------------------------------------------------------------------------------
METRICS: dict[str, Metric] = {
    "si_sdr": Metric(speech=si_sdr_db, music=si_sdr_db),
    "si_sdri": Metric(speech=si_sdri_db, music=si_sdri_db, needs_mix=True),
    "sdr": Metric(speech=sdr_db, music=stem_sdr_db),
    "sdri": Metric(music=stem_sdri_db, needs_mix=True),
    "pesq": Metric(speech=pesq_each, perceptual=True, degenerate=None, mode=lambda rate: pesq_mode(rate)[0],
                   nan_reason="PESQ found no speech: silent or too short reference or estimate"),
    "estoi": Metric(speech=estoi_each, perceptual=True, degenerate=None),
    "stoi": Metric(speech=stoi_each, perceptual=True, degenerate=None),
}


def choose_metrics(names: Sequence[str] | None, signal: str, perceptual: bool = True) -> tuple[str, ...]:
    """The metrics to compute on ``signal`` ("speech" or "music"): ``names`` in registry order
    (None: every metric that applies), without the perceptual ones unless ``perceptual``.
    Raises ValueError for an unknown name (listing the valid ones) or one that does not apply."""
    if names is None:
        names = [n for n, m in METRICS.items() if m.function(signal) is not None]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    wrong = [n for n in names if METRICS[n].function(signal) is None]
    if wrong:
        valid = [n for n, m in METRICS.items() if m.function(signal) is not None]
        raise ValueError(f"metric(s) {', '.join(wrong)} do not apply to {signal}; valid: {', '.join(valid)}")
    return tuple(n for n in METRICS if n in names and (perceptual or not METRICS[n].perceptual))
