"""diffsep evaluate: score separations, in one of two modes.

(a) a model on a dataset split:
    diffsep evaluate --model MODEL --data-root ROOT [--dataset KIND] [--split SPLIT] --out OUT
    (dataset kind, its options and the test split default to the model's own data settings)
(b) a folder of estimates against a folder of references (any separator), wsj0-mix layout:
    diffsep evaluate --est-dir E --ref-dir R [--mix-dir M] --out OUT

Per utterance: SI-SDR, SI-SDRi, SDR, PESQ (nb at 8 kHz, wb at 16 kHz), ESTOI, STOI (music: per
stem SDR, SDRi, SI-SDR) after choosing the source permutation by SI-SDR (a model trained in a
fixed order, e.g. enhancement, is scored in that order; with VoiceBank-DEMAND only the speech is
scored); --metrics chooses. In (a) files are read at the model's sample rate (resampled if they
have another). Writes OUT/results.csv, OUT/summary.json and OUT/summary.md (and with --report
OUT/report.html: a page to listen to the best, median and worst utterances, see below). An
utterance that cannot be scored is reported and skipped; the exit status is then 1.

--report: OUT/report.html and OUT/report_files/ open from a file browser (no network): the summary,
a sortable per-utterance table, and audio players with spectrograms of the mixture, references and
estimates of the 3 best, 3 median and 3 worst utterances by SI-SDRi. No estimate is kept while
scoring: in (a) those utterances are separated again after scoring, with the same seeds.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import (add_model_args, check_model_args, chunking, error_line, load_separator, positive_int,
                     prepare_output_folder, worker_count)


def build_parser() -> argparse.ArgumentParser:
    from ..data.layouts import LAYOUTS
    from ..evaluation.metrics import METRICS

    p = argparse.ArgumentParser(prog="diffsep evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder for the results")
    b = p.add_argument_group("(b) estimates against references")
    b.add_argument("--est-dir", type=Path, help="estimates: E/s1/NAME.wav ... E/sK/NAME.wav")
    b.add_argument("--ref-dir", type=Path, help="references: R/s1/NAME.wav ... R/sK/NAME.wav")
    b.add_argument("--mix-dir", type=Path,
                   help="mixtures M/NAME.wav or M/mix/NAME.wav (default: R/mix when it exists)")
    a = p.add_argument_group("(a) a model on a dataset split")
    a.add_argument("--model", help="checkpoint path or hf://owner/repo[/file]")
    a.add_argument("--data-root", type=Path, help="dataset root")
    a.add_argument("--dataset", choices=LAYOUTS, help="layout (default: the model's data.kind)")
    a.add_argument("--split", help="split (default: the model's data.test_split)")
    a.add_argument("--data-mode", help="wsj0-mix / LibriMix: min | max (default: the model's)")
    a.add_argument("--mixture", help="LibriMix: mix_clean | mix_both (default: the model's)")
    a.add_argument("--data-rate", type=int, help="dataset sample rate (default: the model's)")
    add_model_args(a)
    p.add_argument("--metrics", type=lambda s: tuple(m.strip() for m in s.split(",") if m.strip()),
                   help=f"comma-separated metrics (default: all that apply): {', '.join(METRICS)}")
    p.add_argument("--fixed-order", action="store_true",
                   help="no permutation search (default for models trained in a fixed order)")
    p.add_argument("--score-sources", type=positive_int,
                   help="score only the first N sources (vbdemand: 1, the speech)")
    p.add_argument("--limit", type=positive_int, help="evaluate the first N utterances only")
    p.add_argument("--jobs", type=worker_count, default=min(4, os.cpu_count() or 1),
                   help="worker processes for PESQ / STOI (0: in the main process)")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ / ESTOI / STOI")
    p.add_argument("--save-examples", type=int, default=0, metavar="N",
                   help="write audio and a spectrogram figure for the first N utterances")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html, a listening page (see above)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args, report) -> tuple:
    """(scores, info, examples) of the chosen mode; the examples load an item again (for the
    listening report). Raises the library's errors."""
    from ..data.layouts import LayoutError
    from ..evaluation.figures import write_example
    from ..evaluation.folders import folder_examples
    from ..evaluation.scoring import Scoring, dataset_items, score_estimates, score_separator, separation_examples

    def example(i, name, *signals):
        if i < args.save_examples:
            write_example(args.out / "examples", name, *signals)

    options = dict(jobs=args.jobs, on_error=report, on_item=example, progress=not args.quiet)
    scoring = dict(metrics=args.metrics, perceptual=not args.no_perceptual, fixed_order=args.fixed_order,
                   n_scored=args.score_sources)
    if args.model is None:
        if args.est_dir is None or args.ref_dir is None:
            raise LayoutError("mode (b) needs both --est-dir and --ref-dir")
        examples, info = folder_examples(args.est_dir, args.ref_dir, args.mix_dir)
        for folder in info.get("unscored_estimates", []):
            print(f"warning: {folder}: more estimate folders than references ({args.ref_dir}); "
                  f"it is not scored", file=sys.stderr)
        examples = examples[:args.limit]
        return score_estimates(examples, Scoring(**scoring), **options), info, examples
    if args.data_root is None:
        raise LayoutError("mode (a) needs --data-root")
    separator = load_separator(args)
    items, info = dataset_items(separator, args.data_root, kind=args.dataset, split=args.split,
                                mode=args.data_mode, mixture=args.mixture, sample_rate=args.data_rate)
    info = {"mode": "model", "model": args.model, **info,
            **({"stems": list(separator.stems)} if getattr(separator, "stems", ()) else {})}
    items = items[:args.limit]
    examples = separation_examples(separator, items, separation=chunking(args), seed=args.seed)
    return score_separator(separator, items, separation=chunking(args), seed=args.seed,
                           **scoring, **options), info, examples


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    if (args.est_dir is not None or args.ref_dir is not None) == (args.model is not None):
        parser.error("give either --model (with --data-root) or --est-dir with --ref-dir")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} exists and is not a folder")
    from tqdm import tqdm

    from ..evaluation.results import markdown_table
    from ..storage.checkpoint import CheckpointError

    def report(name: str, message: str) -> None:
        tqdm.write(f"skipped {name}: {message}", file=sys.stderr)

    try:
        prepare_output_folder(args.out)  # writable? (before any scoring)
        scores, info, examples = run(args, report)
    except (CheckpointError, ValueError, OSError) as e:  # LayoutError, AudioError and unknown metrics too
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    try:
        scores.write(args.out, info)
    except OSError as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 1
    if args.report:
        try:
            write_listening_report(args, scores, info, examples)
        except OSError as e:
            print(f"error: {error_line(e)}", file=sys.stderr)
            return 1
    print(markdown_table(scores.summary), end="")
    rtf = scores.info.get("rtf")
    print(f"{len(scores.rows)} utterance(s) scored, {len(scores.failed)} failed"
          + (f", real-time factor {rtf:.3f}" if rtf is not None else "") + f"; results in {args.out}",
          file=sys.stderr)
    return 1 if scores.failed else 0


def write_listening_report(args, scores, info, examples) -> None:
    """OUT/report.html from the scores, loading the few utterances it plays again (one that fails
    is reported and left out of the page). Raises OSError when the page cannot be written."""
    from tqdm import tqdm

    from ..evaluation.report import listening_loader, write_report

    def left_out(name: str, message: str) -> None:
        tqdm.write(f"report: {name} left out: {message}", file=sys.stderr)

    if not args.quiet:
        again = "separating again" if args.model is not None else "reading"
        print(f"report: {again} the best, median and worst utterances", file=sys.stderr)
    load = listening_loader(examples, scores.info.get("fixed_order", False))
    path = write_report(args.out, scores.rows, scores.summary, {**scores.info, **info}, load, on_error=left_out,
                        progress=not args.quiet)
    print(f"listening report: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
