"""Metrics against closed-form cases and fast_bss_eval; summary statistics."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import speech_like
from diffsep.evaluation.results import summarize
from diffsep.evaluation.scoring import Scoring, match_sources, score_item
from diffsep.evaluation.metrics import pesq, pesq_mode, stoi
from diffsep.core.sdr import pit_si_sdr, sdr, si_sdr


def orthogonal_noise(ref, snr_db, seed=0):
    """ref + n with n ⟂ ref (after mean removal) and ||n||² = ||ref||² 10^(−snr/10)."""
    g = torch.Generator().manual_seed(seed)
    ref = ref - ref.mean(-1, keepdim=True)
    n = torch.randn(ref.shape, generator=g, dtype=ref.dtype)
    n = n - n.mean(-1, keepdim=True)
    n = n - (n * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True) * ref
    n = n * (ref.square().sum(-1, keepdim=True) / n.square().sum(-1, keepdim=True) * 10 ** (-snr_db / 10)).sqrt()
    return ref, ref + n


@given(snr=st.floats(-10, 40), gain=st.floats(0.05, 20), seed=st.integers(0, 100))
@settings(max_examples=30, deadline=None)
def test_si_sdr_of_scaled_reference_plus_orthogonal_noise(snr, gain, seed):
    ref, est = orthogonal_noise(speech_like(2, 2000, seed)[0], snr, seed)
    torch.testing.assert_close(si_sdr(gain * est, ref), torch.full((2,), snr, dtype=ref.dtype),
                               atol=1e-3, rtol=0)  # eps = 1e-8 in the ratio


def test_scaled_copy_is_perfect_and_swapped_sources_are_matched():
    ref = speech_like(2, 4000)[0]
    assert (si_sdr(3.0 * ref, ref) > 100).all()
    _, est = orthogonal_noise(ref, 15.0)
    scores, perm = pit_si_sdr(est.flip(0)[None], ref[None])
    assert perm.tolist() == [[1, 0]]
    torch.testing.assert_close(scores[0], torch.full((2,), 15.0, dtype=ref.dtype), atol=1e-6, rtol=0)
    matched = match_sources(est.flip(0).numpy(), ref.numpy())
    np.testing.assert_allclose(matched, est.numpy())
    assert np.array_equal(match_sources(est.flip(0).numpy(), ref.numpy(), fixed_order=True), est.flip(0).numpy())


def test_sdr_agrees_with_fast_bss_eval_and_orders_as_si_sdr():
    import fast_bss_eval

    ref = speech_like(2, 8000, seed=4)[0]
    _, est = orthogonal_noise(ref, 12.0, seed=2)
    ours = sdr(est, ref)
    theirs = fast_bss_eval.sdr(ref.numpy(), est.numpy())  # with its own permutation search
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6)
    # a filtered (not just scaled) copy: SDR forgives it, SI-SDR does not
    filtered = torch.nn.functional.conv1d(ref[:, None], torch.tensor([[[0.5, 0.3, 0.2]]], dtype=ref.dtype),
                                          padding=1)[:, 0]
    assert (sdr(filtered, ref) > si_sdr(filtered, ref) + 10).all()


def test_improvement_over_the_mixture_and_scored_subset():
    ref = speech_like(2, 4000, seed=1)[0]
    _, est = orthogonal_noise(ref, 10.0)
    mix = ref.sum(0)
    m = score_item(est.numpy(), ref.numpy(), mix.numpy(), 8000, Scoring(metrics=("si_sdr", "si_sdri")))
    base = si_sdr(mix.expand_as(ref), ref).mean().item()
    assert math.isclose(m["si_sdr"], 10.0, abs_tol=1e-6)
    assert math.isclose(m["si_sdri"], 10.0 - base, abs_tol=1e-6)
    one = score_item(est.numpy(), ref.numpy(), mix.numpy(), 8000, Scoring(metrics=("si_sdri",), n_scored=1))
    assert math.isclose(one["si_sdri"], 10.0 - si_sdr(mix, ref[0]).item(), abs_tol=1e-6)


def test_pesq_and_stoi_rank_clean_above_noisy():
    ref = speech_like(1, 16000, seed=2, fs=16000)[0, 0].numpy()
    noisy = orthogonal_noise(torch.from_numpy(ref)[None], 0.0)[1][0].numpy()
    assert pesq_mode(8000) == ("nb", 8000) and pesq_mode(16000) == ("wb", 16000)
    assert pesq_mode(44100) == ("wb", 16000) and pesq_mode(11025) == ("nb", 8000)
    for rate in (16000, 8000):
        r, n = ref[::16000 // rate], noisy[::16000 // rate]
        assert pesq(r, r, rate) > 4.0 > pesq(n, r, rate)
        assert stoi(r, r, rate) > 0.99 > stoi(n, r, rate)
        assert stoi(r, r, rate, extended=True) > 0.99 > stoi(n, r, rate, extended=True)
    assert math.isnan(pesq(np.zeros(8000), np.zeros(8000), 8000))


def test_summary_statistics():
    from scipy import stats

    x = [1.0, 2.0, 4.0, float("nan"), 8.0, None]
    s = summarize(x)
    vals = np.array([1.0, 2.0, 4.0, 8.0])
    lo, hi = stats.t.interval(0.95, 3, loc=vals.mean(), scale=stats.sem(vals))
    assert s["count"] == 4 and s["median"] == 3.0
    assert s["mean"] == pytest.approx(3.75) and s["std"] == pytest.approx(vals.std(ddof=1))
    assert s["ci95"] == pytest.approx([lo, hi])
    assert summarize([])["count"] == 0 and summarize([2.0])["ci95"] == [2.0, 2.0]
