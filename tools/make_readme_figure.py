"""Make the README's figure (docs/demo.png): spectrograms of the bundled demo mixture and of the two
voices the bundled default model separates from it, beside the references, with each estimate's
SI-SDR improvement.

    python tools/make_readme_figure.py                     # docs/demo.png, the bundled default
    python tools/make_readme_figure.py --model convtasnet-small -o out/ct.png

Development tool: not used at run time or in CI. The same separation as ``make demo``
(``diffsep separate --demo``), which also writes a larger figure beside its outputs.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

import diffsep
from diffsep.core.sdr import si_sdr
from diffsep.evaluation.figures import spectrogram_db
from diffsep.evaluation.scoring import match_sources
from diffsep.inference.pretrained import default_model_name, demo
from diffsep.storage.audio import read_audio

ROOT = Path(__file__).resolve().parent.parent


def si_sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    import torch

    return float(si_sdr(torch.as_tensor(est)[None], torch.as_tensor(ref)[None]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="bundled name, checkpoint or hf:// (default: the bundled default)")
    p.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = demo()
    name = args.model or default_model_name()
    mix, rate = read_audio(d.mix)
    mix = mix[0]
    refs = np.stack([read_audio(s)[0][0] for s in d.sources])
    est, _ = diffsep.separate_file(d.mix, model=name)
    est = match_sources(est, refs)
    n_fft = 256
    vmax = spectrogram_db(mix, n_fft, n_fft // 4).max()
    extent = [0, mix.size / rate, 0, rate / 2000]
    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(2, 3)
    first = fig.add_subplot(grid[:, 0])
    panels = [("mixture", mix, first)]
    for k in range(len(refs)):
        gain = si_sdr_db(est[k], refs[k]) - si_sdr_db(mix, refs[k])
        panels += [(f"voice {k + 1}: reference", refs[k], fig.add_subplot(grid[k, 1], sharey=first)),
                   (f"voice {k + 1}: separated ({gain:+.1f} dB SI-SDRi)", est[k],
                    fig.add_subplot(grid[k, 2], sharey=first))]
    for title, x, ax in panels:
        ax.imshow(spectrogram_db(x, n_fft, n_fft // 4), origin="lower", aspect="auto", extent=extent,
                  vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz", fontsize=8)
        ax.set_xlabel("s", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{name} on the bundled demo mixture (two voices no bundled model heard in training)",
                 fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=72, format="png")
    # a palette of 96 colours keeps the file small (the colour map has one hue path anyway)
    Image.open(buffer).convert("RGB").quantize(96).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
