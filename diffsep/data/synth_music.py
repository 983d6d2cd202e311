"""Synthetic multitrack music for tests, demos and smoke training (no MUSDB needed).

Each track is a few bars at a random tempo and key: drums (kick, snare, hi-hat), bass (the
chord roots), other (sustained chords) and vocals (a sung-like melody: a harmonic source with
vibrato through moving vowel formants). Every stem is stereo (panned elements, a little
width), and the mixture is exactly the sum of the stems.

    python -m diffsep.data.synth_music --root DIR --train 40 --test 8 --seconds 8 --rate 22050

writes DIR/{train,test}/TRACKNNN/{mixture,drums,bass,other,vocals}.wav (the MUSDB18-HQ layout).
Everything is a function of (seed, split, track index).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

STEMS = ("drums", "bass", "other", "vocals")
SPLIT_CODE = {"train": 1, "test": 2}
_CHORDS = ([0, 4, 7], [9, 12, 16], [5, 9, 12], [7, 11, 14])  # I vi IV V (semitones from the key)
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))


def _pan(x: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan, position in [-1, 1] -> (2, N)."""
    angle = (position + 1) * np.pi / 4
    return np.stack([np.cos(angle) * x, np.sin(angle) * x])


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    end = min(out.shape[-1], start + x.shape[-1])
    if end > start:
        out[..., start:end] += x[..., :end - start]


def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonance at ``freq`` Hz with bandwidth ``bw`` Hz (a formant)."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bw / sr)
    a = [1, -2 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return lfilter([1 - r], a, x)


def drums(n: int, sr: int, beat: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((2, n))
    m = int(0.25 * sr)
    t = np.arange(m) / sr
    kick = np.sin(2 * np.pi * (45 * t + 60 * 0.03 * (1 - np.exp(-t / 0.03)))) * _env(m, sr, 0.002, 0.12)
    noise = rng.standard_normal(m)
    snare = (0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * _env(m, sr, 0.001, 0.07)
    hat = np.diff(noise, prepend=0) * _env(m, sr, 0.001, 0.02) * 0.5
    hat_pan = rng.uniform(-0.6, 0.6)
    for i, start in enumerate(range(0, n, beat // 2)):
        if i % 4 == 0:
            _place(out, _pan(kick, 0.0), start)
        if i % 4 == 2:
            _place(out, _pan(snare, rng.uniform(-0.2, 0.2)), start)
        _place(out, _pan(hat * rng.uniform(0.5, 1.0), hat_pan), start)
    return out


def bass(n: int, sr: int, beat: int, key: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for bar, start in enumerate(range(0, n, 4 * beat)):
        f = key / 2 * 2 ** (_CHORDS[bar % 4][0] / 12)
        for q in range(4):
            m = beat
            t = np.arange(m) / sr
            phase = 2 * np.pi * f * t * (1.5 if q == 3 and rng.random() < 0.3 else 1.0)
            note = (np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)) * _env(m, sr, 0.005, 0.4)
            _place(out, note, start + q * beat)
    return _pan(out, rng.uniform(-0.1, 0.1))


def other(n: int, sr: int, beat: int, key: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((2, n))
    m = 4 * beat
    t = np.arange(m) / sr
    for bar, start in enumerate(range(0, n, m)):
        for k, semis in enumerate(_CHORDS[bar % 4]):
            f = key * 2 ** (semis / 12)
            tone = sum(np.sin(2 * np.pi * h * f * t + rng.uniform(0, 2 * np.pi)) / h ** 1.5 for h in range(1, 5))
            _place(out, _pan(tone * _env(m, sr, 0.05, 1.5) * 0.3, (k - 1) * 0.5), start)
    return out


def vocals(n: int, sr: int, beat: int, key: float, rng: np.random.Generator) -> np.ndarray:
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    f0 = np.zeros(n)
    vowel = np.zeros(n, dtype=int)
    gate = np.zeros(n)
    for start in range(0, n, beat):
        note = 2 * key * 2 ** (rng.choice(scale) / 12)
        m = min(beat, n - start)
        f0[start:start + m] = note
        vowel[start:start + m] = rng.integers(len(_VOWELS))
        gate[start:start + m] = _env(m, sr, 0.03, 0.6) * (rng.random() < 0.85)
    t = np.arange(n) / sr
    f0 = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))  # vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sr
    source = sum(np.sin(h * phase) / h for h in range(1, 25) if h * f0.max() < 0.45 * sr)  # no aliasing
    source = source + 0.02 * rng.standard_normal(n)
    voice = np.zeros(n)
    for v, formants in enumerate(_VOWELS):
        part = np.where(vowel == v, source, 0.0)
        if np.any(part):
            voice += sum(_resonator(part, f, 80 + 0.05 * f, sr) for f in formants if f < 0.45 * sr)
    voice = voice * gate / (np.abs(voice).max() + 1e-9)
    return _pan(voice, rng.uniform(-0.1, 0.1))


def make_track(seconds: float, sample_rate: int, seed: int | tuple = 0) -> dict[str, np.ndarray]:
    """{stem: (2, N) float32} for STEMS, plus "mixture" (their sum)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    beat = int(sample_rate * 60 / rng.uniform(80, 140))
    key = 220 * 2 ** (rng.integers(-5, 7) / 12)
    stems = {"drums": drums(n, sample_rate, beat, rng), "bass": bass(n, sample_rate, beat, key, rng),
             "other": other(n, sample_rate, beat, key, rng), "vocals": vocals(n, sample_rate, beat, key, rng)}
    levels_db = {"drums": -12, "bass": -14, "other": -16, "vocals": -12}
    for name, x in stems.items():
        rms = np.sqrt(np.mean(x ** 2)) + 1e-9
        stems[name] = (x / rms * 10 ** ((levels_db[name] + rng.uniform(-3, 3)) / 20)).astype(np.float32)
    peak = max(np.abs(sum(stems.values())).max(), 1e-9)
    if peak > 0.95:
        stems = {k: (v * 0.95 / peak).astype(np.float32) for k, v in stems.items()}
    stems["mixture"] = sum(stems[s] for s in STEMS).astype(np.float32)
    return stems


def write_corpus(root: Path, n_train: int, n_test: int, seconds: float, sample_rate: int, seed: int = 0,
                 progress: bool = False) -> None:
    """The MUSDB18-HQ layout under ``root`` (float WAV, so the mixture stays the exact sum);
    ``progress``: a progress bar on stderr."""
    from tqdm import tqdm

    from ..storage.audio import write_audio_group

    tracks = [(split, i) for split, count in (("train", n_train), ("test", n_test)) for i in range(count)]
    for split, i in tqdm(tracks, desc="synth", unit="track", disable=not progress):
        track = make_track(seconds, sample_rate, seed=(seed, SPLIT_CODE[split], i))
        folder = Path(root) / split / f"track{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_audio_group([(folder / f"{k}.wav", v) for k, v in track.items()], sample_rate, subtype="FLOAT")
