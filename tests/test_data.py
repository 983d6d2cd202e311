import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsep.storage.audio import AudioError, read_audio
from diffsep.data import SeparationDataset, build_items, collate, denormalize, normalize
from diffsep.data.layouts import LayoutError
from diffsep.data.batch_order import GlobalBatchOrder
from helpers_audio import make_mix_tree, tone_sources


def test_wsj0_mix_layout_and_crops(tmp_path):
    for split in ("tr", "cv"):
        make_mix_tree(tmp_path / "wav8k" / "min" / split, 3, n_src=3)
    items = build_items("wsj0_mix", tmp_path, "tr", n_src=3)
    assert [it.name for it in items] == ["item00", "item01", "item02"]
    ds = SeparationDataset(items, 8000, segment=1000, seed=1)
    a = ds[1]
    assert a["mix"].shape == (1, 1000) and a["sources"].shape == (3, 1, 1000)  # (C, N), (K, C, N)
    torch.testing.assert_close(a["sources"].sum(0), a["mix"], atol=1e-5, rtol=0)  # common offset
    torch.testing.assert_close(ds[1]["mix"], a["mix"])  # crops depend on (seed, epoch, index) only
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["mix"], a["mix"])
    whole = SeparationDataset(items, 8000)
    assert whole[2]["mix"].shape[-1] == 4000 + 2 * 97


def test_librimix_layout(tmp_path):
    level = tmp_path / "wav8k" / "min"
    names = make_mix_tree(level / "dev" / "tmp", 2)
    for sub in ("mix", "s1", "s2"):  # LibriMix names the mixture folder mix_clean
        (level / "dev" / ("mix_clean" if sub == "mix" else sub)).mkdir(parents=True, exist_ok=True)
        for n in names:
            (level / "dev" / "tmp" / sub / f"{n}.wav").rename(
                level / "dev" / ("mix_clean" if sub == "mix" else sub) / f"{n}.wav")
    (level / "metadata").mkdir()
    with open(level / "metadata" / "mixture_dev_mix_clean.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"])
        for n in names:  # one absolute-style path from another machine, one relative path
            w.writerow([n, f"/elsewhere/Libri2Mix/wav8k/min/dev/mix_clean/{n}.wav",
                        f"wav8k/min/dev/s1/{n}.wav", f"wav8k/min/dev/s2/{n}.wav", 4000])
    items = build_items("librimix", tmp_path, "dev", mixture="mix_clean")
    assert [it.name for it in items] == names and items[0].mix.parent.name == "mix_clean"
    with pytest.raises(LayoutError, match="mixture_test_mix_clean.csv: missing LibriMix metadata"):
        build_items("librimix", tmp_path, "test")


def test_vbdemand_layout_derives_noise(tmp_path):
    for sub in ("clean", "noisy"):
        (tmp_path / "train" / sub).mkdir(parents=True)
    clean = tone_sources(1, 3000, 0, 16000)[0]
    noise = 0.1 * np.random.default_rng(1).standard_normal(3000).astype(np.float32)
    sf.write(tmp_path / "train" / "clean" / "p1.wav", clean, 16000, subtype="FLOAT")
    sf.write(tmp_path / "train" / "noisy" / "p1.wav", clean + noise, 16000, subtype="FLOAT")
    ds = SeparationDataset(build_items("vbdemand", tmp_path, "train"), 16000)
    ex = ds[0]
    np.testing.assert_allclose(ex["sources"][0, 0].numpy(), clean, atol=1e-6)
    np.testing.assert_allclose(ex["sources"][1, 0].numpy(), noise, atol=1e-6)


def test_folder_layout_missing_partner_and_missing_root(tmp_path):
    make_mix_tree(tmp_path / "set", 2)
    assert len(build_items("folder", tmp_path, "set")) == 2
    (tmp_path / "set" / "s2" / "item01.wav").unlink()
    with pytest.raises(LayoutError, match=r"item01\.wav: missing partner file\(s\) .*s2.item01\.wav"):
        build_items("folder", tmp_path, "set")
    with pytest.raises(LayoutError, match="dataset root does not exist"):
        build_items("folder", tmp_path / "nope", "set")
    with pytest.raises(LayoutError, match="unknown data.kind 'wsj'; valid: wsj0_mix"):
        build_items("wsj", tmp_path, "set")


