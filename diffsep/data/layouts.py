"""Dataset layouts -> lists of :class:`~diffsep.data.dataset.Item`.

wsj0_mix   ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1..sK}/NAME.wav
librimix   ROOT/wav{8k,16k}/{min,max}/metadata/mixture_{split}_{mix_clean,mix_both}.csv
           (columns mixture_ID, mixture_path, source_1_path .. source_K_path; paths absolute or
           relative to ROOT; files under ROOT/wav*/{mode}/{split}/ are found by name as a fallback)
vbdemand   ROOT/{split}/{clean,noisy}/NAME.wav or ROOT/{clean,noisy}_{split}set*_wav/NAME.wav;
           sources = [speech, noise = noisy − clean]
folder     ROOT/{split}/{mix,s1..sK}/NAME.wav (split may be empty: ROOT/{mix,s1..}); WAV/FLAC/OGG
musdb      ROOT/{train,test}/TRACK/{mixture,STEM...}.wav (MUSDB18-HQ as extracted); splits train,
           valid (the training tracks named in the validation list, MUSDB's by default) and test
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import ClassVar

from ..storage.audio import AUDIO_EXTENSIONS
from .dataset import Item

MUSDB_STEMS = ("drums", "bass", "other", "vocals")
# the training tracks MUSDB18 holds out for validation (musdb's own list)
MUSDB_VALID_TRACKS = (
    "Actions - One Minute Smile", "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies", "Patrick Talbot - A Reason To Leave", "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero", "Fergessen - Nos Palpitants", "Leaf - Summerghost",
    "Skelpolu - Human Mistakes", "Young Griffo - Pennies", "ANiMAL - Rockshow",
    "James May - On The Line", "Meaxic - Take A Step", "Traffic Experiment - Sirens",
)


_GENERATED_UTT = re.compile(r"^(.+)-[a-z]{2}\d+$")  # VOICE-tr0012


def utterance_speaker(utt: str) -> str:
    """Speaker of a wsj0-style utterance id: VOICE of VOICE-trNNNN, else the first 3 characters."""
    m = _GENERATED_UTT.match(utt)
    return m.group(1) if m else utt[:3]


class LayoutError(ValueError):
    """The dataset tree does not have the expected layout; the message says what is missing."""


def _rate_dir(sample_rate: int) -> str:
    return f"wav{sample_rate // 1000}k"


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise LayoutError(f"{path}: missing {what}")
    return path


def _audio_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_EXTENSIONS}


def _mix_and_sources(base: Path, n_src: int) -> list[Item]:
    """base/mix/NAME + base/s1..sK/NAME (same stem); a missing partner is an error."""
    mixes = _audio_files(_need_dir(base / "mix", "mixture folder 'mix'"))
    if not mixes:
        raise LayoutError(f"{base / 'mix'}: no audio files")
    src_dirs = [_need_dir(base / f"s{k + 1}", f"source folder 's{k + 1}'") for k in range(n_src)]
    src_files = [_audio_files(d) for d in src_dirs]
    items = []
    for name, mix in mixes.items():
        missing = [str(d / (name + mix.suffix)) for d, f in zip(src_dirs, src_files) if name not in f]
        if missing:
            raise LayoutError(f"{mix}: missing partner file(s) {', '.join(missing)}")
        items.append(Item(name, mix, tuple(f[name] for f in src_files)))
    return items


def wsj0_mix(root: Path, split: str, n_src: int, sample_rate: int, mode: str = "min") -> list[Item]:
    base = root / _rate_dir(sample_rate) / mode / split
    if not base.is_dir() and (root / split).is_dir():  # ROOT already points at wav8k/min
        base = root / split
    return _mix_and_sources(_need_dir(base, f"wsj0-mix split '{split}'"), n_src)


def librimix(root: Path, split: str, n_src: int, sample_rate: int, mode: str = "min",
             mixture: str = "mix_clean") -> list[Item]:
    level = _need_dir(root / _rate_dir(sample_rate) / mode, "LibriMix rate/mode folder")
    csv_path = level / "metadata" / f"mixture_{split}_{mixture}.csv"
    if not csv_path.is_file():
        raise LayoutError(f"{csv_path}: missing LibriMix metadata file")

    def resolve(p: str, sub: str) -> Path:
        path = Path(p)
        for cand in (path, root / path, level / split / sub / path.name):
            if cand.is_file():
                return cand
        raise LayoutError(f"{csv_path}: file not found: {p}")

    items = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            cols = [f"source_{k + 1}_path" for k in range(n_src)]
            if "mixture_path" not in row or any(c not in row for c in cols):
                raise LayoutError(f"{csv_path}: needs columns mixture_path, {', '.join(cols)}")
            items.append(Item(row.get("mixture_ID") or Path(row["mixture_path"]).stem,
                              resolve(row["mixture_path"], mixture),
                              tuple(resolve(row[c], f"s{k + 1}") for k, c in enumerate(cols))))
    if not items:
        raise LayoutError(f"{csv_path}: no rows")
    return items


def vbdemand(root: Path, split: str) -> list[Item]:
    clean, noisy = root / split / "clean", root / split / "noisy"
    if not clean.is_dir():  # original release: clean_trainset_28spk_wav, noisy_testset_wav ...
        found = [sorted(root.glob(f"{kind}_{split}set*_wav")) for kind in ("clean", "noisy")]
        if not all(found):
            raise LayoutError(f"{root}: missing VoiceBank-DEMAND '{split}/clean' + '{split}/noisy' "
                              f"or 'clean_{split}set*_wav' + 'noisy_{split}set*_wav'")
        clean, noisy = found[0][0], found[1][0]
    cf, nf = _audio_files(clean), _audio_files(_need_dir(noisy, "noisy folder"))
    items = []
    for name, n in nf.items():
        if name not in cf:
            raise LayoutError(f"{n}: missing partner file {clean / (name + n.suffix)}")
        items.append(Item(name, n, (cf[name],), noise_from_mix=True))
    if not items:
        raise LayoutError(f"{noisy}: no audio files")
    return items


def folder(root: Path, split: str, n_src: int) -> list[Item]:
    base = root / split if split else root
    return _mix_and_sources(_need_dir(base, "folder"), n_src)


def musdb(root: Path, split: str, stems=MUSDB_STEMS, valid_tracks=MUSDB_VALID_TRACKS) -> list[Item]:
    """One item per track folder; ``valid`` takes the ``valid_tracks`` out of ``train``."""
    if split not in ("train", "valid", "test"):
        raise LayoutError(f"musdb splits are train, valid and test, not {split!r}")
    base = _need_dir(root / ("train" if split == "valid" else split), f"MUSDB folder '{split}'")
    valid = set(valid_tracks)
    items = []
    for track in sorted(p for p in base.iterdir() if p.is_dir()):
        if split != "test" and (track.name in valid) != (split == "valid"):
            continue
        files = _audio_files(track)
        missing = [n for n in ("mixture", *stems) if n not in files]
        if missing:
            raise LayoutError(f"{track}: missing {', '.join(m + '.wav' for m in missing)}")
        items.append(Item(track.name, files["mixture"], tuple(files[s] for s in stems)))
    if not items:
        raise LayoutError(f"{base}: no {split} tracks" + (" (none of the validation track names is "
                          "there: set data.valid_tracks)" if split == "valid" else ""))
    return items


class Layout:
    """A dataset layout (``data.kind``): where the items of a split are, what the sources are
    called, who speaks in them. A layout reads the ``data.*`` options it names in :attr:`options`
    and ignores the others.

    Register a new one with :func:`register_layout`; ``data.kind`` then accepts its name."""
    kind: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()  # the data.* keys it reads besides root, splits, rate
    splits: ClassVar[dict[str, str]] = {"train": "tr", "valid": "cv", "test": "tt"}  # default split names
    named_sources: ClassVar[bool] = False  # sources have names (music stems), kept in that order
    tracks: ClassVar[bool] = False  # music tracks: training draws segments with the track augmentations (data/music.py)
    dynamic_mixing: ClassVar[bool] = True  # sources are speakers that dynamic mixing can recombine

    def __init__(self, n_src: int = 2, sample_rate: int = 8000, **options):
        self.n_src, self.sample_rate = n_src, sample_rate
        self.opts = {k: options[k] for k in self.options if k in options}

    def items(self, root: Path, split: str) -> list[Item]:
        raise NotImplementedError

    def source_names(self) -> tuple[str, ...]:
        """Output names of the sources: the stems' names, else s1 ... sK."""
        return tuple(f"s{k + 1}" for k in range(self.n_src))

    @staticmethod
    def speakers(item: Item) -> list[str]:
        """One speaker id per source file of ``item`` (dynamic mixing never mixes a speaker with
        itself); without speaker ids every file is its own speaker."""
        return [str(p) for p in item.sources]


