"""diffsep evaluate: score separations, in one of two modes.

(a) a model on a dataset split:
    diffsep evaluate --model MODEL --data-root ROOT [--dataset wsj0_mix] [--split tt] --out OUT
(b) a folder of estimates against a folder of references (any separator), wsj0-mix layout:
    diffsep evaluate --est-dir E --ref-dir R [--mix-dir M] --out OUT

Per utterance: SI-SDR, SI-SDRi, SDR, PESQ (nb at 8 kHz, wb at 16 kHz), ESTOI, STOI after choosing
the source permutation by SI-SDR (a model trained in a fixed order, e.g. enhancement, is scored
in that order; with VoiceBank-DEMAND only the speech is scored). Writes OUT/results.csv,
OUT/summary.json and OUT/summary.md. An utterance that cannot be scored is reported and skipped;
the exit status is then 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from .common import add_model_args, check_model_args, chunking, load_separator, positive_int


def build_parser() -> argparse.ArgumentParser:
    from ..data.layouts import KINDS

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
    a.add_argument("--dataset", default="wsj0_mix", choices=KINDS)
    a.add_argument("--split", default="tt", help="split (tt, test, cv, ...)")
    a.add_argument("--data-mode", default="min", help="wsj0-mix / LibriMix: min | max")
    a.add_argument("--mixture", default="mix_clean", help="LibriMix: mix_clean | mix_both")
    a.add_argument("--data-rate", type=int, help="dataset sample rate (default: the model's)")
    add_model_args(a)
    p.add_argument("--fixed-order", action="store_true",
                   help="no permutation search (default for models trained in a fixed order)")
    p.add_argument("--score-sources", type=positive_int,
                   help="score only the first N sources (vbdemand: 1, the speech)")
    p.add_argument("--limit", type=positive_int, help="evaluate the first N utterances only")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="worker processes for PESQ / STOI (0: in the main process)")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ / ESTOI / STOI")
    p.add_argument("--save-examples", type=int, default=0, metavar="N",
                   help="write audio and a spectrogram figure for the first N utterances")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def save_example(out: Path, name: str, est, ref, mix, rate: int) -> None:
    from ..storage.audio import write_audio_group
    from ..evaluation.figures import example_figure

    folder = out / "examples" / name
    files = [(folder / f"s{k + 1}_ref.wav", ref[k]) for k in range(len(ref))]
    files += [(folder / f"s{k + 1}_est.wav", est[k]) for k in range(len(est))]
    if mix is not None:
        files.append((folder / "mix.wav", mix))
    write_audio_group(files, rate)
    if ref.ndim == 3:  # stereo stems: the figure shows the channels' mean
        mix, ref, est = (None if mix is None else mix.mean(0)), ref.mean(1), est.mean(1)
    example_figure(out / "examples" / f"{name}.png", mix, ref, est, rate, title=name)


def utterances_and_info(args):
    """(utterances, scoring, info) of the chosen mode. Raises the library's errors."""
    from ..data.layouts import LayoutError, build_items
    from ..inference.loading import separate_signal
    from ..evaluation.utterances import (Scoring, dataset_scoring, folder_utterances, model_utterances,
                                         reference_names, unmatched_estimate_folders)

    if args.est_dir is not None or args.ref_dir is not None:
        if args.est_dir is None or args.ref_dir is None:
            raise LayoutError("mode (b) needs both --est-dir and --ref-dir")
        info = {"mode": "folders", "est_dir": str(args.est_dir), "ref_dir": str(args.ref_dir)}
        extra = unmatched_estimate_folders(args.est_dir, reference_names(args.ref_dir)[1])
        if extra:
            info["unscored_estimates"] = [str(e) for e in extra]
            print(f"warning: {', '.join(map(str, extra))}: more estimate folders than references "
                  f"({args.ref_dir}); they are not scored", file=sys.stderr)
        return list(folder_utterances(args.est_dir, args.ref_dir, args.mix_dir)), Scoring(), info
    if args.data_root is None:
        raise LayoutError("mode (a) needs --data-root")
    separator = load_separator(args)
    stems = {"stems": separator.stems} if separator.stems else {}
    items = build_items(args.dataset, args.data_root, args.split, n_src=separator.n_src,
                        sample_rate=args.data_rate or separator.sample_rate, mode=args.data_mode,
                        mixture=args.mixture, **stems)
    kw = chunking(args)
    separate = lambda sep, mix, rate: separate_signal(sep, mix, rate, **kw)  # noqa: E731
    info = {"mode": "model", "model": args.model, "dataset": args.dataset, "split": args.split,
            "nfe": separator.nfe, **separator.info}
    return list(model_utterances(separator, items, separate)), dataset_scoring(items, separator), info


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    if (args.est_dir is not None or args.ref_dir is not None) == (args.model is not None):
        parser.error("give either --model (with --data-root) or --est-dir with --ref-dir")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} exists and is not a folder")
    from tqdm import tqdm

    from ..storage.audio import AudioError
    from ..storage.checkpoint import CheckpointError
    from ..data.layouts import LayoutError
    from ..evaluation.results import Evaluator, markdown_table

    try:
        utterances, scoring, info = utterances_and_info(args)
    except (CheckpointError, LayoutError, AudioError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scoring = replace(scoring, fixed_order=scoring.fixed_order or args.fixed_order,
                      n_scored=args.score_sources or scoring.n_scored)
    if args.limit:
        utterances = utterances[:args.limit]
    evaluator = Evaluator(args.jobs, scoring.fixed_order, scoring.n_scored,
                          perceptual=not args.no_perceptual, stems=scoring.stems)
    failed = []
    bar = tqdm(utterances, desc="evaluate", unit="utt", disable=args.quiet)
    for i, (name, load) in enumerate(bar):
        try:
            est, ref, mix, rate, extra = load()
            est = evaluator.add(name, est, ref, mix, rate, **extra)
            if i < args.save_examples:
                save_example(args.out, name, est, ref, mix, rate)
        except (AudioError, OSError, RuntimeError, ValueError) as e:
            failed.append(str(e))
            bar.write(f"skipped {name}: {e}", file=sys.stderr)
    info.update(fixed_order=scoring.fixed_order, scored_sources=scoring.n_scored or "all",
                failed=len(failed))
    summary = evaluator.finish(args.out, info)
    print(markdown_table(summary), end="")
    rtf = evaluator.real_time_factor()
    print(f"{len(evaluator.rows)} utterance(s) scored, {len(failed)} failed"
          + (f", real-time factor {rtf:.3f}" if rtf is not None else "") + f"; results in {args.out}",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
