"""Build a training corpus from voices (:mod:`diffsep.data.corpus_voices`): utterances, a seeded
split, wsj0-2mix-style mixtures and a manifest with every voice's licence.

Layout of ROOT (``data.kind=wsj0_mix``, ``data.root=ROOT``):

    utterances/VOICE/VOICE-uNNNN.wav            every utterance, mono, at the corpus rate (16-bit)
    utterances.jsonl                            one line per utterance: id, voice, split, text, seconds
    wav8k/min/{tr,cv,tt}/{mix,s1,s2}/NAME.wav   mixtures named UTT1_LEVEL1_UTT2_LEVEL2 (UTT = VOICE-trNNNN)
    wav8k/min/metadata/mixture_SPLIT_info.csv   voices, families and levels of each mixture
    manifest.json                               the build's settings, every voice (family, licence,
                                                attribution, split, utterances, seconds), totals

Splits: the training voices' utterances go to tr, except a seeded ``cv_fraction`` of each voice's
(at least one when it has three or more) for cv: seen voices, new utterances. tt holds only the
held-out voices. tr mixtures pair utterances of close length (each utterance once, so truncating
to the shorter loses little), cv and tt mixtures are ``n_cv`` / ``n_tt`` random pairs. Mixing as
wsj0-2mix: unit RMS level, a relative level drawn in [0, 5] dB, truncation to the shorter
source, the pair scaled so that the mixture peaks at 0.9.

Synthesis is the slow part: an utterance already on disk is kept, so a killed build resumes.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..storage.atomic import write_text_atomic
from ..storage.audio import audio_info, read_audio, resample, write_audio_group
from .corpus_text import sentences
from .corpus_voices import Voice

PEAK = 0.9
LEVEL_DB = 5.0


@dataclass
class CorpusUtterance:
    id: str
    voice: str
    family: str
    split: str
    text: str
    seconds: float
    path: str  # relative to ROOT


def speech_chunks(x: np.ndarray, rate: int, max_seconds: float = 6.0, min_seconds: float = 2.0) -> list[np.ndarray]:
    """Cut a long recording (N,) into pieces of at most ``max_seconds`` at its quietest 20 ms frames
    (never shorter than ``min_seconds``, except a whole recording that is). -> list of (M,)."""
    frame = max(1, rate // 50)
    out, start = [], 0
    while len(x) - start > max_seconds * rate:
        lo, hi = start + int(min_seconds * rate), start + int(max_seconds * rate)
        seg = x[lo:hi]
        n = len(seg) // frame
        energy = (seg[:n * frame].reshape(n, frame) ** 2).mean(1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        out.append(x[start:cut])
        start = cut
    rest = x[start:]
    if out and len(rest) < min_seconds * rate:
        out[-1] = np.concatenate([out[-1], rest])
    elif len(rest):
        out.append(rest)
    return out


def tidy(x: np.ndarray, rate: int, seed: int, floor_db: float = -65.0) -> np.ndarray:
    """Trim leading/trailing near-silence (below −50 dB of the peak) and add a white noise floor
    ``floor_db`` below the RMS level, so that TTS pauses are not exact digital zeros. (N,) -> (M,)"""
    peak = np.abs(x).max() if len(x) else 0.0
    if peak <= 0:
        return x
    loud = np.flatnonzero(np.abs(x) > peak * 10 ** (-50 / 20))
    pad = rate // 20
    x = x[max(0, loud[0] - pad):loud[-1] + pad]
    rms = np.sqrt(np.mean(x ** 2))
    noise = np.random.default_rng(seed).standard_normal(len(x)) * rms * 10 ** (floor_db / 20)
    return (x + noise).astype(np.float32)


def _seed_of(*parts) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def make_utterances(root: Path, voices: list[Voice], engines: dict[str, object], rate: int,
                    utts_per_voice: int, seed: int, max_recorded: int = 0,
                    progress: Callable[[str], None] | None = None) -> list[dict]:
    """Write every voice's utterances under ``root/utterances/VOICE/`` (those already there are
    kept) -> one dict per utterance (id, voice, family, text, seconds, path). TTS voices speak
    ``utts_per_voice`` texts of the seeded sentence generator; recorded voices give their files cut
    by :func:`speech_chunks` (at most ``max_recorded`` pieces per voice, 0: all)."""
    rows = []
    for v in voices:
        folder = root / "utterances" / v.id
        folder.mkdir(parents=True, exist_ok=True)
        if v.engine is not None:
            texts = sentences(np.random.default_rng(_seed_of(seed, v.id, "text")), utts_per_voice)
            jobs = [(f"{v.id}-u{i:04d}", t, None) for i, t in enumerate(texts)]
        else:
            jobs, n = [], 0
            for f in v.files:
                x, sr = read_audio(f)
                for piece in speech_chunks(x.mean(0), sr):
                    if max_recorded and n >= max_recorded:
                        break
                    jobs.append((f"{v.id}-u{n:04d}", f.name, (piece, sr)))
                    n += 1
        for uid, text, audio in jobs:
            path = folder / f"{uid}.wav"
            if not path.is_file():
                if audio is None:
                    y, sr = engines[v.engine].synth(v, text)
                    y = tidy(y, sr, _seed_of(seed, uid, "floor"))
                else:
                    y, sr = audio
                y = resample(y[None], sr, rate)[0]
                write_audio_group([(path, y)], rate, subtype="PCM_16")
            frames = audio_info(path)[1]
            rows.append({"id": uid, "voice": v.id, "family": v.family, "text": text,
                         "seconds": round(frames / rate, 3), "path": str(path.relative_to(root))})
        if progress:
            progress(v.id)
    return rows


def assign_splits(rows: list[dict], test_voices: set[str], cv_fraction: float, seed: int) -> None:
    """Set each row's ``split`` in place: tt for the test voices; else cv for a seeded
    ``cv_fraction`` of each voice's utterances (at least one when it has 3 or more), tr the rest."""
    by_voice: dict[str, list[dict]] = {}
    for r in rows:
        by_voice.setdefault(r["voice"], []).append(r)
    for voice, rs in sorted(by_voice.items()):
        if voice in test_voices:
            for r in rs:
                r["split"] = "tt"
            continue
        n_cv = 0 if len(rs) < 3 else max(1, int(round(cv_fraction * len(rs))))
        pick = set(np.random.default_rng(_seed_of(seed, voice, "cv")).choice(len(rs), n_cv, replace=False).tolist())
        for i, r in enumerate(rs):
            r["split"] = "cv" if i in pick else "tr"