class Wsj0Mix(Layout):
    kind, options = "wsj0_mix", ("mode",)

    def items(self, root, split):
        return wsj0_mix(root, split, self.n_src, self.sample_rate, **self.opts)

    @staticmethod
    def speakers(item):
        """From the mixture name ``UTT1_SNR1_UTT2_SNR2``: WSJ0 utterance ids start with the
        3-character speaker id; generated corpora name utterances ``VOICE-trNNNN``."""
        utts = item.name.split("_")[0::2]
        if len(utts) < len(item.sources):
            return Layout.speakers(item)
        return [utterance_speaker(u) for u in utts[:len(item.sources)]]


class LibriMix(Layout):
    kind, options = "librimix", ("mode", "mixture")
    splits = {"train": "train-360", "valid": "dev", "test": "test"}

    def items(self, root, split):
        return librimix(root, split, self.n_src, self.sample_rate, **self.opts)

    @staticmethod
    def speakers(item):
        """Source files are named SPEAKER-CHAPTER-UTT."""
        return [Path(p).stem.split("-")[0] for p in item.sources]


class VBDemand(Layout):
    """Enhancement: sources [speech, noise], the noise derived from the mixture."""
    kind = "vbdemand"
    splits = {"train": "train", "valid": "test", "test": "test"}
    dynamic_mixing = False

    def items(self, root, split):
        if self.n_src != 2:
            raise LayoutError(f"vbdemand has 2 sources [speech, noise], model.n_src is {self.n_src}")
        return vbdemand(root, split)


