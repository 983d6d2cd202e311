"""Make the bundled demo mixture (diffsep/inference/pretrained/demo/): two freely licensed synthetic voices
that no bundled model was trained on, flite's "awb" (male) and espeak-ng's "en-us+iven2" variant
raised in pitch, mixed the wsj0-2mix way (unit active level, 2 dB apart, peak 0.9) at 8 kHz.

    apt-get install flite espeak-ng        # Debian packages
    python tools/make_demo.py              # writes mix.wav, s1.wav, s2.wav (16-bit)

The sentences are the project's own. Development tool: not used at run time or in CI.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 8000
TEXTS = (
    "The little boat drifted past the harbour lights while the old captain counted the stars.",
    "Please remember to water the tomato plants before you leave for the station tomorrow.",
)


def synth(cmd: list[str], wav: Path) -> np.ndarray:
    subprocess.run(cmd, check=True, capture_output=True)
    x, sr = sf.read(wav, dtype="float64")
    x = x if x.ndim == 1 else x.mean(axis=1)
    return soxr.resample(x, sr, RATE)


def active_rms(x: np.ndarray, rel_db: float = 30.0) -> float:
    """RMS over the 10 ms frames within rel_db of the loudest one."""
    frames = x[: x.size // 80 * 80].reshape(-1, 80)
    energy = (frames ** 2).mean(axis=1)
    return float(np.sqrt(energy[energy > energy.max() * 10 ** (-rel_db / 10)].mean()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "diffsep/inference/pretrained/demo")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        w1, w2 = Path(tmp) / "a.wav", Path(tmp) / "b.wav"
        s1 = synth(["flite", "-voice", "awb", "-t", TEXTS[0], "-o", str(w1)], w1)
        s2 = synth(["espeak-ng", "-v", "en-us+iven2", "-p", "70", "-s", "150", "-w", str(w2), TEXTS[1]], w2)
    n = min(s1.size, s2.size)
    s1, s2 = s1[:n] / active_rms(s1[:n]), s2[:n] / active_rms(s2[:n])
    s1, s2 = s1 * 10 ** (1 / 20), s2 * 10 ** (-1 / 20)  # 2 dB apart
    peak = max(np.abs(s1 + s2).max(), np.abs(s1).max(), np.abs(s2).max())
    s1, s2 = 0.9 * s1 / peak, 0.9 * s2 / peak
    a.out.mkdir(parents=True, exist_ok=True)
    for name, x in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
        sf.write(a.out / f"{name}.wav", x, RATE, subtype="PCM_16")
    print(f"wrote {n / RATE:.2f} s at {RATE} Hz to {a.out}")


if __name__ == "__main__":
    main()