def pair_by_length(rows: list[dict], rng: np.random.Generator) -> list[tuple[dict, dict]]:
    """Pairs of utterances of different voices, each used once, neighbours in length (so the
    mixture's truncation to the shorter loses little); a last odd one is left out."""
    order = sorted(rows, key=lambda r: (r["seconds"], rng.random()))
    pairs, waiting = [], []
    for r in order:
        partner = next((w for w in waiting if w["voice"] != r["voice"]), None)
        if partner is None:
            waiting.append(r)
        else:
            waiting.remove(partner)
            pairs.append((partner, r))
    return pairs


def random_pairs(rows: list[dict], n: int, rng: np.random.Generator) -> list[tuple[dict, dict]]:
    """``n`` pairs of utterances of different voices drawn at random (each utterance at most once
    while there are unused ones)."""
    pool = list(rows)
    pairs = []
    while len(pairs) < n and len({r["voice"] for r in pool}) >= 2:
        a = pool.pop(int(rng.integers(len(pool))))
        others = [i for i, r in enumerate(pool) if r["voice"] != a["voice"]]
        b = pool.pop(others[int(rng.integers(len(others)))])
        pairs.append((a, b))
        if len({r["voice"] for r in pool}) < 2 and len(pairs) < n:
            pool = list(rows)
    return pairs


