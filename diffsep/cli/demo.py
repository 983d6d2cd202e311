"""``separate.py --demo -o OUTDIR``: separate the bundled demo mixture with a model (the bundled
default unless --model says otherwise), write OUTDIR/s1.wav ... and OUTDIR/demo.png (spectrograms of
the mixture, references and estimates) and OUTDIR/report.html (a page to listen to them, with the
scores), and print SI-SDR / SI-SDRi against the bundled references with the real-time factor."""
from __future__ import annotations

import sys
import time

import numpy as np

from .common import chunking, error_line, load_separator, prepare_output_folder


def run_demo(args) -> int:
    from ..storage.audio import read_audio, write_audio_group
    from ..storage.checkpoint import CheckpointError
    from ..evaluation.scoring import Scoring, match_sources, score_item
    from ..evaluation.figures import example_figure
    from ..evaluation.report import write_report
    from ..evaluation.results import summary_of
    from ..inference.loading import NonFiniteEstimate, separate_signal
    from ..inference.pretrained import demo

    d = demo()
    try:
        prepare_output_folder(args.outdir)  # writable? (before the model is loaded)
        mix, sr = read_audio(d.mix)
        refs = np.stack([read_audio(p)[0][0] for p in d.sources])
        separator = load_separator(args)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    mix = mix[0]
    start = time.perf_counter()
    try:
        est = separate_signal(separator, mix, sr, out_rate=sr, **chunking(args))
    except NonFiniteEstimate as e:
        print(f"error: {d.mix}: {error_line(e)}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    est = match_sources(est, refs)
    outs = [args.outdir / f"s{k + 1}.{args.format}" for k in range(len(est))]
    scores = score_item(est, refs, mix, sr, Scoring(metrics=("si_sdr", "si_sdri"), fixed_order=True))
    rows = [{**scores, "name": "demo", "runtime_s": seconds, "duration_s": mix.size / sr}]
    info = {"model": args.model, **separator.info, "nfe": separator.nfe, "data": f"the bundled demo: {d.description}",
            "rtf": seconds * sr / mix.size}
    try:
        write_audio_group(list(zip(outs, est)), sr)
        example_figure(args.outdir / "demo.png", mix, refs, est, sr, title=f"{args.model} on the demo mixture")
        report = write_report(args.outdir, rows, summary_of(rows, ("si_sdr", "si_sdri")), info,
                              lambda name: (est, refs, mix, sr), title=f"Demo: {args.model}")
    except OSError as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 1
    print(f"demo: {d.description}")
    print(f"model {args.model}: SI-SDR {scores['si_sdr']:.2f} dB, SI-SDRi {scores['si_sdri']:.2f} dB "
          f"(mean of {len(est)} sources); {mix.size / sr:.1f} s of audio in {seconds:.2f} s "
          f"(real-time factor {seconds * sr / mix.size:.2f}, {separator.nfe} network evaluations)")
    print(f"wrote {', '.join(str(o) for o in outs)}, {args.outdir / 'demo.png'} and {report} (open it in a browser)")
    return 0
