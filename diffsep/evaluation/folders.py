"""Estimates in folders against references in folders (any separator's outputs, the wsj0-mix
layout): the :data:`~diffsep.evaluation.scoring.Example` s that
:func:`~diffsep.evaluation.scoring.score_estimates` scores. Loading is deferred, so that one bad
utterance is reported and skipped, not fatal.

The references set the rate: estimates and mixtures at another rate are resampled to it with
soxr, and may differ from the references in length by up to
:data:`~diffsep.data.reading.LENGTH_TOLERANCE_S` (cropped or zero-padded), as dataset sources
may from their mixture (:mod:`diffsep.data.reading`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.layouts import LayoutError
from ..data.reading import check_length, clip_info, read_clip
from ..storage.audio import AUDIO_EXTENSIONS, AudioError, audio_info
from .scoring import Example


def find_audio(folder: Path, name: str) -> Path:
    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    raise AudioError(f"{folder / name}.wav: no such file")


def reference_names(ref_dir: Path) -> tuple[list[str], int]:
    """Utterance names (from R/s1) and the number of sources (R/s1, R/s2, ...)."""
    if not (ref_dir / "s1").is_dir():
        raise LayoutError(f"{ref_dir}: no s1/ folder (expected the wsj0-mix layout s1/ ... sK/)")
    K = 1
    while (ref_dir / f"s{K + 1}").is_dir():
        K += 1
    names = sorted(f.stem for f in (ref_dir / "s1").iterdir()
                   if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
    if not names:
        raise LayoutError(f"{ref_dir / 's1'}: no audio files")
    return names, K


def unmatched_estimate_folders(est_dir: Path, n_ref: int) -> list[Path]:
    """Estimate folders E/s{K+1}, ... that have no reference folder (they are not scored)."""
    extra, k = [], n_ref + 1
    while (est_dir / f"s{k}").is_dir():
        extra.append(est_dir / f"s{k}")
        k += 1
    return extra


def read_partner(path: Path, rate: int, length: int, partner: str) -> np.ndarray:
    """The whole of a mono file at ``rate``, fitted to its partner's ``length``. -> (1, length)."""
    check_length(path, clip_info(path, rate, 1), length, rate, partner)
    return read_clip(path, rate, 1, 0, length)


def folder_examples(est_dir: Path, ref_dir: Path, mix_dir: Path | None = None) -> tuple[list[Example], dict]:
    """Estimates E/sk/NAME against references R/sk/NAME (k = 1..K, names from R/s1), with the
    mixture from ``mix_dir`` (M/NAME or M/mix/NAME; default R/mix when it exists) for the
    improvements; and the info for the result files (``unscored_estimates``: estimate folders
    without references). Raises LayoutError for a tree without references."""
    names, K = reference_names(ref_dir)
    if mix_dir is not None and (mix_dir / "mix").is_dir():
        mix_dir = mix_dir / "mix"
    elif mix_dir is None and (ref_dir / "mix").is_dir():
        mix_dir = ref_dir / "mix"
    info = {"mode": "folders", "est_dir": str(est_dir), "ref_dir": str(ref_dir)}
    extra = unmatched_estimate_folders(est_dir, K)
    if extra:
        info["unscored_estimates"] = [str(e) for e in extra]

    def load(name: str) -> tuple:
        first = find_audio(ref_dir / "s1", name)
        rate = audio_info(first)[0]
        n = clip_info(first, rate, 1)
        refs = [read_partner(find_audio(ref_dir / f"s{k + 1}", name), rate, n, "the reference s1")
                for k in range(K)]
        ests = [read_partner(find_audio(est_dir / f"s{k + 1}", name), rate, n, "the reference")
                for k in range(K)]
        mix = read_partner(find_audio(mix_dir, name), rate, n, "the reference") if mix_dir else None
        return np.stack(ests), np.stack(refs), mix, rate, {}

    return [(name, lambda name=name: load(name)) for name in names], info
