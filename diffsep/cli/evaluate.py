"""python -m diffsep.evaluate: score separations, in one of two modes.

(a) a model on a dataset split:
    python -m diffsep.evaluate --model MODEL --data-root ROOT [--dataset wsj0_mix] [--split tt] --out OUT
(b) a folder of estimates against a folder of references (any separator), wsj0-mix layout:
    python -m diffsep.evaluate --est-dir E --ref-dir R [--mix-dir M] --out OUT

Per utterance: SI-SDR, SI-SDRi, SDR, PESQ (nb at 8 kHz, wb at 16 kHz), ESTOI, STOI after choosing
the source permutation by SI-SDR. Writes OUT/results.csv, OUT/summary.json and OUT/summary.md.
An utterance that cannot be scored is reported and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS
from .common import add_model_args, load_separator, separate_signal

LENGTH_TOLERANCE_S = 0.05


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m diffsep.evaluate", description=__doc__,
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
    a.add_argument("--dataset", default="wsj0_mix", choices=("wsj0_mix", "librimix", "vbdemand", "folder"))
    a.add_argument("--split", default="tt", help="split (tt, test, cv, ...)")
    a.add_argument("--data-mode", default="min", help="wsj0-mix / LibriMix: min | max")
    a.add_argument("--mixture", default="mix_clean", help="LibriMix: mix_clean | mix_both")
    a.add_argument("--data-rate", type=int, help="dataset sample rate (default: the model's)")
    add_model_args(a)
    p.add_argument("--fixed-order", action="store_true",
                   help="no permutation search (enhancement; default for vbdemand)")
    p.add_argument("--score-sources", type=int,
                   help="score only the first N sources (vbdemand: 1, the speech)")
    p.add_argument("--limit", type=int, help="evaluate the first N utterances only")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="worker processes for PESQ / STOI (0: in the main process)")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ / ESTOI / STOI")
    p.add_argument("--save-examples", type=int, default=0, metavar="N",
                   help="write audio and a spectrogram figure for the first N utterances")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# -- reading -----------------------------------------------------------------------------------
def find_audio(folder: Path, name: str) -> Path:
    from ..audio import AudioError

    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    raise AudioError(f"{folder / name}.wav: no such file")


def read_mono(path: Path, rate: int | None = None, length: int | None = None) -> tuple[np.ndarray, int]:
    """One mono file, optionally resampled to ``rate`` and fitted to ``length`` samples (a
    mismatch above LENGTH_TOLERANCE_S is an error). -> ((N,) float32, rate)."""
    from ..audio import AudioError, fit_length, read_audio, resample

    x, sr = read_audio(path)
    if x.shape[0] != 1:
        raise AudioError(f"{path}: {x.shape[0]} channels, expected mono")
    if rate is not None and sr != rate:
        x, sr = resample(x, sr, rate), rate
    x = x[0]
    if length is not None and x.shape[0] != length:
        if abs(x.shape[0] - length) > LENGTH_TOLERANCE_S * sr:
            raise AudioError(f"{path}: {x.shape[0]} samples where the reference has {length}")
        x = fit_length(x, length)
    return x, sr


def reference_names(ref_dir: Path) -> tuple[list[str], int]:
    """Utterance names (from R/s1) and the number of sources (R/s1, R/s2, ...)."""
    from ..data.layouts import LayoutError

    if not (ref_dir / "s1").is_dir():
        raise LayoutError(f"{ref_dir}: no s1/ folder (expected the wsj0-mix layout s1/ ... sK/)")
    K = 1
    while (ref_dir / f"s{K + 1}").is_dir():
        K += 1
    names = sorted(f.stem for f in (ref_dir / "s1").iterdir()
                   if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
    if not names:
        raise LayoutError(f"{ref_dir / 's1'}: no audio files")
    return names, K


# -- the two modes -----------------------------------------------------------------------------
def folder_utterances(args):
    """Mode (b): yields (name, est (K, N), ref (K, N), mix (N,) | None, rate, extra)."""
    names, K = reference_names(args.ref_dir)
    mix_dir = args.mix_dir
    if mix_dir is not None and (mix_dir / "mix").is_dir():
        mix_dir = mix_dir / "mix"
    elif mix_dir is None and (args.ref_dir / "mix").is_dir():
        mix_dir = args.ref_dir / "mix"
    for name in names:
        def load(name=name):
            refs, rate = [], None
            for k in range(K):
                r, rate = read_mono(find_audio(args.ref_dir / f"s{k + 1}", name), rate,
                                    len(refs[0]) if refs else None)
                refs.append(r)
            n = len(refs[0])
            ests = [read_mono(find_audio(args.est_dir / f"s{k + 1}", name), rate, n)[0] for k in range(K)]
            mix = read_mono(find_audio(mix_dir, name), rate, n)[0] if mix_dir is not None else None
            return np.stack(ests), np.stack(refs), mix, rate, {}
        yield name, load


def model_utterances(args, separator):
    """Mode (a): separate every item of the split; yields like :func:`folder_utterances`, with
    the runtime, real-time factor and NFE in ``extra``."""
    import torch

    from ..audio import AudioError
    from ..data.layouts import build_items

    items = build_items(args.dataset, args.data_root, args.split, n_src=separator.n_src,
                        sample_rate=args.data_rate or separator.sample_rate, mode=args.data_mode,
                        mixture=args.mixture)
    cuda = separator.device.type == "cuda"
    for item in items:
        def load(item=item):
            mix, sr = read_mono(item.mix)
            refs = [read_mono(p, sr, len(mix))[0] for p in item.sources]
            if item.noise_from_mix:
                refs.append(mix - np.sum(refs, axis=0))
            if len(refs) != separator.n_src:
                raise AudioError(f"{item.mix}: {len(refs)} references for a {separator.n_src}-source model")
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            est = separate_signal(separator, mix, sr, args)
            if cuda:
                torch.cuda.synchronize()
            runtime = time.perf_counter() - t0
            extra = {"runtime_s": runtime, "duration_s": len(mix) / sr,
                     "rtf": runtime / (len(mix) / sr), "nfe": separator.nfe}
            return est, np.stack(refs), mix, sr, extra
        yield item.name, load


def save_example(out: Path, name: str, est, ref, mix, rate: int) -> None:
    from ..audio import write_audio_group
    from ..figures import example_figure

    folder = out / "examples" / name
    files = [(folder / f"s{k + 1}_ref.wav", ref[k]) for k in range(len(ref))]
    files += [(folder / f"s{k + 1}_est.wav", est[k]) for k in range(len(est))]
    if mix is not None:
        files.append((folder / "mix.wav", mix))
    write_audio_group(files, rate)
    example_figure(out / "examples" / f"{name}.png", mix, ref, est, rate, title=name)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from ..audio import AudioError
    from ..checkpoint import CheckpointError
    from ..data.layouts import LayoutError
    from ..evaluation import Evaluator, markdown_table

    folder_mode = args.est_dir is not None or args.ref_dir is not None
    if folder_mode == (args.model is not None):
        print("error: give either --model (with --data-root) or --est-dir with --ref-dir", file=sys.stderr)
        return 2
    fixed_order, n_scored = args.fixed_order, args.score_sources
    try:
        if folder_mode:
            if args.est_dir is None or args.ref_dir is None:
                raise LayoutError("mode (b) needs both --est-dir and --ref-dir")
            utterances = list(folder_utterances(args))
            info = {"mode": "folders", "est_dir": str(args.est_dir), "ref_dir": str(args.ref_dir)}
        else:
            if args.data_root is None:
                raise LayoutError("mode (a) needs --data-root")
            separator = load_separator(args)
            utterances = list(model_utterances(args, separator))
            if args.dataset == "vbdemand":
                fixed_order, n_scored = True, n_scored or 1
            info = {"mode": "model", "model": args.model, "dataset": args.dataset, "split": args.split,
                    "nfe": separator.nfe,
                    "sampler": vars(separator.options) if hasattr(separator, "options") else None}
    except (CheckpointError, LayoutError, AudioError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        utterances = utterances[:args.limit]
    evaluator = Evaluator(args.jobs, fixed_order, n_scored, perceptual=not args.no_perceptual)
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
    info.update(fixed_order=fixed_order, scored_sources=n_scored or "all", failed=len(failed))
    summary = evaluator.finish(args.out, info)
    print(markdown_table(summary), end="")
    print(f"{len(evaluator.rows)} utterance(s) scored, {len(failed)} failed; results in {args.out}",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
