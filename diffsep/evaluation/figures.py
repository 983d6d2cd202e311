"""Example figures: log-magnitude spectrograms of a mixture, its references and estimates."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def spectrogram_db(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-magnitude STFT in dB (Hann window). x (N,) -> (n_fft // 2 + 1, frames)."""
    import torch

    X = torch.stft(torch.as_tensor(x, dtype=torch.float32), n_fft, hop,
                   window=torch.hann_window(n_fft), return_complex=True)
    return 20 * np.log10(X.abs().numpy() + 1e-6)


def example_figure(path: Path, mix: np.ndarray | None, refs: np.ndarray, ests: np.ndarray,
                   sample_rate: int, title: str = "") -> None:
    """Save a figure (PNG, or the format of ``path``'s suffix): the mixture on top, then one row per source (reference | estimate).
    mix (N,) or None, refs / ests (K, N)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    K = refs.shape[0]
    rows = K + (mix is not None)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.2 * rows), squeeze=False, sharex=True, sharey=True)
    n_fft = 512 if sample_rate >= 16000 else 256
    extent = [0, refs.shape[-1] / sample_rate, 0, sample_rate / 2000]
    panels = ([("mixture", mix, axes[0, 0])] if mix is not None else [])
    for k in range(K):
        r = k + (mix is not None)
        panels += [(f"reference s{k + 1}", refs[k], axes[r, 0]), (f"estimate s{k + 1}", ests[k], axes[r, 1])]
    vmax = spectrogram_db(mix if mix is not None else refs.sum(0), n_fft, n_fft // 4).max()
    for name, x, ax in panels:
        ax.imshow(spectrogram_db(x, n_fft, n_fft // 4), origin="lower", aspect="auto", extent=extent,
                  vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("kHz")
    if mix is not None:
        axes[0, 1].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=80)


# image formats a figure is written in, by the file's suffix (none: PNG)
FIGURE_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "pdf": "pdf", "svg": "svg", "eps": "eps",
                  "ps": "ps", "tif": "tiff", "tiff": "tiff", "webp": "webp"}


def figure_format(path: Path) -> str:
    """The format of a figure written to ``path``, from its suffix (none: PNG). Raises ValueError
    naming the suffixes that work, for any other (never PNG bytes under another name)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"{path}: cannot write a figure as .{suffix}; use one of "
                         f"{', '.join('.' + s for s in FIGURE_FORMATS)}")
    return FIGURE_FORMATS[suffix]


def save_figure(fig, path: Path, dpi: int = 80) -> None:
    """Lay out, write atomically in the format of ``path``'s suffix (see :func:`figure_format`),
    and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    from ..storage.atomic import atomic_path

    try:
        fmt = figure_format(path)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)


def write_example(folder: Path, name: str, est: np.ndarray, ref: np.ndarray, mix: np.ndarray | None,
                  sample_rate: int) -> None:
    """FOLDER/NAME/{sK_ref, sK_est, mix}.wav and FOLDER/NAME.png (the channels' mean).
    est, ref (K, C, N); mix (C, N) or None."""
    from ..storage.audio import write_audio_group

    files = [(folder / name / f"s{k + 1}_ref.wav", ref[k]) for k in range(len(ref))]
    files += [(folder / name / f"s{k + 1}_est.wav", est[k]) for k in range(len(est))]
    if mix is not None:
        files.append((folder / name / "mix.wav", mix))
    write_audio_group(files, sample_rate)
    example_figure(folder / f"{name}.png", None if mix is None else mix.mean(0), ref.mean(1), est.mean(1),
                   sample_rate, title=name)
