"""Voice augmentations of dynamic mixing: pitch shift at constant duration, VTLP formant shift,
synthetic room reverberation, telephone channels; each drawn from its own stream of
(seed, epoch, index), off by default without changing any other draw."""
import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import diffsep.data.dynamic as dynamic
from diffsep.config.build import build_datasets
from diffsep.config.settings import ConfigError, load_config
from diffsep.data.codec import CODECS, a_law, band_limit, mu_law, telephone
from diffsep.data.dynamic import DynamicMixDataset
from diffsep.data.pitch_shift import pitch_shift, time_stretch
from diffsep.data.reverb import random_rir, reverberate, room_impulse_response
from diffsep.data.vtlp import formant_shift, vtlp_warp
from helpers_audio import make_train_cv_tree
from test_dynamic import speakers_tree  # noqa: F401 (fixture)

SR = 8000


def harmonic(f0: float, n: int, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Harmonics of f0 with amplitudes 1/k and random phases, below Nyquist. -> (n,) float32"""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k
               for k in range(1, 12) if f0 * k < 0.45 * sr).astype(np.float32)


def f0_of(x: np.ndarray, sr: int = SR) -> float:
    """The strongest frequency in 60-500 Hz (the fundamental of :func:`harmonic`), 1/8-bin exact."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    f = np.fft.rfftfreq(8 * len(x), 1 / sr)
    band = (f > 60) & (f < 500)
    return float(f[band][np.argmax(spec[band])])


def pulse_voice(f0: float, formant: float, n: int = 2 * SR, bw: float = 80.0) -> np.ndarray:
    """A pulse train at f0 through one resonance at ``formant`` Hz: harmonics under a formant."""
    e = np.zeros(n)
    e[::int(round(SR / f0))] = 1.0
    r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * formant / SR
    return lfilter([1.0], [1.0, -2 * r * np.cos(th), r * r], e).astype(np.float32)


# -- pitch ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("semitones", [-4.0, -1.5, 2.0, 5.0])
@pytest.mark.parametrize("sr", [8000, 16000])
def test_pitch_shift_keeps_the_length_and_moves_the_fundamental_by_the_ratio(semitones, sr):
    x = harmonic(150.0, 2 * sr, sr, seed=int(abs(semitones) * 10))
    ratio = 2 ** (semitones / 12)
    y = pitch_shift(x, ratio, sr)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert f0_of(y, sr) == pytest.approx(150.0 * ratio, rel=0.003)
    rms = lambda v: np.sqrt(np.mean(v[sr // 4:-sr // 4] ** 2))  # noqa: E731
    assert rms(y) == pytest.approx(rms(x), rel=0.1)  # level kept away from the edges


def test_time_stretch_changes_the_duration_not_the_pitch():
    x = harmonic(200.0, SR)
    for factor in (0.8, 1.3):
        y = time_stretch(x, factor, SR)
        assert len(y) == round(SR * factor) and f0_of(y) == pytest.approx(200.0, rel=0.003)


# -- formants ------------------------------------------------------------------------------------
def test_vtlp_warp_is_monotone_and_fixes_zero_and_nyquist():
    f = np.linspace(0, 4000, 801)
    for alpha in (0.8, 0.95, 1.1, 1.25):
        w = vtlp_warp(f, alpha, 4000.0)
        assert np.all(np.diff(w) > 0) and w[0] == 0 and w[-1] == pytest.approx(4000.0)
        low = f < 1000
        np.testing.assert_allclose(w[low], alpha * f[low])  # linear below the knee
    np.testing.assert_allclose(vtlp_warp(f, 1.0, 4000.0), f)


def test_formant_shift_with_alpha_one_is_the_identity():
    x = pulse_voice(120.0, 900.0)
    assert np.array_equal(formant_shift(x, 1.0, SR), x)
    y = formant_shift(x, 1.0 + 1e-7, SR)  # the full analysis-synthesis path
    assert y.shape == x.shape and np.abs(y - x).max() < 1e-4 * np.abs(x).max()


@pytest.mark.parametrize("alpha", [0.8, 0.9, 1.2, 1.3])
def test_formant_shift_moves_the_formant_by_alpha_and_keeps_the_pitch(alpha):
    f0 = 100.0
    x = pulse_voice(f0, 1000.0)
    y = formant_shift(x, alpha, SR)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    harmonics = np.arange(1, int(SR / 2 / f0)) * f0
    at = np.array([np.argmin(np.abs(f - h)) for h in harmonics])
    assert harmonics[np.argmax(spec[at])] == pytest.approx(1000.0 * alpha)  # the loudest harmonic moved
    near = np.zeros(len(f), bool)
    for i in at:
        near[i - 3:i + 4] = True
    assert spec[near].sum() > 0.97 * spec.sum()  # still the same harmonics: pitch kept


# -- reverberation -------------------------------------------------------------------------------
def late_rt60(rir: np.ndarray, direct: int, rt60: float, sr: int = SR) -> float:
    """RT60 from the slope of the log energy in 10 ms windows between 60 ms and 0.8 RT60 after
    the direct path."""
    w = sr // 100
    tail = rir[direct + int(0.06 * sr):direct + int(0.8 * rt60 * sr)]
    energy = (tail[:len(tail) // w * w] ** 2).reshape(-1, w).sum(1)
    slope = np.polyfit(np.arange(len(energy)) * w / sr, 10 * np.log10(energy), 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("seed", range(6))
def test_room_response_peaks_at_the_direct_path_and_decays_with_the_rt60_asked(seed):
    rng = np.random.default_rng(seed)
    rt60 = rng.uniform(0.2, 0.6)
    room = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 3.5])
    mic, src = rng.uniform(0.5, room - 0.5), rng.uniform(0.5, room - 0.5)
    rir, direct = room_impulse_response(SR, rt60, room, src, mic, rng)
    assert direct == round(np.linalg.norm(src - mic) / 343.0 * SR) and rir[direct] == 1.0
    assert np.argmax(np.abs(rir)) == direct and np.all(rir[:direct] == 0)
    assert late_rt60(rir, direct, rt60) == pytest.approx(rt60, rel=0.12)
    assert len(rir) == direct + int(np.ceil(rt60 * SR)) + 1


def test_reverberation_is_aligned_at_the_direct_path():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SR).astype(np.float32)  # white: the cross-correlation is the response
    rir, direct = random_rir(SR, rng, (0.3, 0.3))
    y = reverberate(x, rir, direct)
    assert y.shape == x.shape and y.dtype == np.float32
    lags = np.arange(-200, 201)
    corr = [np.dot(x[max(0, -k):len(x) - max(0, k)], y[max(0, k):len(y) - max(0, -k)]) for k in lags]
    assert lags[int(np.argmax(corr))] == 0
    pulse = np.zeros(50)
    pulse[direct] = 1.0
    np.testing.assert_allclose(reverberate(x, pulse, direct), x, atol=1e-6)  # dry path: the input


# -- telephone -----------------------------------------------------------------------------------
def voice_like(n: int = 2 * SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = np.zeros(n)
    e[::57] = 1.0
    e += 0.05 * rng.standard_normal(n)
    return lfilter([1.0], [1.0, -1.3, 0.8], e).astype(np.float32)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    scaled = ref * np.dot(ref, est) / np.dot(ref, ref)
    return 10 * np.log10(np.sum(scaled ** 2) / np.sum((est - scaled) ** 2))


@pytest.mark.parametrize("codec", CODECS)
def test_telephone_channel_is_band_limited_and_about_idempotent(codec):
    x = voice_like()
    y = telephone(x, SR, np.random.default_rng(1), codec)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert power[(f > 3400) | (f < 300)].sum() < 1e-9 * power.sum()
    twice = telephone(y, SR, np.random.default_rng(1), codec)
    if codec == "gsm":  # a lossy vocoder: coding again loses more, but keeps the waveform's shape
        assert snr_db(y, twice) > 4.0
    else:  # companding at the same level: the second pass adds about one quantisation's noise
        assert snr_db(y, twice) > 30.0 and snr_db(band_limit(x, SR), y) > 30.0


def test_companding_rounds_to_256_levels():
    x = np.linspace(-1, 1, 20001)
    for law in (mu_law, a_law):
        y = law(x)
        assert len(np.unique(y)) == 256 and np.abs(y - x).max() < 0.05
        assert np.array_equal(law(y), y)  # quantised values are fixed points


def test_telephone_at_16k_keeps_the_rate_and_the_band():
    x = voice_like(2 * 16000)
    y = telephone(x, 16000, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / 16000)
    assert y.shape == x.shape and power[f > 4000].sum() < 1e-4 * power.sum()
    with pytest.raises(ValueError, match="unknown codec 'g729'"):
        telephone(x, 16000, np.random.default_rng(0), "g729")


# -- dynamic mixing ------------------------------------------------------------------------------
SWITCHES = {"pitch_semitones": 3.0, "vtlp_alpha": 0.15, "reverb_prob": 1.0, "codec_prob": 1.0}
FUNCTIONS = {"pitch_semitones": "pitch_shift", "vtlp_alpha": "formant_shift", "reverb_prob": "reverberate",
             "codec_prob": "telephone"}


def items_of(ds: DynamicMixDataset, epochs=(0, 1)) -> list[torch.Tensor]:
    out = []
    for e in epochs:
        ds.set_epoch(e)
        out += [ds[i]["sources"] for i in range(len(ds))]
    return out


def test_all_switches_off_give_the_items_of_before(speakers_tree):  # noqa: F811
    items, _ = speakers_tree
    kw = dict(seed=5, speeds=[0.9, 1.0, 1.1], eq_db=6.0)
    plain = items_of(DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, **kw))
    zeros = items_of(DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, **kw, **dict.fromkeys(SWITCHES, 0.0)))
    assert all(torch.equal(a, b) for a, b in zip(plain, zeros))


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_draws_from_its_own_stream(speakers_tree, monkeypatch, switch):  # noqa: F811
    """With the augmentation replaced by the identity, switching it on changes nothing: no draw
    of the speakers, crops, levels, speeds or EQ moved. With the real one, the sources change."""
    items, _ = speakers_tree
    kw = dict(seed=2, speeds=[0.9, 1.1], eq_db=4.0)
    plain = items_of(DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, **kw))
    on = DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, **kw, **{switch: SWITCHES[switch]})
    changed = items_of(on)
    assert not any(torch.equal(a, b) for a, b in zip(plain, changed))
    monkeypatch.setattr(dynamic, FUNCTIONS[switch], lambda x, *args: x)
    assert all(torch.equal(a, b) for a, b in zip(plain, items_of(on)))


def test_augmented_items_repeat_by_seed_epoch_index_and_stay_unit_rms(speakers_tree):  # noqa: F811
    items, _ = speakers_tree
    kw = dict(SWITCHES, reverb_prob=0.5, codec_prob=0.5, level_db=0.0, epoch_size=2)
    ds = DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, seed=7, **kw)
    a = items_of(ds, epochs=(3,))
    b = items_of(DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, seed=7, **kw), epochs=(3,))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], items_of(ds, epochs=(4,))[0])
    for x in a:
        assert x.shape == (2, 1, 4000) and x.dtype == torch.float32 and torch.isfinite(x).all()
        torch.testing.assert_close(x.square().mean(-1).sqrt(), torch.ones(2, 1), rtol=1e-4, atol=0)


