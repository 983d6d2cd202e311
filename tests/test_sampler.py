import pytest
import torch

from diffsep.core.sdr import pit_si_sdr
from diffsep.samplers import (SAMPLERS, SamplerSettings, em_sample, nfe, ode_sample, pc_sample, sample,
                              time_grid)
from diffsep.core.sde import DiffSepSDE
from conftest import DEVICES, normalised_example


class Oracle:
    """Exact score of the Gaussian marginal of one known example, counting its evaluations."""

    def __init__(self, sde, sources):
        self.sde, self.sources, self.calls = sde, sources, 0

    def __call__(self, x, t, mix):
        self.calls += 1
        return self.sde.exact_score(x, t, self.sources)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("reference_dt", [False, True])
def test_pc_sampler_recovers_sources_with_the_exact_score(K, reference_dt):
    sde = DiffSepSDE(K)
    s, mix = normalised_example(K, 4000, seed=K)
    oracle = Oracle(sde, s)
    est = pc_sample(oracle, sde, mix, reference_dt=reference_dt,
                    generator=torch.Generator().manual_seed(0))
    assert est.shape == s.shape
    scores, _ = pit_si_sdr(est, s)
    assert scores.min() >= 30.0, scores
    assert oracle.calls == nfe(kind="pc", steps=30, corrector_steps=1) == 60


@pytest.mark.parametrize("K", [2, 3])
def test_ode_sampler_recovers_sources_with_few_evaluations(K):
    sde = DiffSepSDE(K)
    s, mix = normalised_example(K, 4000, seed=K)
    oracle = Oracle(sde, s)
    est = ode_sample(oracle, sde, mix, steps=6, generator=torch.Generator().manual_seed(0))
    scores, _ = pit_si_sdr(est, s)
    assert scores.min() >= 30.0, scores
    assert oracle.calls == nfe(kind="ode", steps=6) == 11


def test_sampler_with_wrong_sign_score_fails():
    """Guard: the oracle tests can fail. A score of the wrong sign does not separate."""
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 2000)
    est = pc_sample(lambda x, t, m: -sde.exact_score(x, t, s), sde, mix, steps=10,
                    generator=torch.Generator().manual_seed(0))
    assert not torch.isfinite(est).all() or pit_si_sdr(est, s)[0].max() < 10


def test_em_sampler_and_nfe_counts():
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 2000)
    oracle = Oracle(sde, s)
    est = em_sample(oracle, sde, mix, steps=30, generator=torch.Generator().manual_seed(0))
    assert oracle.calls == nfe(kind="em", steps=30) == 30
    assert pit_si_sdr(est, s)[0].min() > 25
    assert nfe(kind="pc", steps=30, corrector_steps=2) == 90 and nfe(kind="ode", steps=10, solver="euler") == 10
    assert nfe(kind="ddim", steps=3, solver="euler") == 3 and nfe(kind="ddim", steps=3) == 5
    with pytest.raises(ValueError, match="valid: pc, ode, em, ddim"):
        nfe(kind="dpm", steps=3)


def test_samplers_are_deterministic_given_a_generator():
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 1000)
    oracle = Oracle(sde, s)
    runs = [pc_sample(oracle, sde, mix, steps=5, generator=torch.Generator().manual_seed(7))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = pc_sample(oracle, sde, mix, steps=5, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)


def test_time_grid():
    g = time_grid(30, 1.0, 0.03)
    assert g.shape == (31,) and g[0] == 1.0 and g[-2].item() == pytest.approx(0.03) and g[-1] == 0
    assert (g[1:] < g[:-1]).all()
    with pytest.raises(ValueError):
        time_grid(0)
    with pytest.raises(ValueError):
        time_grid(5, 1.0, 0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_samplers_follow_device_and_dtype(device):
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 500, dtype=torch.float32)
    s, mix = s.to(device), mix.to(device)
    oracle = Oracle(sde, s)
    seen = []
    for fn in (pc_sample, ode_sample):
        out = fn(oracle, sde, mix, steps=3, callback=lambda i, t, x: seen.append(i))
        assert out.device.type == device and out.dtype == torch.float32
    assert seen == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
@pytest.mark.parametrize("steps,corrector_steps,solver", [(3, 1, "heun"), (4, 2, "euler"), (1, 0, "heun")])
def test_every_registered_sampler_makes_the_evaluations_its_nfe_formula_says(kind, steps, corrector_steps, solver):
    """The registry's NFE formula against the calls sample() makes through the registry."""
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 800, dtype=torch.float32)
    oracle = Oracle(sde, s)
    settings = SamplerSettings(kind=kind, steps=steps, corrector_steps=corrector_steps, solver=solver)
    est = sample(oracle, sde, mix, settings, generator=torch.Generator().manual_seed(0))
    assert est.shape == s.shape and torch.isfinite(est).all()
    assert oracle.calls == nfe(settings)


def test_settings_overrides_and_unknown_sampler():
    base = SamplerSettings()
    assert base.updated(steps=5, snr=None).steps == 5 and base.updated(snr=None).snr == base.snr
    with pytest.raises(ValueError, match="unknown sampler option"):
        base.updated(stepz=5)
    with pytest.raises(ValueError, match="unknown sampler 'bogus'; valid: pc, ode, em"):
        nfe(kind="bogus")


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_warm_start_from_an_estimate_takes_proportionally_fewer_steps(kind):
    """From t_start = 0.4 near a good estimate, with the exact score: the sources come back with
    0.4 × steps steps, and the NFE formula counts them."""
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 2000, dtype=torch.float32)
    estimate = s + 0.1 * torch.randn(s.shape, generator=torch.Generator().manual_seed(5))
    oracle = Oracle(sde, s)
    settings = SamplerSettings(kind=kind, steps=25, init="model", t_start=0.4)
    est = sample(oracle, sde, mix, settings, generator=torch.Generator().manual_seed(0), init=estimate)
    assert settings.steps_from(sde.T) == 10 and oracle.calls == nfe(settings) < nfe(settings, init="prior")
    assert pit_si_sdr(est, s)[0].min() > 25
    assert pit_si_sdr(est, s)[0].min() > pit_si_sdr(estimate, s)[0].min() + 5  # refined, not copied


def test_warm_start_needs_an_estimate_and_a_valid_start_time():
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 500, dtype=torch.float32)
    with pytest.raises(ValueError, match="needs an estimate"):
        sample(Oracle(sde, s), sde, mix, SamplerSettings(init="model"))
    with pytest.raises(ValueError, match=r"t_start must be in \(0, T"):
        sample(Oracle(sde, s), sde, mix, SamplerSettings(init="model", t_start=1.5), init=s)
    with pytest.raises(ValueError, match="valid: prior, model"):
        sample(Oracle(sde, s), sde, mix, SamplerSettings(init="warm"))
