"""Test-time shift averaging (diffsep/inference/shift_averaging.py) and its wiring into separators."""
import math

import pytest
import torch

from diffsep.config.build import build_family, build_model
from diffsep.config.settings import config_from_dict
from diffsep.core.normalization import denormalize, normalize
from diffsep.inference.loading import Trained, make_separator
from diffsep.inference.shift_averaging import shift_averaged, shift_delays


def test_delays_are_distinct_and_spread_over_one_hop():
    for hop in (1, 8, 128):
        for shifts in range(1, min(hop, 9) + 1):
            d = shift_delays(shifts, hop)
            assert len(set(d)) == shifts and d[0] == 0 and max(d) < hop
            assert max(d) >= hop - math.ceil(hop / shifts)  # they reach across the hop
    with pytest.raises(ValueError, match="at least 1"):
        shift_delays(0, 8)
    with pytest.raises(ValueError, match="at most 8"):
        shift_delays(9, 8)


def gains(mix, g=(0.3, 0.7)):
    """A pointwise (hence shift-equivariant) two-source estimate: (B, C, n) -> (B, 2, C, n)."""
    return torch.stack([g[0] * mix, g[1] * mix], 1)


def test_a_shift_equivariant_estimate_is_unchanged_and_the_delays_are_undone():
    mix = torch.randn(3, 1, 101, dtype=torch.float64)
    plain = gains(mix)
    avg = shift_averaged(lambda m, gen: gains(m), shift_delays(4, 8))
    torch.testing.assert_close(avg(mix, None), plain, rtol=0, atol=1e-12)


def test_sources_of_each_delay_are_put_in_the_first_estimates_order():
    """An estimate whose output order flips with the input's length parity: averaging in output
    order would mix the sources up; aligned, the average is the plain estimate."""
    def flipping(m, gen):
        est = gains(m)
        return est.flip(1) if m.shape[-1] % 2 else est

    mix = torch.randn(2, 1, 200, dtype=torch.float64)
    delays = [0, 1, 2, 3]
    torch.testing.assert_close(shift_averaged(flipping, delays)(mix, None), gains(mix), rtol=0, atol=1e-12)
    fixed = shift_averaged(flipping, delays, fixed_order=True)(mix, None)  # enhancement: no reordering
    torch.testing.assert_close(fixed, gains(mix, (0.5, 0.5)), rtol=0, atol=1e-12)


def framed(m, hop=8):
    """A framed estimate: the right sources plus an error that depends only on each sample's
    place in its frame of ``hop`` (zero mean over the places), so it changes with the framing."""
    pattern = torch.tensor([0.3, -0.1, 0.5, -0.4, 0.2, -0.6, 0.1, 0.0], dtype=m.dtype)
    err = pattern[torch.arange(m.shape[-1]) % hop]
    return gains(m) + err


def test_averaging_over_framings_cancels_a_framing_error():
    mix = torch.randn(1, 1, 800, dtype=torch.float64)
    truth = gains(mix)
    errors = [(shift_averaged(lambda m, g: framed(m), shift_delays(s, 8))(mix, None) - truth).square().mean().item()
              for s in (1, 2, 4, 8)]
    assert errors[0] > 0.05 and errors[1] < errors[0] and errors[2] < errors[1] and errors[3] < 1e-20, errors


def tasnet_separator(shifts):
    cfg = config_from_dict({"model": {"kind": "convtasnet"},
                            "convtasnet": {"N": 16, "L": 8, "B": 8, "H": 16, "X": 2, "R": 1, "Sc": 8}})
    torch.manual_seed(0)
    return make_separator(Trained(cfg, build_model(cfg).eval()), shifts=shifts), build_family(cfg)


def test_separators_average_over_delays_of_their_frame_hop():
    plain, family = tasnet_separator(1)
    assert family.frame_hop == 4
    shifted, _ = tasnet_separator(4)
    assert (shifted.nfe, shifted.info["shifts"]) == (4 * plain.nfe, 4) and "shifts" not in plain.info
    mix = torch.randn(2, 1, 1000)
    a, b = plain(mix), shifted(mix)
    assert a.shape == b.shape and not torch.allclose(a, b)
    want = shift_averaged(lambda m, g: plain.estimate(m, g), [0, 1, 2, 3])
    m, _, mean, std = normalize(mix)
    torch.testing.assert_close(b, denormalize(want(m, None), mean, std), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at most 4"):
        tasnet_separator(5)
