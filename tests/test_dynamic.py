"""Dynamic mixing: speakers from the layouts, fresh mixtures of distinct speakers that repeat by
(seed, epoch, index), relative levels, speed perturbation."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.data import Item
from diffsep.config.build import build_datasets
from diffsep.config.settings import ConfigError, load_config
from diffsep.data.augment import eq_curve_db, random_eq
from diffsep.data.dynamic import DynamicMixDataset, source_speakers
from diffsep.data.layouts import utterance_speaker


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
            assert x["sources"].shape == (2, 1, 4000) and torch.equal(x["mix"], x["sources"].sum(0))
            assert torch.equal(ds[i]["mix"], x["mix"])  # a function of (seed, epoch, index)
            found = [min(freqs, key=lambda s: abs(freqs[s] - peak_hz(src.numpy()))) for src in x["sources"][:, 0]]
            assert found[0] != found[1]  # two different speakers
            pairs.add(tuple(sorted(found)))
            rms = x["sources"][:, 0].square().mean(-1).sqrt().numpy()
            assert abs(20 * np.log10(rms[0] / rms[1])) <= 5.0 + 1e-3  # relative level within ±5 dB
    assert len(pairs) > 2  # speakers recombine beyond the 4 original pairs' partners
    ds.set_epoch(0)
    other = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=4)
    assert not torch.equal(other[0]["mix"], ds[0]["mix"])


def test_speed_perturbation_scales_the_frequency(speakers_tree):
    items, freqs = speakers_tree
    fast = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, speeds=[1.25])
    for i in range(4):
        srcs = fast[i]["sources"][:, 0].numpy()
        got = sorted(peak_hz(s) for s in srcs)
        assert all(min(abs(g - 1.25 * f) for f in freqs.values()) < 10 for g in got), got


def test_needs_enough_speakers(speakers_tree):
    items, _ = speakers_tree
    with pytest.raises(ValueError, match="at least 5 speakers"):
        DynamicMixDataset(items, "wsj0_mix", 5, 8000, 4000)


def test_speaker_weights_set_how_often_each_speaker_is_drawn(speakers_tree):
    items, freqs = speakers_tree
    ds = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 400, epoch_size=600,
                           speaker_weights={"a*": 0.0, "b?b": 3.0})
    counts = dict.fromkeys(freqs, 0)
    for i in range(len(ds)):
        for src in ds[i]["sources"][:, 0]:
            counts[min(freqs, key=lambda s: abs(freqs[s] - peak_hz(src.numpy())))] += 1
    assert counts["aaa"] == 0  # weight 0: never drawn
    # pairs without replacement from weights 3, 1, 1: bbb is in 1 - P(ccc, ddd) = 0.9 of them
    assert 0.85 < counts["bbb"] / len(ds) < 0.95 and counts["ccc"] + counts["ddd"] == 2 * len(ds) - counts["bbb"]
    with pytest.raises(ValueError, match="non-zero weight"):
        DynamicMixDataset(items, "wsj0_mix", 2, 8000, 400, speaker_weights={"*": 0.0, "ddd": 1.0})


def test_eq_curve_is_bounded_smooth_and_drawn_from_the_rng():
    rng = np.random.default_rng(0)
    curves = [eq_curve_db(513, rng, 6.0) for _ in range(50)]
    assert all(np.abs(c).max() <= 6.0 for c in curves)
    assert max(np.abs(c).max() for c in curves) > 5.0  # the range is used
    assert all(np.abs(np.diff(c)).max() < 6.0 for c in curves)  # no jumps between bins
    assert not np.allclose(curves[0], curves[1])
    assert np.array_equal(eq_curve_db(513, np.random.default_rng(4), 6.0), eq_curve_db(513, np.random.default_rng(4), 6.0))


def test_random_eq_is_the_curve_applied_to_the_spectrum():
    x = np.random.default_rng(1).standard_normal(4000)
    y = random_eq(x, np.random.default_rng(7), 9.0)
    want_db = eq_curve_db(2001, np.random.default_rng(7), 9.0)
    got_db = 20 * np.log10(np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x)))
    np.testing.assert_allclose(got_db, want_db, atol=1e-6)
    np.testing.assert_allclose(random_eq(x, np.random.default_rng(7), 0.0), x, atol=1e-12)


def test_eq_changes_sources_levels_only_through_the_curve(speakers_tree):
    items, _ = speakers_tree
    plain = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=2)
    eq = DynamicMixDataset(items, "wsj0_mix", 2, 8000, 4000, seed=2, eq_db=10.0)
    a, b = plain[0]["sources"][:, 0].numpy(), eq[0]["sources"][:, 0].numpy()
    assert not np.allclose(a, b)
    # tones stay tones at the same frequency, and levels stay the drawn relative levels
    assert all(abs(peak_hz(x) - peak_hz(y)) < 5 for x, y in zip(a, b))
    np.testing.assert_allclose(np.sqrt((a ** 2).mean(-1)), np.sqrt((b ** 2).mean(-1)), rtol=1e-4)


@pytest.mark.parametrize("option", ["data.eq_db=6", "data.speed_perturb=[0.9]", "data.dm_speaker_weights={a*: 2}"])
def test_dynamic_mixing_options_without_dynamic_mixing_are_config_errors(tmp_path, option):
    with pytest.raises(ConfigError, match="augmentations of dynamic mixing"):
        build_datasets(load_config(None, [f"data.root={tmp_path}", option]))
    with pytest.raises(ConfigError, match="dm_speaker_weights must be >= 0"):
        load_config(None, ["data.dm_speaker_weights={esp-*: -1}"])
