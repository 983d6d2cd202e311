"""python separate.py INPUT... -o OUTDIR [--model MODEL] [options]
   python separate.py --demo -o OUTDIR        (the bundled demo mixture: outputs, figure, scores)
   python separate.py --list-models           (the bundled models and their measured numbers)

Separate audio files into OUTDIR/s1/NAME.wav ... OUTDIR/sK/NAME.wav (the wsj0-mix layout, so the
outputs can be scored with ``diffsep evaluate --est-dir OUTDIR --ref-dir REFS``); a music
model writes OUTDIR/STEM/NAME.wav (drums, bass, ...) with the model's channels (stereo).
INPUT is a file, a folder (--recursive to descend) or a glob pattern. Any sample rate: inputs are
resampled to the model's rate and the outputs written back at the input's rate. MODEL is a bundled
model's name (default: the bundled default, with the settings of its model card), one of our
checkpoints, a reference DiffSep checkpoint, or hf://owner/repo[/file] (e.g. hf://fakufaku/diffsep).
A bad file is reported with its reason and skipped; the exit status is 1 if any file failed.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..storage.audio import AUDIO_EXTENSIONS
from .common import add_model_args, check_model_args, chunking, error_line, load_separator, prepare_output_folder


@dataclass(frozen=True)
class Job:
    path: Path
    name: str  # output name without extension, may hold sub-folders (recursive inputs)


def collect_inputs(inputs: list[str], recursive: bool = False, exclude: Path | None = None) -> list[Job]:
    """Files named, found in folders, or matched by glob patterns, without duplicates. A name that
    is none of these stays in the list (it is reported as missing when processed). Folders and
    patterns are walked without entering symlinked folders (a link loop cannot hang the walk);
    what they find under ``exclude`` (the output folder) is left out."""
    jobs, seen = [], set()
    skip = exclude.resolve() if exclude is not None else None

    def add(path: Path, name: str, walked: bool = False):
        key = path.resolve()
        if walked and skip is not None and key.is_relative_to(skip):
            return
        if key not in seen:
            seen.add(key)
            jobs.append(Job(path, name))

    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(p.glob(pattern)):
                if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS:
                    add(f, str(f.relative_to(p).with_suffix("")), walked=True)
        elif any(c in spec for c in "*?[") and not p.exists():
            for f in expand_pattern(spec):
                if f.is_file():
                    add(f, f.stem, walked=True)
        else:
            add(p, p.stem)
    return jobs


def expand_pattern(spec: str) -> list[Path]:
    """What a glob pattern matches (``**``: any depth), sorted, by the same walk as a folder given
    with --recursive: symlinked folders are not entered, so a link loop cannot hang it. Hidden
    names match only where the pattern spells their dot (as in the shell)."""
    parts = Path(spec).parts
    first = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    base, rest = Path(*parts[:first]) if first else Path("."), list(parts[first:])
    if rest[-1] == "**":
        rest.append("*")  # "a/**": everything below a
    dotted = any(part.startswith(".") for part in rest)
    return sorted(f for f in base.glob("/".join(rest))
                  if dotted or not any(r.startswith(".") for r in f.relative_to(base).parts))


def name_clashes(jobs: list[Job]) -> list[str]:
    """Inputs that would write the same outputs (same name from different folders, or song.wav
    next to song.flac), one line per clash."""
    by_name: dict[str, list[Job]] = {}
    for job in jobs:
        by_name.setdefault(job.name.casefold(), []).append(job)
    return [" and ".join(str(j.path) for j in group) + f" would both be written as '{group[0].name}'"
            for group in by_name.values() if len(group) > 1]


def output_paths(outdir: Path, name: str, folders: list[str], ext: str) -> list[Path]:
    """OUTDIR/FOLDER/NAME.ext for each source's folder (s1 ... sK, or stem names). ValueError for
    a folder or name that would leave OUTDIR (names from a checkpoint are untrusted)."""
    from ..storage.names import path_within

    return [path_within(outdir, folder, f"{name}{ext}") for folder in folders]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="separate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="audio files, folders or glob patterns")
    p.add_argument("-o", "--outdir", type=Path, help="output folder")
    p.add_argument("--model", help="bundled model name (default: the bundled default; see "
                   "--list-models), checkpoint path or hf://owner/repo[/file]")
    p.add_argument("--list-models", action="store_true", help="list the bundled models and exit")
    p.add_argument("--demo", action="store_true",
                   help="separate the bundled demo mixture into OUTDIR, with a figure and scores")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    add_model_args(p)
    p.add_argument("--output-rate", choices=("input", "model"), default="input",
                   help="write outputs at the input's rate (default) or the model's")
    p.add_argument("--downmix", action="store_true", help="average multi-channel inputs to mono")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="output format")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def models_table() -> str:
    """The bundled models, one line each, with their measured numbers."""
    from ..inference.pretrained import bundled_models, default_model_name

    lines = []
    for m in bundled_models().values():
        extra = f", warm start from {m.warm_start}" if m.warm_start else ""
        extra += f", averaged over {m.shifts} shifts" if m.shifts > 1 else ""
        scores = ", ".join(f"{k} {v:g}" for k, v in m.scores.items())
        mark = " (default)" if m.name == default_model_name() else ""
        lines.append(f"{m.name}{mark}: {m.summary}{extra}\n    {scores}\n    card: {m.card_path}")
    return "\n".join(lines)


def separate_file(separator, job: Job, outs: list[Path], args) -> None:
    """Separate one file and write its K outputs ``outs`` together, atomically, in blocks: memory
    does not grow with the file's length, at any rate (:mod:`diffsep.inference.streaming`)."""
    from ..inference.streaming import separate_to_files

    out_rate = None if args.output_rate == "input" else separator.sample_rate
    peak = separate_to_files(separator, job.path, outs, downmix=args.downmix, out_rate=out_rate, **chunking(args))
    warn_clipping(job.path, np.array(peak), args.format)


