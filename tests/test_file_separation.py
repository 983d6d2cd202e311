"""diffsep.separate_file: one file in, (sources, rate) out, with any model the CLI takes."""
import numpy as np
import pytest
import soundfile as sf
import torch

import diffsep
from diffsep.inference.separator import Separator
from diffsep.storage.audio import AudioError


def share_equally(n_src: int, channels: int = 1, rate: int = 8000) -> Separator:
    """A separator whose K estimates are mix / K on every channel: their sum is the mixture."""
    def estimate(mix, generator):  # (B, C, n) -> (B, K, C, n)
        return mix[:, None].repeat(1, n_src, 1, 1) / n_src
    return Separator(estimate, n_src, rate, channels=channels)


def write(path, x, rate):
    sf.write(path, np.asarray(x, dtype=np.float32).T, rate, subtype="FLOAT")
    return path


def noise(n, channels=1, seed=0):
    x = 0.3 * np.random.default_rng(seed).standard_normal((channels, n))
    return x[0] if channels == 1 else x


@pytest.mark.parametrize("file_rate", [8000, 16000, 11025])
@pytest.mark.parametrize("n_src", [2, 3])
def test_mono_model_gives_k_sources_at_the_files_rate_that_sum_to_it(tmp_path, file_rate, n_src):
    mix = noise(file_rate // 2)
    path = write(tmp_path / "mix.wav", mix, file_rate)
    sources, rate = diffsep.separate_file(path, model=share_equally(n_src))
    assert rate == file_rate and sources.dtype == np.float32
    assert sources.shape == (n_src, mix.size)
    # resampled to 8 kHz and back: the sum is the mixture within the band the model's rate keeps
    if file_rate == 8000:
        np.testing.assert_allclose(sources.sum(0), mix, atol=1e-5)
    else:
        assert np.corrcoef(sources.sum(0), mix)[0, 1] > 0.5


def test_rate_option_chooses_the_output_rate(tmp_path):
    path = write(tmp_path / "mix.wav", noise(16000), 16000)
    sources, rate = diffsep.separate_file(path, model=share_equally(2), rate=8000)
    assert rate == 8000 and sources.shape == (2, 8000)


def test_multichannel_model_gives_k_c_n_and_plays_a_mono_file_on_every_channel(tmp_path):
    mono = noise(4000)
    sources, rate = diffsep.separate_file(write(tmp_path / "mono.wav", mono, 8000),
                                          model=share_equally(4, channels=2))
    assert sources.shape == (4, 2, 4000) and rate == 8000
    np.testing.assert_allclose(sources.sum(0), np.stack([mono, mono]), atol=1e-5)
    stereo = noise(4000, channels=2, seed=1)
    sources, _ = diffsep.separate_file(write(tmp_path / "st.wav", stereo, 8000), model=share_equally(4, channels=2))
    np.testing.assert_allclose(sources.sum(0), stereo, atol=1e-5)


def test_stereo_file_to_mono_model_needs_downmix(tmp_path):
    stereo = noise(4000, channels=2)
    path = write(tmp_path / "st.wav", stereo, 8000)
    with pytest.raises(AudioError, match=r"st\.wav: 2 channels.*--downmix"):
        diffsep.separate_file(path, model=share_equally(2))
    sources, _ = diffsep.separate_file(path, model=share_equally(2), downmix=True)
    np.testing.assert_allclose(sources.sum(0), stereo.mean(0), atol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file"),
    (lambda p: write(p, np.zeros(4000), 8000), "silence"),
    (lambda p: write(p, noise(100), 8000), "too short"),
])
def test_unusable_files_raise_naming_the_file(tmp_path, make, message):
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match=message) as e:
        diffsep.separate_file(path, model=share_equally(2))
    assert "bad.wav" in str(e.value)


def test_a_checkpoint_path_with_load_options_is_the_loaded_separator(tmp_path, tiny_checkpoint):
    path = write(tmp_path / "mix.wav", noise(1600), 8000)
    options = dict(sampler={"steps": 1}, seed=3, device="cpu")  # not the checkpoint's own (2 steps, seed 0)
    by_path, _ = diffsep.separate_file(path, model=tiny_checkpoint, **options)
    loaded, _ = diffsep.separate_file(path, model=diffsep.load_separator(str(tiny_checkpoint), **options))
    assert by_path.shape == (2, 1600) and np.isfinite(by_path).all()
    np.testing.assert_allclose(by_path, loaded, atol=1e-6)
    with pytest.raises(TypeError, match="seed"):
        diffsep.separate_file(path, model=diffsep.load_separator(str(tiny_checkpoint)), seed=1)


def test_no_model_means_the_bundled_default(tmp_path, monkeypatch):
    from diffsep.inference import loading
    from diffsep.inference.pretrained import default_model_name

    asked = []

    def fake_load(name, **options):
        asked.append((name, options))
        return share_equally(2)
    monkeypatch.setattr(loading, "load_separator", fake_load)
    sources, _ = diffsep.separate_file(write(tmp_path / "mix.wav", noise(2000), 8000), device="cpu")
    assert asked == [(default_model_name(), {"device": "cpu"})]
    assert sources.shape == (2, 2000) and not torch.is_tensor(sources)