def mix_pair(s1: np.ndarray, s2: np.ndarray, rel_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wsj0-2mix mixing: unit RMS, s1 at +rel_db/2 and s2 at −rel_db/2 dB, truncated to the shorter,
    scaled so that the mixture peaks at 0.9. -> (mix, s1, s2), each (M,)"""
    n = min(len(s1), len(s2))
    s1, s2 = s1[:n], s2[:n]
    s1 = s1 / max(np.sqrt(np.mean(s1 ** 2)), 1e-9) * 10 ** (rel_db / 40)
    s2 = s2 / max(np.sqrt(np.mean(s2 ** 2)), 1e-9) * 10 ** (-rel_db / 40)
    g = PEAK / max(np.abs(s1 + s2).max(), 1e-9)
    s1, s2 = (s1 * g).astype(np.float32), (s2 * g).astype(np.float32)
    return s1 + s2, s1, s2


def write_mixtures(root: Path, split: str, pairs, rate: int, rng: np.random.Generator) -> list[dict]:
    """Write ``pairs`` as wsj0-2mix mixtures of ``split`` -> the info rows."""
    base = root / f"wav{rate // 1000}k" / "min" / split
    info = []
    for k, (a, b) in enumerate(pairs):
        rel = float(rng.uniform(0, LEVEL_DB))
        ua, ub = f"{a['voice']}-{split}{k:04d}", f"{b['voice']}-{split}{k:04d}"
        name = f"{ua}_{rel / 2:.4f}_{ub}_{-rel / 2:.4f}"
        x1, _ = read_audio(root / a["path"])
        x2, _ = read_audio(root / b["path"])
        mix, s1, s2 = mix_pair(x1[0], x2[0], rel)
        write_audio_group([(base / d / f"{name}.wav", y) for d, y in (("mix", mix), ("s1", s1), ("s2", s2))],
                          rate, subtype="PCM_16")
        info.append({"mixture_ID": name, "length": len(mix), "rel_level_db": round(rel, 4),
                     "s1_utt": a["id"], "s1_voice": a["voice"], "s1_family": a["family"],
                     "s2_utt": b["id"], "s2_voice": b["voice"], "s2_family": b["family"]})
    meta = base.parent / "metadata" / f"mixture_{split}_info.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if info:
        w = csv.DictWriter(buf, fieldnames=list(info[0]))
        w.writeheader()
        w.writerows(info)
    write_text_atomic(meta, buf.getvalue())
    return info


def build_corpus(root: Path, train_voices: list[Voice], test_voices: list[Voice], engines: dict,
                 *, rate: int = 8000, utts_per_voice: int = 12, max_recorded: int = 0,
                 cv_fraction: float = 0.1, n_cv: int = 100, n_tt: int = 40, seed: int = 0,
                 settings: dict | None = None, progress=None) -> dict:
    """Build the corpus in ``root`` (see the module's doc) -> the manifest (also written)."""
    root = Path(root)
    ids = [v.id for v in train_voices + test_voices]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"voice ids used twice: {', '.join(dup)}")
    rows = make_utterances(root, test_voices + train_voices, engines, rate, utts_per_voice, seed,
                           max_recorded, progress)
    assign_splits(rows, {v.id for v in test_voices}, cv_fraction, seed)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("tr", "cv", "tt")}
    rng = np.random.default_rng(_seed_of(seed, "mix"))
    mixtures = {"tr": write_mixtures(root, "tr", pair_by_length(by_split["tr"], rng), rate, rng)}
    if by_split["cv"]:
        mixtures["cv"] = write_mixtures(root, "cv", random_pairs(by_split["cv"], n_cv, rng), rate, rng)
    if by_split["tt"]:
        mixtures["tt"] = write_mixtures(root, "tt", random_pairs(by_split["tt"], n_tt, rng), rate, rng)
    write_text_atomic(root / "utterances.jsonl",
                      "".join(json.dumps(CorpusUtterance(**{k: r[k] for k in CorpusUtterance.__dataclass_fields__}).__dict__) + "\n"
                              for r in rows))
    voices = []
    for v in train_voices + test_voices:
        mine = [r for r in rows if r["voice"] == v.id]
        voices.append({"id": v.id, "family": v.family, "licence": v.licence, "attribution": v.attribution,
                       "sex": v.sex, "split": "tt" if v in test_voices else "tr+cv",
                       "params": v.params, "utterances": len(mine),
                       "seconds": round(sum(r["seconds"] for r in mine), 1)})
    families = sorted({v["family"] for v in voices})
    manifest = {
        "settings": {**(settings or {}), "rate": rate, "seed": seed, "utts_per_voice": utts_per_voice,
                     "cv_fraction": cv_fraction, "n_cv": n_cv, "n_tt": n_tt},
        "totals": {s: {"utterances": len(by_split[s]), "voices": len({r["voice"] for r in by_split[s]}),
                       "hours": round(sum(r["seconds"] for r in by_split[s]) / 3600, 3),
                       "mixtures": len(mixtures.get(s, []))} for s in ("tr", "cv", "tt")},
        "families": {f: {"voices": sum(v["family"] == f for v in voices),
                         "hours": round(sum(v["seconds"] for v in voices if v["family"] == f) / 3600, 3),
                         "licence": next(v["licence"] for v in voices if v["family"] == f)} for f in families},
        "voices": voices,
    }
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest
