"""One audio file in, its sources out: reading a mixture for a model (channels, length checks) and
the one-line Python call.

    sources, rate = diffsep.separate_file("mix.wav")                  # the bundled default model
    sources, rate = diffsep.separate_file("song.wav", model="runs/demucs_tiny/best.pt")
    sep = diffsep.load_separator("ckpt.pt")                            # load once ...
    for path in paths:
        sources, rate = diffsep.separate_file(path, model=sep)         # ... separate many files

sources are float32 (K, N) for a mono (speech) model and (K, C, N) for a multi-channel (music)
model, at the file's rate unless ``rate`` says otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_SECONDS = 0.05  # shorter inputs are refused: no model separates 400 samples at 8 kHz


def load_mixture(path, downmix: bool = False, channels: int = 1) -> tuple[np.ndarray, int]:
    """Read one input for a model of ``channels`` channels. -> (mix (N,) for mono models or
    (C, N), float32; sample rate). A mono file given to a stereo model is played on both channels;
    a multi-channel file given to a mono model is refused unless ``downmix`` (channel mean).
    Raises AudioError naming the file for every unusable input (missing, unreadable, silent,
    non-finite, too short, wrong channel count)."""
    from ..storage.audio import AudioError, read_audio

    x, sr = read_audio(path, allow_silent=False)
    if x.shape[0] != channels:
        if x.shape[0] == 1:
            x = np.repeat(x, channels, axis=0)
        elif channels == 1 and downmix:
            x = x.mean(0, keepdims=True)
        else:
            need = "mono" if channels == 1 else f"{channels} channels"
            raise AudioError(f"{path}: {x.shape[0]} channels; the model separates {need}"
                             + (" (pass --downmix to average the channels)" if channels == 1 else ""))
    if x.shape[1] < MIN_SECONDS * sr:
        raise AudioError(f"{path}: too short ({x.shape[1]} samples = {x.shape[1] / sr:.4f} s; "
                         f"at least {MIN_SECONDS} s needed)")
    return (x[0] if channels == 1 else x), sr


def separate_file(path: str | Path, model=None, *, rate: int | None = None, downmix: bool = False,
                  chunk_seconds: float = 10.0, overlap_seconds: float = 1.0, batch_size: int = 1,
                  **load_options) -> tuple[np.ndarray, int]:
    """Separate the audio file ``path`` -> (sources, rate).

    ``model``: None (the bundled default, with the settings of its model card), a bundled model's
    name, a checkpoint path, ``hf://owner/repo[/file]``, or a separator already made by
    :func:`diffsep.load_separator` (to separate many files with one load). ``load_options`` go to
    :func:`~diffsep.inference.loading.load_separator` when a model is loaded here (``device``,
    ``sampler={"steps": 30}``, ``warm_start``, ``rescale``, ``seed`` ...).

    sources: float32, (K, N) for a mono model, (K, C, N) for a multi-channel one (a mono file is
    played on each channel), resampled back to the file's rate, or to ``rate`` when given (which
    is the rate returned). Long files are separated in overlapping chunks (``chunk_seconds``,
    ``overlap_seconds``; 0: whole). Raises AudioError for an unusable file, CheckpointError for an
    unusable model.
    """
    from .loading import load_separator, separate_signal
    from .separator import Separator

    if isinstance(model, Separator):
        if load_options:
            raise TypeError(f"options {', '.join(sorted(load_options))} apply when loading a model, "
                            f"not to a separator already made")
        separator = model
    else:
        if model is None:
            from .pretrained import default_model_name

            model = default_model_name()
        separator = load_separator(str(model), **load_options)
    mix, sr = load_mixture(path, downmix, separator.channels)
    out_rate = rate or sr
    sources = separate_signal(separator, mix, sr, chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds,
                              batch_size=batch_size, out_rate=out_rate)
    return sources, out_rate
