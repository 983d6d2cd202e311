"""One rule for reading items (diffsep.data.reading), shared by training data and evaluation: files
at another rate are resampled to the model's, crops count at the model's rate, sources may differ
from their mixture by a small tolerance, and errors are one line naming the file."""
import re

import numpy as np
import pytest
import soundfile as sf

from helpers_audio import make_mix_tree
from diffsep.data import SeparationDataset, build_items
from diffsep.data.reading import LENGTH_TOLERANCE_S, read_clip, read_item
from diffsep.storage.audio import AudioError, resample


@pytest.mark.parametrize("file_rate, rate", [(16000, 8000), (8000, 16000), (44100, 8000), (8000, 8000)])
def test_a_crop_at_another_rate_is_the_crop_of_the_resampled_file(tmp_path, file_rate, rate):
    x = np.random.default_rng(0).standard_normal(file_rate + 17).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", x, file_rate, subtype="FLOAT")
    whole = resample(x[None], file_rate, rate)
    np.testing.assert_array_equal(read_clip(tmp_path / "a.wav", rate), whole)
    n = whole.shape[1]
    for start, frames in [(0, 100), (rate // 3, rate // 2), (n - 50, 100), (n + 10, 30)]:
        want = np.pad(whole, ((0, 0), (0, 200)))[:, start:start + frames]
        np.testing.assert_allclose(read_clip(tmp_path / "a.wav", rate, 1, start, frames), want, atol=1e-5)


def test_training_items_at_another_rate_are_resampled_as_evaluation_reads_them(tmp_path):
    make_mix_tree(tmp_path / "set", 2, n=4000)  # 8 kHz files
    items = build_items("folder", tmp_path, "set", n_src=2, sample_rate=16000)
    ds = SeparationDataset(items, 16000, segment=3000, random_crop=False)
    mix, sources = read_item(items[0], 16000)  # what scoring reads: the whole item
    assert ds.lengths[0] == mix.shape[1] == 8000
    x, _ = sf.read(items[0].mix, dtype="float32")
    np.testing.assert_array_equal(mix, resample(x[None], 8000, 16000))
    np.testing.assert_allclose(ds[0]["mix"].numpy(), mix[:, :3000], atol=1e-6)
    np.testing.assert_allclose(ds[0]["sources"].numpy(), sources[..., :3000], atol=1e-6)


def test_sources_within_the_length_tolerance_are_fitted_and_beyond_it_refused(tmp_path):
    make_mix_tree(tmp_path / "set", 1, n=4000)
    item = build_items("folder", tmp_path, "set", n_src=2, sample_rate=8000)[0]
    s2, _ = sf.read(item.sources[1], dtype="float32")
    slack = int(LENGTH_TOLERANCE_S * 8000)
    sf.write(item.sources[1], s2[:-slack], 8000, subtype="FLOAT")  # shorter by the tolerance: padded
    mix, sources = read_item(item, 8000)
    assert sources.shape == (2, 1, mix.shape[1]) and not sources[1, 0, -slack:].any()
    sf.write(item.sources[1], s2[:-slack - 1], 8000, subtype="FLOAT")
    want = f"{item.sources[1]}: {len(s2) - slack - 1} samples where its mixture has {len(s2)}"
    with pytest.raises(AudioError, match=f"^{re.escape(want)}$"):
        read_item(item, 8000)


def test_a_wrong_channel_count_is_named_in_one_line(tmp_path):
    make_mix_tree(tmp_path / "set", 1)
    item = build_items("folder", tmp_path, "set", n_src=2, sample_rate=8000)[0]
    with pytest.raises(AudioError, match=f"^{re.escape(str(item.mix))}: 1 channels, expected stereo$"):
        read_item(item, 8000, channels=2)
