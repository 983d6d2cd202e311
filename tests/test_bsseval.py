import math

import numpy as np
import pytest

from diffsep.evaluation.bsseval import dataset_sdr, framewise_sdr, stem_sdrs, track_sdr


def test_hand_computed_frames():
    """Two frames of 4 samples, 2 channels: errors of known energy; a trailing part frame dropped."""
    ref = np.array([[1.0, -1, 1, -1, 2, 2, 2, 2, 9], [1, 1, 1, 1, 0, 0, 0, 0, 9]])
    est = ref.copy()
    est[0, 0] += 1.0  # frame 1: signal 8, error 1
    est[1, 4:8] += 0.5  # frame 2: signal 16, error 4 * 0.25 = 1
    sdr = framewise_sdr(est, ref, window=4)
    np.testing.assert_allclose(sdr, [10 * math.log10(8), 10 * math.log10(16)])
    assert track_sdr(est, ref, sample_rate=4) == pytest.approx(np.median(sdr))


def test_silent_reference_frames_are_left_out_and_exact_frames_are_infinite():
    ref = np.concatenate([np.zeros(8), np.ones(8)])[None]
    est = ref.copy()
    est[0, 12] = 0.5  # last frame: signal 4, error 0.25
    sdr = framewise_sdr(est, ref, window=4)
    assert np.isnan(sdr[:2]).all() and sdr[2] == np.inf and sdr[3] == pytest.approx(10 * math.log10(16))
    assert track_sdr(est, ref, 4) == np.inf  # the mean of the middle two, inf and 12.04 dB
    assert math.isnan(track_sdr(ref * 0, ref * 0, 4))


def test_sdr_is_the_image_snr_whatever_the_frame_split():
    """One frame spanning everything gives the plain SNR; scaling both by a gain changes nothing."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000))
    est = ref + 0.1 * rng.standard_normal((2, 1000))
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((est - ref) ** 2))
    assert framewise_sdr(est, ref, 1000)[0] == pytest.approx(snr)
    np.testing.assert_allclose(framewise_sdr(3 * est, 3 * ref, 100), framewise_sdr(est, ref, 100))


def test_stems_and_dataset_medians():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 2, 800))
    noise = np.array([0.01, 0.1, 0.3, 1.0])[:, None, None] * rng.standard_normal((4, 2, 800))
    scores = stem_sdrs(ref + noise, ref, sample_rate=100)
    assert scores.shape == (4,) and np.all(np.diff(scores) < 0)  # more noise, lower SDR
    assert dataset_sdr([1.0, np.nan, 3.0, 10.0]) == 3.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        framewise_sdr(np.zeros((2, 10)), np.zeros((1, 10)), 5)


def test_stem_improvement_over_the_mixture_is_zero_for_the_mixture_and_positive_for_better():
    from diffsep.evaluation.scoring import Scoring, score_item

    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 2, 800))
    mix = ref.sum(0)
    stems = Scoring(metrics=("sdri", "si_sdri"), stems=("a", "b"))
    same = score_item(np.stack([mix, mix]), ref, mix, 100, stems)
    assert same["sdri_a"] == pytest.approx(0) and same["sdri"] == pytest.approx(0)
    better = score_item(ref + 0.1 * rng.standard_normal(ref.shape), ref, mix, 100, stems)
    assert better["sdri_a"] > 10 and better["sdri_b"] > 10 and better["si_sdri"] > 10