def test_bad_augmentation_settings_are_refused(speakers_tree):  # noqa: F811
    items, _ = speakers_tree
    with pytest.raises(ValueError, match="vtlp_alpha < 1"):
        DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, vtlp_alpha=1.2)
    with pytest.raises(ValueError, match="reverb_rt60"):
        DynamicMixDataset(items, "wsj0_mix", 2, SR, 4000, reverb_prob=0.5, reverb_rt60=(0.5, 0.2))


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["data.pitch_semitones=2", "data.vtlp_alpha=0.1", "data.reverb_prob=0.3",
                                    "data.codec_prob=0.2"])
def test_voice_options_need_dynamic_mixing(tmp_path, option):
    with pytest.raises(ConfigError, match="augmentations of dynamic mixing"):
        build_datasets(load_config(None, [f"data.root={tmp_path}", option]))


@pytest.mark.parametrize("option", ["data.vtlp_alpha=0.7", "data.reverb_prob=1.5", "data.codec_prob=-0.1",
                                    "data.pitch_semitones=13"])
def test_voice_options_are_range_checked(option):
    with pytest.raises(ConfigError, match=option.split("=")[0].replace(".", r"\.") + " must be"):
        load_config(None, [option])


def test_config_passes_the_voice_options_to_dynamic_mixing(tmp_path):
    root = make_train_cv_tree(tmp_path, 4)
    base = [f"data.root={root}", "data.kind=folder", "data.dynamic_mixing=true", "data.segment_seconds=0.25"]
    train, _ = build_datasets(load_config(None, base + [
        "data.pitch_semitones=2", "data.vtlp_alpha=0.1", "data.reverb_prob=0.3", "data.reverb_rt60=[0.2,0.4]",
        "data.codec_prob=0.25"]))
    assert (train.pitch_semitones, train.vtlp_alpha, train.reverb_prob, train.reverb_rt60, train.codec_prob) == \
        (2.0, 0.1, 0.3, (0.2, 0.4), 0.25)
    assert train[0]["sources"].shape == (2, 1, 2000)
    with pytest.raises(ConfigError, match="data.reverb_rt60 must be"):
        build_datasets(load_config(None, base + ["data.reverb_rt60=[0.4]"]))
