"""Audio helpers: length fitting, resampling, atomic group writes."""
import os
import stat

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings, strategies as st

from diffsep.storage.audio import fit_length, read_audio, resample, write_audio_group


@given(n=st.integers(1, 50), length=st.integers(0, 60))
@settings(max_examples=50, deadline=None)
def test_fit_length_crops_or_zero_pads(n, length):
    x = np.arange(1, n + 1, dtype=np.float32)[None].repeat(2, 0)
    y = fit_length(x, length)
    assert y.shape == (2, length)
    k = min(n, length)
    assert np.array_equal(y[:, :k], x[:, :k]) and not y[:, k:].any()


def test_resample_keeps_a_tone_and_the_requested_length():
    t = np.arange(8000) / 8000
    x = np.sin(2 * np.pi * 440 * t)[None]
    y = resample(x, 8000, 16000, length=16001)
    assert y.shape == (1, 16001) and y.dtype == np.float32
    ref = np.sin(2 * np.pi * 440 * np.arange(16001) / 16000)
    assert np.abs(y[0, 100:-100] - ref[100:-100]).max() < 1e-2


def test_group_write_is_all_or_nothing_and_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        a, b = tmp_path / "s1" / "x.wav", tmp_path / "s2" / "x.flac"
        write_audio_group([(a, np.zeros(100) + 0.1), (b, np.zeros(100) + 0.2)], 8000)
        assert stat.S_IMODE(a.stat().st_mode) == 0o644 and stat.S_IMODE(b.stat().st_mode) == 0o644
        assert read_audio(a)[0].shape == (1, 100) and sf.info(str(b)).format == "FLAC"
        with pytest.raises(ValueError, match="BOGUS"):  # the second file cannot be written: neither lands
            write_audio_group([(tmp_path / "s1" / "y.wav", np.zeros(10)),
                               (tmp_path / "s2" / "y.bogus", np.zeros(10))], 8000)
        assert not (tmp_path / "s1" / "y.wav").exists()
        leftovers = [p.name for p in tmp_path.rglob("*") if "diffsep-tmp" in p.name]
        assert leftovers == []
    finally:
        os.umask(old)
