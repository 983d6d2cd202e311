import numpy as np

from diffsep.storage.audio import read_audio
from diffsep.data.synth_music import STEMS, make_track, write_corpus


def test_stems_are_stereo_distinct_and_sum_to_the_mixture():
    t = make_track(2.0, 8000, seed=3)
    assert set(t) == {*STEMS, "mixture"}
    for s in STEMS:
        assert t[s].shape == (2, 16000) and t[s].dtype == np.float32 and np.abs(t[s]).max() > 1e-3
        assert not np.allclose(t[s][0], t[s][1])  # panned: the channels differ
    np.testing.assert_allclose(t["mixture"], sum(t[s] for s in STEMS), atol=1e-6)
    assert np.abs(t["mixture"]).max() <= 0.95 + 1e-6
    spectra = {s: np.abs(np.fft.rfft(t[s].mean(0))) for s in STEMS}
    centroid = {s: np.sum(np.arange(sp.size) * sp) / np.sum(sp) for s, sp in spectra.items()}
    assert centroid["bass"] < centroid["other"] < centroid["drums"]  # bass lowest, drums brightest


def test_tracks_repeat_by_seed():
    a, b, c = make_track(1.0, 8000, 1), make_track(1.0, 8000, 1), make_track(1.0, 8000, 2)
    assert np.array_equal(a["vocals"], b["vocals"]) and not np.array_equal(a["vocals"], c["vocals"])


def test_corpus_has_the_musdb_layout_and_exact_sums(tmp_path):
    write_corpus(tmp_path, n_train=2, n_test=1, seconds=1.0, sample_rate=8000)
    tracks = sorted(tmp_path.glob("*/track*"))
    assert [p.parent.name for p in tracks] == ["test", "train", "train"]
    for track in tracks:
        x = {p.stem: read_audio(p)[0] for p in track.glob("*.wav")}
        assert set(x) == {*STEMS, "mixture"} and x["mixture"].shape == (2, 8000)
        np.testing.assert_allclose(x["mixture"], sum(x[s] for s in STEMS), atol=1e-6)