def warn_clipping(path: Path, est: np.ndarray, fmt: str) -> None:
    """Integer formats (FLAC) hold samples up to full scale: say, with the file and the peak, when
    the estimates go beyond and are clipped (a float WAV keeps them)."""
    peak = float(np.abs(est).max()) if est.size else 0.0
    if fmt != "wav" and peak > 1.0:
        from tqdm import tqdm

        tqdm.write(f"warning: {path}: the estimates peak at {peak:.3g} ({20 * np.log10(peak):+.1f} dB "
                   f"above full scale); the {fmt.upper()} outputs are clipped at full scale "
                   f"(--format wav keeps every sample)", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        print(models_table())
        return 0
    if args.outdir is None:
        parser.error("the following arguments are required: -o/--outdir")
    if bool(args.inputs) == args.demo:
        parser.error("give the audio to separate (INPUT...) or --demo, not both" if args.demo else
                     "the following arguments are required: inputs (or --demo)")
    if args.model is None:
        from ..inference.pretrained import default_model_name

        args.model = default_model_name()
    check_model_args(parser, args)
    if args.outdir.exists() and not args.outdir.is_dir():
        parser.error(f"argument -o/--outdir: {args.outdir} exists and is not a folder")
    if args.demo:
        from .demo import run_demo

        return run_demo(args)
    from tqdm import tqdm

    from ..storage.audio import AudioError
    from ..storage.checkpoint import CheckpointError

    jobs = collect_inputs(args.inputs, args.recursive, exclude=args.outdir)
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
        removed = prepare_output_folder(args.outdir)  # writable? (before the model is loaded)
        if removed:
            print(f"removed {removed} temporary file(s) that interrupted runs left in {args.outdir}",
                  file=sys.stderr)
        separator = load_separator(args)
    except (CheckpointError, ValueError, OSError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    failed, done, skipped = [], 0, 0
    bar = tqdm(jobs, desc="separate", unit="file", disable=args.quiet)
    for job in bar:
        outs = output_paths(args.outdir, job.name, separator.source_names, f".{args.format}")
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