def test_broken_files_give_clear_errors(tmp_path):
    make_mix_tree(tmp_path / "set", 2)
    (tmp_path / "set" / "s1" / "item00.wav").write_bytes(b"RIFF garbage")
    ds = SeparationDataset(build_items("folder", tmp_path, "set"), 8000)
    with pytest.raises(AudioError, match=r"s1.item00\.wav: unreadable audio"):
        ds[0]
    bad = tmp_path / "nan.wav"
    sf.write(bad, np.array([0.0, np.nan, 0.1], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or Inf"):
        read_audio(bad)


def test_collate_pads_and_normalisation_round_trip():
    batch = [{"mix": torch.ones(1, n), "sources": torch.ones(2, n) / 2, "length": n, "name": str(n)}
             for n in (5, 8)]
    b = collate(batch)
    assert b["mix"].shape == (2, 1, 8) and b["lengths"].tolist() == [5, 8]
    assert b["mix"][0, 0, 5:].abs().sum() == 0
    s = torch.randn(3, 2, 1, 100) + 0.5  # (B, K, C, N)
    mix = s.sum(1)
    m, sn, mean, std = normalize(mix, s)
    torch.testing.assert_close(sn.sum(1), m)  # sources still sum to the mixture
    torch.testing.assert_close(m.std(-1), torch.ones(3, 1))
    torch.testing.assert_close(denormalize(sn, mean, std), s)


def test_multichannel_normalisation_keeps_sums_and_channel_balance_and_inverts():
    s = torch.randn(3, 4, 2, 100) * torch.tensor([1.0, 0.3])[:, None] + 0.5  # right channel quieter
    mix = s.sum(1)
    m, sn, mean, std = normalize(mix, s)
    assert mean.shape == (3, 2, 1) and std.shape == (3, 1, 1)
    torch.testing.assert_close(sn.sum(1), m)
    torch.testing.assert_close(m.flatten(1).std(-1), torch.ones(3))  # one scale for both channels
    ratio = (m[:, 1].std(-1) / m[:, 0].std(-1)) / (mix[:, 1].std(-1) / mix[:, 0].std(-1))
    torch.testing.assert_close(ratio, torch.ones(3))
    torch.testing.assert_close(denormalize(sn, mean, std), s)
    with pytest.raises(ValueError, match=r"sources must be \(B, K, C, N\)"):  # one convention
        normalize(mix[:, :1], s[:, :, 0])


def test_global_batch_order_splits_the_single_process_batches():
    single = GlobalBatchOrder(23, batch_size=4, world_size=1, seed=3)
    ranks = [GlobalBatchOrder(23, batch_size=2, world_size=2, rank=r, seed=3) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == 5
    for b, whole in enumerate(single.batches(epoch=2)):
        assert ranks[0].batches(2)[b] + ranks[1].batches(2)[b] == whole
    assert single.batches(2, start=3) == single.batches(2)[3:]
    assert single.batches(2) != single.batches(3)


def test_musdb_layout_splits_validation_tracks_out_of_train(tmp_path):
    from diffsep.data.synth_music import write_corpus

    write_corpus(tmp_path, n_train=3, n_test=1, seconds=0.5, sample_rate=8000)
    stems = ["vocals", "drums"]
    kw = dict(n_src=2, stems=stems, valid_tracks=["track001"])
    train, valid = (build_items("musdb", tmp_path, s, **kw) for s in ("train", "valid"))
    assert [i.name for i in train] == ["track000", "track002"] and [i.name for i in valid] == ["track001"]
    assert [p.stem for p in train[0].sources] == stems and train[0].mix.stem == "mixture"
    assert len(build_items("musdb", tmp_path, "test", **kw)) == 1
    with pytest.raises(LayoutError, match="validation track names"):
        build_items("musdb", tmp_path, "valid", n_src=2, stems=stems)  # MUSDB's names: none here
    with pytest.raises(LayoutError, match="2 stems"):
        build_items("musdb", tmp_path, "train", n_src=4, stems=stems)
    (tmp_path / "train" / "track002" / "vocals.wav").unlink()
    with pytest.raises(LayoutError, match="track002: missing vocals.wav"):
        build_items("musdb", tmp_path, "train", **kw)


def test_stereo_items_keep_channels_per_stem_and_mono_is_refused_where_stereo_is_expected(tmp_path):
    from diffsep.data.synth_music import write_corpus

    write_corpus(tmp_path, n_train=2, n_test=0, seconds=0.5, sample_rate=8000)
    items = build_items("musdb", tmp_path, "train", n_src=4, valid_tracks=[])
    ds = SeparationDataset(items, 8000, segment=1000, channels=2)
    x = ds[0]
    assert x["mix"].shape == (2, 1000) and x["sources"].shape == (4, 2, 1000)
    torch.testing.assert_close(x["sources"].sum(0), x["mix"], atol=1e-6, rtol=0)
    b = collate([ds[0], ds[1]])
    assert b["mix"].shape == (2, 2, 1000) and b["sources"].shape == (2, 4, 2, 1000)
    with pytest.raises(AudioError, match="2 channels, expected mono"):
        SeparationDataset(items, 8000)
