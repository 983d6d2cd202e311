"""Dynamic mixing: speakers from the layouts, fresh mixtures of distinct speakers that repeat by
(seed, epoch, index), relative levels, speed perturbation."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.data import Item
from diffsep.data.dynamic import DynamicMixDataset, source_speakers, utterance_speaker


def test_speakers_from_each_layout():
    wsj = Item("011a0101_1.2_40ac0208_-1.2", Path("m.wav"), (Path("a.wav"), Path("b.wav")))
    assert source_speakers("wsj0_mix", wsj) == ["011", "40a"]
    gen = Item("esp-f1-tr0000_0.6_mb-us1-tr0011_-0.6", Path("m.wav"), (Path("a.wav"), Path("b.wav")))
    assert source_speakers("wsj0_mix", gen) == ["esp-f1", "mb-us1"]
    libri = Item("x", Path("m.wav"), (Path("/d/s1/103-1240-0003_19-198-0001.wav"), Path("/d/s2/19-198-0001.wav")))
    assert source_speakers("librimix", libri) == ["103", "19"]
    folder = Item("x", Path("m.wav"), (Path("/d/s1/x.wav"), Path("/d/s2/x.wav")))
    assert source_speakers("folder", folder) == ["/d/s1/x.wav", "/d/s2/x.wav"]
    assert utterance_speaker("flite-kal16-cv0003") == "flite-kal16"


def tone(freq, n, sr=8000, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture
def speakers_tree(tmp_path):
    """wsj0-mix names over 4 speakers; each speaker's utterances are tones at its own frequency."""
    freqs = {"aaa": 200.0, "bbb": 450.0, "ccc": 700.0, "ddd": 1100.0}
    items = []
    for i, (s1, s2) in enumerate([("aaa", "bbb"), ("ccc", "ddd"), ("aaa", "ccc"), ("bbb", "ddd")]):
        name = f"{s1}{i}0101_1.0_{s2}{i}0202_-1.0"
        paths = []
        for k, spk in enumerate((s1, s2)):
            p = tmp_path / f"s{k + 1}" / f"{name}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, tone(freqs[spk], 12000 + 500 * i, amp=0.1 * (k + 1)), 8000, subtype="FLOAT")
            paths.append(p)
        items.append(Item(name, tmp_path / "mix.wav", tuple(paths)))
    return items, freqs


def peak_hz(x, sr=8000):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


def test_fresh_mixtures_of_distinct_speakers_repeat_by_seed_epoch_index(speakers_tree):
    items, freqs = speakers_tree
    ds = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=3, level_db=5.0)
    assert len(ds) == 4 and ds.speaker_names == sorted(freqs)
    pairs = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x = ds[i]
            assert x["sources"].shape == (2, 4000) and torch.equal(x["mix"], x["sources"].sum(0, keepdim=True))
            assert torch.equal(ds[i]["mix"], x["mix"])  # a function of (seed, epoch, index)
            found = [min(freqs, key=lambda s: abs(freqs[s] - peak_hz(src.numpy()))) for src in x["sources"]]
            assert found[0] != found[1]  # two different speakers
            pairs.add(tuple(sorted(found)))
            rms = x["sources"].square().mean(-1).sqrt().numpy()
            assert abs(20 * np.log10(rms[0] / rms[1])) <= 5.0 + 1e-3  # relative level within ±5 dB
    assert len(pairs) > 2  # speakers recombine beyond the 4 original pairs' partners
    ds.set_epoch(0)
    other = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=4)
    assert not torch.equal(other[0]["mix"], ds[0]["mix"])


def test_speed_perturbation_scales_the_frequency(speakers_tree):
    items, freqs = speakers_tree
    fast = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, speeds=[1.25])
    for i in range(4):
        srcs = fast[i]["sources"].numpy()
        got = sorted(peak_hz(s) for s in srcs)
        assert all(min(abs(g - 1.25 * f) for f in freqs.values()) < 10 for g in got), got


def test_needs_enough_speakers(speakers_tree):
    items, _ = speakers_tree
    with pytest.raises(ValueError, match="at least 5 speakers"):
        DynamicMixDataset(items, "wsj0_mix", 5, 8000, 4000)
