"""Perceptual speech measures: PESQ (ITU-T P.862) and (E)STOI of one estimate against its
reference, "higher is better". (N,) arrays in, floats out."""
from __future__ import annotations


def pesq_mode(sample_rate: int) -> tuple[str, int]:
    """(PESQ mode, rate it runs at): narrow-band at 8 kHz, wide-band at 16 kHz; other rates are
    resampled, to 8 kHz below 16 kHz and to 16 kHz from 16 kHz up."""
    if sample_rate < 16000:
        return "nb", 8000
    return "wb", 16000


def pesq(est, ref, sample_rate: int) -> float:
    """PESQ (ITU-T P.862 MOS-LQO) of one estimate against its reference, (N,) arrays. NaN when
    PESQ finds no speech in the reference."""
    import numpy as np
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
    import numpy as np
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(ref, np.float64), np.asarray(est, np.float64), sample_rate,
                       extended=extended))