class Folder(Layout):
    kind = "folder"

    def items(self, root, split):
        return folder(root, split, self.n_src)


class Musdb(Layout):
    kind, options = "musdb", ("stems", "valid_tracks")
    splits = {"train": "train", "valid": "valid", "test": "test"}
    named_sources = tracks = True
    dynamic_mixing = False

    def items(self, root, split):
        stems = tuple(self.opts.get("stems") or MUSDB_STEMS)
        if len(stems) != self.n_src:
            raise LayoutError(f"musdb: {len(stems)} stems {list(stems)} but model.n_src is {self.n_src}")
        return musdb(root, split, stems, tuple(self.opts.get("valid_tracks") or MUSDB_VALID_TRACKS))

    def source_names(self):
        return tuple(self.opts.get("stems") or MUSDB_STEMS)


# The one list of layouts (``data.kind``): a new layout is a class and one entry (register_layout).
LAYOUTS: dict[str, type[Layout]] = {c.kind: c for c in (Wsj0Mix, LibriMix, VBDemand, Folder, Musdb)}


def register_layout(layout: type[Layout]) -> type[Layout]:
    """Add a layout under its ``kind`` (usable as a class decorator)."""
    if not layout.kind:
        raise ValueError(f"{layout.__name__}: a layout needs a kind (its data.kind name)")
    LAYOUTS[layout.kind] = layout
    return layout


def make_layout(kind: str, n_src: int = 2, sample_rate: int = 8000, **options) -> Layout:
    """The layout ``kind`` for K sources at ``sample_rate`` with its ``data.*`` options."""
    if kind not in LAYOUTS:
        raise LayoutError(f"unknown data.kind {kind!r}; valid: {', '.join(LAYOUTS)}")
    return LAYOUTS[kind](n_src, sample_rate, **options)


def build_items(kind: str, root, split: str, *, n_src: int = 2, sample_rate: int = 8000, **options) -> list[Item]:
    """Items of one split of a dataset of the given kind (see the module docstring); ``options``:
    the ``data.*`` options of the layout (mode, mixture, stems, valid_tracks)."""
    root = Path(root)
    if not str(root) or not root.is_dir():
        raise LayoutError(f"{root}: dataset root does not exist (set data.root)")
    return make_layout(kind, n_src, sample_rate, **options).items(root, split)
