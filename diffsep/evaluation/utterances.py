"""What evaluation scores: utterances as (name, load) pairs, where ``load()`` reads (and for a
model, separates) one utterance and returns ``(est (K, N), ref (K, N), mix (N,) | None, rate,
extra)``. Loading is deferred so that one bad utterance is reported and skipped, not fatal.

Two sources: a folder of estimates against a folder of references (any separator's outputs, the
wsj0-mix layout), or a model separating a dataset split (every ``data.kind``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..storage.audio import AUDIO_EXTENSIONS, AudioError, fit_length, read_audio, resample
from ..data.layouts import LayoutError

LENGTH_TOLERANCE_S = 0.05  # estimates / references may differ by this much; they are cropped or padded

Utterance = tuple[str, Callable[[], tuple]]


@dataclass(frozen=True)
class Scoring:
    """How utterances are scored: in a fixed source order (enhancement) or after the best
    permutation, and only the first ``n_scored`` sources (None: all)."""
    fixed_order: bool = False
    n_scored: int | None = None
    stems: tuple[str, ...] = ()  # named stems (music): scored per stem, BSS Eval v4 style


def find_audio(folder: Path, name: str) -> Path:
    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    raise AudioError(f"{folder / name}.wav: no such file")


def read_signal(path: Path, rate: int | None = None, length: int | None = None,
                channels: int = 1) -> tuple[np.ndarray, int]:
    """One file of ``channels`` channels (mono by default), optionally resampled to ``rate`` and
    fitted to ``length`` samples (a mismatch above LENGTH_TOLERANCE_S is an error).
    -> ((N,) float32 for mono, else (C, N); rate)."""
    x, sr = read_audio(path)
    if x.shape[0] != channels:
        raise AudioError(f"{path}: {x.shape[0]} channels, expected {'mono' if channels == 1 else channels}")
    if rate is not None and sr != rate:
        x, sr = resample(x, sr, rate), rate
    if length is not None and x.shape[-1] != length:
        if abs(x.shape[-1] - length) > LENGTH_TOLERANCE_S * sr:
            raise AudioError(f"{path}: {x.shape[-1]} samples where the reference has {length}")
        x = fit_length(x, length)
    return (x[0] if channels == 1 else x), sr


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


def folder_utterances(est_dir: Path, ref_dir: Path, mix_dir: Path | None = None) -> Iterator[Utterance]:
    """Estimates E/sk/NAME against references R/sk/NAME (k = 1..K, names from R/s1), with the
    mixture from ``mix_dir`` (M/NAME or M/mix/NAME; default R/mix when it exists) for SI-SDRi.
    Estimates and mixtures are resampled to the references' rate."""
    names, K = reference_names(ref_dir)
    if mix_dir is not None and (mix_dir / "mix").is_dir():
        mix_dir = mix_dir / "mix"
    elif mix_dir is None and (ref_dir / "mix").is_dir():
        mix_dir = ref_dir / "mix"

    def load(name: str):
        refs, rate = [], None
        for k in range(K):
            r, rate = read_signal(find_audio(ref_dir / f"s{k + 1}", name), rate,
                                  len(refs[0]) if refs else None)
            refs.append(r)
        n = len(refs[0])
        ests = [read_signal(find_audio(est_dir / f"s{k + 1}", name), rate, n)[0] for k in range(K)]
        mix = read_signal(find_audio(mix_dir, name), rate, n)[0] if mix_dir is not None else None
        return np.stack(ests), np.stack(refs), mix, rate, {}

    for name in names:
        yield name, lambda name=name: load(name)


def dataset_scoring(items, separator) -> Scoring:
    """Fixed order when the model was trained in a fixed order (enhancement) or when the layout
    derives its last source from the mixture (VoiceBank-DEMAND's noise); then only the other
    sources (the speech) are scored."""
    derived = any(item.noise_from_mix for item in items)
    return Scoring(fixed_order=separator.fixed_order or derived,
                   n_scored=separator.n_src - 1 if derived else None, stems=tuple(getattr(separator, "stems", ())))


def model_utterances(separator, items, separate: Callable) -> Iterator[Utterance]:
    """Every item separated by ``separator`` through ``separate(separator, mix, rate)`` (chunking,
    resampling); ``extra`` holds the runtime, real-time factor and NFE."""
    import torch

    cuda = separator.device.type == "cuda"

    def load(item):
        C = getattr(separator, "channels", 1)
        mix, sr = read_signal(item.mix, channels=C)
        refs = [read_signal(p, sr, mix.shape[-1], channels=C)[0] for p in item.sources]
        if item.noise_from_mix:
            refs.append(mix - np.sum(refs, axis=0))
        if len(refs) != separator.n_src:
            raise AudioError(f"{item.mix}: {len(refs)} references for a {separator.n_src}-source model")
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        est = separate(separator, mix, sr)
        if cuda:
            torch.cuda.synchronize()
        runtime = time.perf_counter() - t0
        extra = {"runtime_s": runtime, "duration_s": mix.shape[-1] / sr,
                 "rtf": runtime / (mix.shape[-1] / sr), "nfe": separator.nfe}
        return est, np.stack(refs), mix, sr, extra

    for item in items:
        yield item.name, lambda item=item: load(item)
