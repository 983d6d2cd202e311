"""python separate.py INPUT... -o OUTDIR --model MODEL [options]

Separate audio files into OUTDIR/s1/NAME.wav ... OUTDIR/sK/NAME.wav (the wsj0-mix layout, so the
outputs can be scored with ``python -m diffsep.evaluate --est-dir OUTDIR --ref-dir REFS``).
INPUT is a file, a folder (--recursive to descend) or a glob pattern. Any sample rate: inputs are
resampled to the model's rate and the outputs written back at the input's rate. MODEL is one of
our checkpoints, a reference DiffSep checkpoint, or hf://owner/repo[/file] (e.g. hf://fakufaku/diffsep).
A bad file is reported with its reason and skipped; the exit status is 1 if any file failed.
"""
from __future__ import annotations

import argparse
import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS
from .common import add_model_args, check_model_args, chunking, error_line, load_separator

MIN_SECONDS = 0.05


@dataclass(frozen=True)
class Job:
    path: Path
    name: str  # output name without extension, may hold sub-folders (recursive inputs)


def collect_inputs(inputs: list[str], recursive: bool = False) -> list[Job]:
    """Files named, found in folders, or matched by glob patterns, without duplicates. A name that
    is none of these stays in the list (it is reported as missing when processed)."""
    jobs, seen = [], set()

    def add(path: Path, name: str):
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(Job(path, name))

    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(p.glob(pattern)):
                if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS:
                    add(f, str(f.relative_to(p).with_suffix("")))
        elif any(c in spec for c in "*?[") and not p.exists():
            for f in sorted(glob.glob(spec, recursive=True)):
                if Path(f).is_file():
                    add(Path(f), Path(f).stem)
        else:
            add(p, p.stem)
    return jobs


def name_clashes(jobs: list[Job]) -> list[str]:
    """Inputs that would write the same outputs (same name from different folders, or song.wav
    next to song.flac), one line per clash."""
    by_name: dict[str, list[Job]] = {}
    for job in jobs:
        by_name.setdefault(job.name.casefold(), []).append(job)
    return [" and ".join(str(j.path) for j in group) + f" would both be written as '{group[0].name}'"
            for group in by_name.values() if len(group) > 1]


def output_paths(outdir: Path, name: str, n_src: int, ext: str) -> list[Path]:
    return [outdir / f"s{k + 1}" / f"{name}{ext}" for k in range(n_src)]


def load_mixture(path: Path, downmix: bool) -> tuple[np.ndarray, int]:
    """Read one input as mono. -> (mix (N,) float32, sample rate).
    Raises AudioError naming the file for every unusable input."""
    from ..audio import AudioError, read_audio

    x, sr = read_audio(path, allow_silent=False)
    if x.shape[0] > 1:
        if not downmix:
            raise AudioError(f"{path}: {x.shape[0]} channels; separation needs mono input "
                             f"(pass --downmix to average the channels)")
        x = x.mean(0, keepdims=True)
    if x.shape[1] < MIN_SECONDS * sr:
        raise AudioError(f"{path}: too short ({x.shape[1]} samples = {x.shape[1] / sr:.4f} s; "
                         f"at least {MIN_SECONDS} s needed)")
    return x[0], sr


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="separate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files, folders or glob patterns")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="output folder")
    p.add_argument("--model", required=True, help="checkpoint path or hf://owner/repo[/file]")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    add_model_args(p)
    p.add_argument("--output-rate", choices=("input", "model"), default="input",
                   help="write outputs at the input's rate (default) or the model's")
    p.add_argument("--downmix", action="store_true", help="average multi-channel inputs to mono")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="output format")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def separate_file(separator, job: Job, outs: list[Path], args) -> None:
    """Separate one file and write its K outputs ``outs`` together, atomically."""
    from ..audio import write_audio_group
    from ..inference import separate_signal

    mix, sr = load_mixture(job.path, args.downmix)
    out_rate = sr if args.output_rate == "input" else separator.sample_rate
    est = separate_signal(separator, mix, sr, out_rate=out_rate, **chunking(args))
    write_audio_group(list(zip(outs, est)), out_rate)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    from tqdm import tqdm

    from ..audio import AudioError
    from ..checkpoint import CheckpointError

    if args.outdir.exists() and not args.outdir.is_dir():
        parser.error(f"argument -o/--outdir: {args.outdir} exists and is not a folder")
    jobs = collect_inputs(args.inputs, args.recursive)
    if not jobs:
        print("error: no audio files found in the inputs", file=sys.stderr)
        return 2
    clashes = name_clashes(jobs)
    if clashes:
        print("error: outputs would overwrite each other (pass their common folder with "
              "--recursive to keep sub-folders in the names, or separate them in different runs):\n  "
              + "\n  ".join(clashes), file=sys.stderr)
        return 2
    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        separator = load_separator(args)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    failed, done, skipped = [], 0, 0
    bar = tqdm(jobs, desc="separate", unit="file", disable=args.quiet)
    for job in bar:
        outs = output_paths(args.outdir, job.name, separator.n_src, f".{args.format}")
        if not args.overwrite and all(o.is_file() for o in outs):
            skipped += 1
            continue
        try:
            separate_file(separator, job, outs, args)
            done += 1
        except (AudioError, OSError, RuntimeError, ValueError) as e:
            msg = error_line(e)
            msg = msg if str(job.path) in msg else f"{job.path}: {msg}"
            failed.append(msg)
            bar.write(f"skipped {msg}", file=sys.stderr)
    print(f"separated {done} file(s) into {args.outdir}; {skipped} already done; "
          f"{len(failed)} failed", file=sys.stderr)
    for msg in failed:
        print(f"  failed: {msg}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
