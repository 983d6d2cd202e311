import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from diffsep.storage.audio import read_audio
from diffsep.config.build import build_datasets
from diffsep.config.settings import ConfigError, load_config
from diffsep.data import build_items
from diffsep.data.music import MusicTrainSet
from diffsep.data.synth_music import write_corpus

SEG = 1000


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    write_corpus(root, n_train=4, n_test=0, seconds=0.5, sample_rate=8000)
    return build_items("musdb", root, "train", n_src=4, valid_tracks=[])


def _origin(stem: np.ndarray, k: int, items) -> set[tuple[int, int, bool, int]]:
    """Every (track, offset, swapped, sign) whose stem k, cropped, equals ``stem`` (C, SEG)."""
    found = set()
    for j, it in enumerate(items):
        x, _ = read_audio(it.sources[k])
        for swapped in (False, True):
            y = x[::-1] if swapped else x
            for sign in (1, -1):
                windows = sliding_window_view(sign * y, SEG, axis=1)  # (C, offsets, SEG)
                hits = np.nonzero(np.all(np.abs(windows - stem[:, None]) < 1e-7, axis=(0, 2)))[0]
                found |= {(j, int(o), swapped, sign) for o in hits}
    return found


def test_an_epoch_holds_every_whole_segment_and_item_i_is_a_common_crop_of_its_track(tracks):
    ds = MusicTrainSet(tracks, 8000, SEG)
    assert len(ds) == 4 * (4000 // SEG)  # 4 tracks of 0.5 s: 4 segments each
    i = 9  # the third track's second item
    assert ds.track_of[i] == 2
    x = ds[i]
    origins = [_origin(x["sources"][k].numpy(), k, tracks) for k in range(4)]
    assert all(len(o) == 1 for o in origins)
    (j, off, swapped, sign), = origins[0]
    assert j == 2 and not swapped and sign == 1
    assert all(o == {(2, off, False, 1)} for o in origins)
    torch.testing.assert_close(x["mix"], x["sources"].sum(0))


def test_remix_with_every_augmentation_draws_stems_from_tracks_and_sums_to_the_mixture(tracks):
    ds = MusicTrainSet(tracks, 8000, SEG, remix=True, shift_seconds=0.05, channel_swap=True, sign_flip=True)
    seen_tracks, swaps, signs = set(), set(), set()
    for i in range(len(ds)):
        x = ds[i]
        torch.testing.assert_close(x["mix"], x["sources"].sum(0))
        per_item = set()
        for k in range(4):
            stem = x["sources"][k].numpy()
            if not np.any(stem):  # a silent stretch (a rest of the melody) matches anywhere
                continue
            origin = _origin(stem, k, tracks)
            assert len(origin) == 1, origin  # an exact crop of one stem file, maybe swapped or negated
            (j, _, swapped, sign), = origin
            per_item.add(j)
            swaps.add(swapped)
            signs.add(sign)
        seen_tracks.add(len(per_item))
    assert max(seen_tracks) > 1 and swaps == {False, True} and signs == {1, -1}


def test_gains_stay_in_range_and_draws_repeat_by_epoch(tracks):
    plain = MusicTrainSet(tracks, 8000, SEG)
    scaled = MusicTrainSet(tracks, 8000, SEG, gain_range=[0.25, 1.25])
    a, b = plain[1]["sources"].flatten(1), scaled[1]["sources"].flatten(1)
    sounding = (a ** 2).sum(1) > 0  # a rest of the melody has no level to compare
    ratio = ((b * a).sum(1) / (a ** 2).sum(1))[sounding]  # same crops, scaled
    assert sounding.sum() >= 3 and ((ratio >= 0.25) & (ratio <= 1.25)).all()
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    first = scaled[1]["sources"]
    scaled.set_epoch(1)
    assert not torch.equal(first, scaled[1]["sources"])
    scaled.set_epoch(0)
    assert torch.equal(first, scaled[1]["sources"])


def test_bad_switches_are_config_errors(tracks, tmp_path):
    root = tracks[0].mix.parents[2]
    with pytest.raises(ConfigError, match="gain_range"):
        build_datasets(load_config(None, ["data.kind=musdb", f"data.root={root}", "data.train_split=train",
                                          "data.valid_split=train", "model.n_src=4", "model.audio_channels=2",
                                          "data.gain_range=[2,1]", "data.segment_seconds=0.1"]))
    with pytest.raises(ConfigError, match="augmentations of music tracks"):
        build_datasets(load_config(None, [f"data.root={tmp_path}", "data.remix=true"]))
