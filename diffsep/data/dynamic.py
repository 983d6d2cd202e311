"""Dynamic mixing: every training item is a new mixture of K utterances by K different speakers,
drawn from the split's source files at random crops, random relative levels and (optionally)
random speeds. The draws are a function of (seed, epoch, index) only, so runs, resumes and the
batch order across W processes repeat exactly, whatever the number of DataLoader workers.

Speakers come from the layout: wsj0-mix mixture names ``UTT1_SNR1_UTT2_SNR2`` (WSJ0 utterance ids
start with the 3-character speaker id; generated corpora name utterances ``VOICE-trNNNN``),
LibriMix source files ``SPEAKER-CHAPTER-UTT``; the ``folder`` layout has no speaker ids, so every
file counts as its own speaker (only distinct files are mixed).
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import torch

from ..storage.audio import resample
from .augment import random_eq
from .codec import telephone
from .dataset import Item
from .layouts import LAYOUTS
from .pitch_shift import pitch_shift
from .reading import clip_info, read_clip
from .reverb import random_rir, reverberate
from .vtlp import formant_shift

def source_speakers(kind: str, item: Item) -> list[str]:
    """One speaker id per source file of ``item``, as the layout ``kind`` reads them."""
    return LAYOUTS[kind].speakers(item)


def speaker_probabilities(names: list[str], weights: dict[str, float]) -> np.ndarray | None:
    """Drawing probabilities of ``names`` from {glob: weight} (first matching pattern, else 1);
    None (uniform) when no weights are given."""
    if not weights:
        return None
    w = np.array([next((float(v) for k, v in weights.items() if fnmatchcase(n, k)), 1.0) for n in names])
    return w / w.sum() if w.sum() > 0 else w


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str
    frames: int


class DynamicMixDataset(torch.utils.data.Dataset):
    """Items -> {"mix": (1, segment), "sources": (K, 1, segment), "length", "name"} like
    :class:`~diffsep.data.dataset.SeparationDataset`, each a fresh mixture.

    Args:
        items, kind: the split's items and its layout (for the speaker ids).
        n_src: K; sample_rate: the model's (files are read by :mod:`diffsep.data.reading`);
            segment: samples per item.
        level_db: the sources' levels (after scaling each to unit RMS) are drawn uniformly in
            ±level_db / 2 dB, so that two sources differ by up to level_db (wsj0-2mix: 5 dB).
        speeds: speed-perturbation factors to draw from per source (e.g. 0.9, 1.0, 1.1: resampling,
            which also shifts the pitch); empty for none.
        epoch_size: items per epoch (default: as many as the split has mixtures).
        speaker_weights: {glob pattern of speaker ids: weight}; a speaker is drawn with the weight
            of the first pattern it matches (1 if none), e.g. {"esp-*": 0.3} to draw the espeak
            voices of a generated corpus less often.
        eq_db: each source goes through a random smooth EQ of up to ±eq_db dB
            (:func:`~diffsep.data.augment.random_eq`); 0 for none.
        pitch_semitones: each source's pitch shifted by a uniform draw in ±pitch_semitones
            semitones at constant duration (:func:`~diffsep.data.pitch_shift.pitch_shift`); 0: off.
        vtlp_alpha: each source's formants moved by a factor drawn in [1 - a, 1 + a], pitch kept
            (:func:`~diffsep.data.vtlp.formant_shift`); 0: off.
        reverb_prob, reverb_rt60: with this probability a source is convolved with the response of
            its own random room of RT60 drawn in reverb_rt60 (lo, hi) s
            (:mod:`~diffsep.data.reverb`); the target is that reverberant voice, aligned at the
            direct path, so the mixture stays the sum of the targets.
        codec_prob: with this probability a source goes through a telephone channel (300-3400 Hz,
            mu-law, A-law or a GSM-like LPC coder: :func:`~diffsep.data.codec.telephone`) before
            mixing, as the prompts of a corpus recorded over the phone are.

    Each augmentation draws from its own random stream of (seed, epoch, index), so switching one
    on or off leaves every other draw (speakers, crops, levels, speeds, EQ) as it was. The order is
    speed, pitch, formants, EQ, room, telephone, then unit RMS.
    """

    def __init__(self, items: list[Item], kind: str, n_src: int, sample_rate: int, segment: int,
                 seed: int = 0, level_db: float = 5.0, speeds=(), epoch_size: int | None = None,
                 speaker_weights: dict[str, float] | None = None, eq_db: float = 0.0,
                 pitch_semitones: float = 0.0, vtlp_alpha: float = 0.0, reverb_prob: float = 0.0,
                 reverb_rt60=(0.15, 0.6), codec_prob: float = 0.0):
        self.n_src, self.sample_rate, self.segment = n_src, sample_rate, segment
        self.seed, self.level_db, self.speeds, self.eq_db = seed, level_db, tuple(speeds), eq_db
        if not (0 <= vtlp_alpha < 1 and 0 <= reverb_prob <= 1 and 0 <= codec_prob <= 1 and pitch_semitones >= 0):
            raise ValueError("dynamic mixing: need pitch_semitones >= 0, 0 <= vtlp_alpha < 1 and "
                             "probabilities in [0, 1]")
        if len(reverb_rt60) != 2 or not 0 < reverb_rt60[0] <= reverb_rt60[1]:
            raise ValueError(f"dynamic mixing: reverb_rt60 must be [lo, hi] seconds with 0 < lo <= hi, got {reverb_rt60}")
        self.pitch_semitones, self.vtlp_alpha, self.codec_prob = pitch_semitones, vtlp_alpha, codec_prob
        self.reverb_prob, self.reverb_rt60 = reverb_prob, tuple(float(v) for v in reverb_rt60)
        self.epoch = 0
        seen, self.utterances = set(), []
        for it in items:
            for path, spk in zip(it.sources, source_speakers(kind, it)):
                if path in seen:
                    continue
                seen.add(path)
                self.utterances.append(Utterance(Path(path), spk, clip_info(path, sample_rate, 1)))
        self.speakers: dict[str, list[int]] = {}
        for i, u in enumerate(self.utterances):
            self.speakers.setdefault(u.speaker, []).append(i)
        self.speaker_names = sorted(self.speakers)
        if len(self.speaker_names) < n_src:
            raise ValueError(f"dynamic mixing needs at least {n_src} speakers, the split has "
                             f"{len(self.speaker_names)}")
        self.speaker_p = speaker_probabilities(self.speaker_names, speaker_weights or {})
        if self.speaker_p is not None and np.count_nonzero(self.speaker_p) < n_src:
            raise ValueError(f"dynamic mixing needs at least {n_src} speakers of non-zero weight")
        self.size = epoch_size or len(items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, i, 7))
        eq_rng = np.random.default_rng((self.seed, self.epoch, i, 11))  # the other draws stay as without EQ
        # pitch, formants, room, telephone: each its own stream too
        voice = [np.random.default_rng((self.seed, self.epoch, i, tag)) for tag in (13, 17, 19, 23)]
        speakers = rng.choice(len(self.speaker_names), self.n_src, replace=False, p=self.speaker_p)
        sources = []
        for s in speakers:
            pool = self.speakers[self.speaker_names[s]]
            utt = self.utterances[pool[rng.integers(len(pool))]]
            speed = float(rng.choice(self.speeds)) if self.speeds else 1.0
            gain_db = rng.uniform(-self.level_db / 2, self.level_db / 2)
            sources.append(self._source(utt, speed, rng, eq_rng, *voice) * 10 ** (gain_db / 20))
        sources = torch.from_numpy(np.stack(sources))[:, None]  # (K, 1, N)
        return {"mix": sources.sum(0), "sources": sources, "length": self.segment,
                "name": f"dm-{self.epoch}-{i}"}

    def _source(self, utt: Utterance, speed: float, rng, eq_rng, pitch_rng, formant_rng, room_rng,
                codec_rng) -> np.ndarray:
        """A random crop of ``segment`` samples after speed perturbation (zero-padded when the
        utterance is shorter), through the augmentations that are on (each drawn from its own
        rng), at unit RMS. -> (segment,) float32."""
        need = int(np.ceil(self.segment * speed)) + 1
        start = int(rng.integers(0, max(1, utt.frames - need + 1)))
        x = read_clip(utt.path, self.sample_rate, 1, start, min(need, utt.frames))[0]
        if speed != 1.0:  # played `speed` times faster: read as if sampled at speed × rate
            x = resample(x[None], round(self.sample_rate * speed), self.sample_rate)[0]
        x = np.pad(x, (0, max(0, self.segment - len(x))))[:self.segment]
        sr = self.sample_rate
        if self.pitch_semitones > 0:
            x = pitch_shift(x, 2 ** (pitch_rng.uniform(-self.pitch_semitones, self.pitch_semitones) / 12), sr)
        if self.vtlp_alpha > 0:
            x = formant_shift(x, formant_rng.uniform(1 - self.vtlp_alpha, 1 + self.vtlp_alpha), sr)
        if self.eq_db > 0:
            x = random_eq(x, eq_rng, self.eq_db)
        if self.reverb_prob > 0 and room_rng.random() < self.reverb_prob:
            x = reverberate(x, *random_rir(sr, room_rng, self.reverb_rt60))
        if self.codec_prob > 0 and codec_rng.random() < self.codec_prob:
            x = telephone(x, sr, codec_rng)
        rms = np.sqrt(np.mean(x ** 2))
        return (x / rms if rms > 0 else x).astype(np.float32)
