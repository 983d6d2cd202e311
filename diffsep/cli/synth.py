"""diffsep synth --root DIR: a synthetic multitrack corpus in the MUSDB18-HQ layout (drums, bass,
chords, sung-like vocals; stereo stems) for trying the music pipeline without MUSDB."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.synth_music import write_corpus


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsep synth", description=__doc__)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--train", type=int, default=40, help="training tracks")
    p.add_argument("--test", type=int, default=8, help="test tracks")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rate", type=int, default=22050)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    write_corpus(a.root, a.train, a.test, a.seconds, a.rate, a.seed, progress=not a.quiet)
    print(f"wrote {a.train} + {a.test} tracks of {a.seconds:g} s at {a.rate} Hz under {a.root}")
    return 0
