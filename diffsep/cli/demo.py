"""``separate.py --demo -o OUTDIR``: separate the bundled demo mixture with a model (the bundled
default unless --model says otherwise), write OUTDIR/s1.wav ... and OUTDIR/demo.png (spectrograms of
the mixture, references and estimates), and print SI-SDR / SI-SDRi against the bundled references
with the real-time factor."""
from __future__ import annotations

import sys
import time

import numpy as np

from .common import chunking, error_line, load_separator


def run_demo(args) -> int:
    from ..storage.audio import read_audio, write_audio_group
    from ..storage.checkpoint import CheckpointError
    from ..evaluation.scoring import Scoring, match_sources, score_item
    from ..evaluation.figures import example_figure
    from ..inference.loading import separate_signal
    from ..inference.pretrained import demo

    d = demo()
    try:
        mix, sr = read_audio(d.mix)
        refs = np.stack([read_audio(p)[0][0] for p in d.sources])
        separator = load_separator(args)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    mix = mix[0]
    start = time.perf_counter()
    est = separate_signal(separator, mix, sr, out_rate=sr, **chunking(args))
    seconds = time.perf_counter() - start
    est = match_sources(est, refs)
    args.outdir.mkdir(parents=True, exist_ok=True)
    outs = [args.outdir / f"s{k + 1}.{args.format}" for k in range(len(est))]
    write_audio_group(list(zip(outs, est)), sr)
    scores = score_item(est, refs, mix, sr, Scoring(metrics=("si_sdr", "si_sdri"), fixed_order=True))
    example_figure(args.outdir / "demo.png", mix, refs, est, sr, title=f"{args.model} on the demo mixture")
    print(f"demo: {d.description}")
    print(f"model {args.model}: SI-SDR {scores['si_sdr']:.2f} dB, SI-SDRi {scores['si_sdri']:.2f} dB "
          f"(mean of {len(est)} sources); {mix.size / sr:.1f} s of audio in {seconds:.2f} s "
          f"(real-time factor {seconds * sr / mix.size:.2f}, {separator.nfe} network evaluations)")
    print(f"wrote {', '.join(str(o) for o in outs)} and {args.outdir / 'demo.png'}")
    return 0
