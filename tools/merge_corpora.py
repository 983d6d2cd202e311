"""Merge corpora of the wsj0-mix layout into one, by symbolic links (development tool).

    python tools/merge_corpora.py --out data/comb data/free data/rec

Every ROOT/wav8k/min/SPLIT/{mix,s1,s2,...}/NAME.wav of each input becomes a link under
OUT/wav8k/min/SPLIT/...; the first input wins where two have the same mixture name. Training on
OUT with dynamic mixing draws from the source files of all inputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def merge(roots: list[Path], out: Path, rate: str = "wav8k", mode: str = "min",
          splits: tuple[str, ...] = ("tr", "cv"), progress: bool = False) -> int:
    """Links the split folders of ``roots`` into ``out``; returns the number of mixtures linked.
    ``progress``: a progress bar (per mixture) on stderr."""
    from tqdm import tqdm

    mixtures = []
    for root in roots:
        for split in splits:
            src = root / rate / mode / split
            if not (src / "mix").is_dir():
                raise SystemExit(f"{src}: no mix/ folder (not the wsj0-mix layout)")
            folders = sorted(p for p in src.iterdir() if p.is_dir())
            mixtures += [(split, folders, mix) for mix in sorted((src / "mix").glob("*.wav"))]
    count = 0
    for split, folders, mix in tqdm(mixtures, desc="merge", unit="mix", disable=not progress):
        if (out / rate / mode / split / "mix" / mix.name).exists():
            continue
        for folder in folders:
            if (folder / mix.name).exists():
                link = out / rate / mode / split / folder.name / mix.name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to((folder / mix.name).resolve())
        count += 1
    return count


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rate", default="wav8k")
    ap.add_argument("--mode", default="min")
    ap.add_argument("--splits", default="tr,cv")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    n = merge(a.roots, a.out, a.rate, a.mode, tuple(a.splits.split(",")), progress=not a.quiet)
    print(f"{n} mixtures linked into {a.out}")


if __name__ == "__main__":
    main()
