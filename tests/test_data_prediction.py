"""Data-prediction objectives (families/data_prediction.py): the loss is the paper's score loss in
data terms with another weight, permutation-invariant at every t, zero for an oracle in every
domain; the unrolled sampler's loss and gradients; the family dispatches on the loss section."""
import pytest
import torch
from torch import nn

from diffsep.config.settings import ConfigError, config_from_dict
from diffsep.config.build import build_family
from diffsep.core.pit import permute, random_permutation
from diffsep.core.sde import DiffSepSDE, project_null
from diffsep.core.sdr import pit_si_sdr
from diffsep.families.data_prediction import (DOMAINS, WEIGHTS, data_loss, loss_weight,
                                              min_over_permutations, pairwise_errors, unrolled_loss)
from diffsep.families.preconditioning import Preconditioned
from diffsep.families.score_matching import LossDraws, draw, score_matching_loss
from conftest import normalised_example


class Backbone(nn.Module):
    """A backbone returning ``fn(x_t, t, mix)`` scaled by one trainable weight."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.w = fn, nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x_t, t, mix, divisor=None):
        return self.w * self.fn(x_t, t, mix)


def example(K, B=4, N=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, K, N, generator=g, dtype=torch.float64)
    return s, s.sum(1, keepdim=True), g


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("domain", DOMAINS)
def test_an_oracle_in_any_source_order_has_the_smallest_loss_at_every_t(K, domain):
    """D = the sources in a scrambled order: the loss is the oracle's (zero, or −SI-SDR of a perfect
    estimate) with the minimum over permutations, and larger when the order is fixed."""
    s, mix, g = example(K)
    sde = DiffSepSDE(K)
    scramble = random_permutation(s.shape[0], K, generator=g)
    model = Preconditioned(Backbone(lambda x, t, m: permute(s, scramble)), "data", sde)
    draws = draw(sde, s.shape, p_T=0.5, fixed_order=True, generator=g, dtype=s.dtype)
    pit = data_loss(model, sde, s, mix, LossDraws(scramble * 0 + torch.arange(K), draws.t, draws.at_T, draws.z),
                    domain=domain)
    fixed = data_loss(model, sde, s, mix, draws, domain=domain)
    floor = -100.0 if domain == "sisdr" else 1e-12
    assert (pit <= floor).all() if domain == "sisdr" else (pit.abs() <= floor).all(), pit
    moved = (scramble != torch.arange(K)).any(1)
    assert (fixed[moved] > pit[moved] + 1e-6).all()


def test_the_papers_score_loss_is_a_weighted_zero_sum_data_error():
    """For a data head, (L_t q + z)² = e^{−2γt} / λ2(t) × (P̄ (s − D))² (DESIGN.md §1): the score loss
    is this data loss with weight SNR(t), which grows without bound as t -> 0."""
    K = 2
    s, mix, g = example(K, B=6)
    sde = DiffSepSDE(K)
    model = Preconditioned(Backbone(lambda x, t, m: 0.3 * x + 0.1), "data", sde)
    draws = draw(sde, s.shape, p_T=0.0, fixed_order=True, generator=g, dtype=s.dtype)
    score = score_matching_loss(model, sde, s, mix, draws=draws)
    x_t = sde.marginal_sample(s, draws.t, draws.z)
    error = project_null(s - model.denoise(x_t, draws.t, mix)).square().mean((1, 2))
    snr = torch.exp(-2 * sde.gamma * draws.t) / sde.eigvals(draws.t)[1]
    torch.testing.assert_close(score, snr * error, rtol=1e-9, atol=1e-12)
    t = torch.tensor([1e-3, 0.03, 0.5, 1.0], dtype=torch.float64)
    assert loss_weight(sde, t, "snr_plus_one")[0] > 1e4 * loss_weight(sde, t, "snr_plus_one")[-1]


def test_weights():
    sde = DiffSepSDE(2)
    t = torch.linspace(0.01, 1, 50, dtype=torch.float64)
    assert torch.equal(loss_weight(sde, t, "one"), torch.ones_like(t))
    spo = loss_weight(sde, t, "snr_plus_one")
    assert (spo.diff() < 0).all() and (spo > 1).all()
    capped = loss_weight(sde, t, "min_snr")
    torch.testing.assert_close(capped, (spo - 1).clamp(max=5.0))
    assert capped.max() == 5.0 and capped.min() < 1
    with pytest.raises(ValueError, match="valid: one, snr_plus_one, min_snr"):
        loss_weight(sde, t, "bogus")


@pytest.mark.parametrize("domain", DOMAINS)
def test_pairwise_errors_are_smallest_on_the_matching_pairs(domain):
    s, _, g = example(3, B=2, N=2000)
    est = s + 0.05 * torch.randn(s.shape, generator=g, dtype=s.dtype)
    pair = pairwise_errors(est, s, domain)
    assert pair.shape == (2, 3, 3)
    diag = pair.diagonal(dim1=1, dim2=2)
    off = pair.masked_fill(torch.eye(3, dtype=torch.bool), float("inf")).amin(-1)
    assert (diag < off).all()
    if domain == "sisdr":
        torch.testing.assert_close(min_over_permutations(pair), -pit_si_sdr(est, s)[0].mean(-1))


def test_unrolled_loss_scores_the_samplers_output_and_passes_gradients():
    K = 2
    s, mix = normalised_example(K, 800)
    s, mix = s.expand(2, -1, -1), mix.expand(2, -1, -1)
    sde = DiffSepSDE(K)
    model = Preconditioned(Backbone(lambda x, t, m: s.flip(1)), "data", sde)  # the oracle, swapped
    draws = draw(sde, s.shape, generator=torch.Generator().manual_seed(0), dtype=s.dtype)
    loss = unrolled_loss(model, sde, s, mix, draws, steps=2)
    assert (loss < -100).all(), loss  # a perfect estimate in either order
    model.net.w.data.fill_(0.7)
    loss = unrolled_loss(model, sde, s, mix, draws, steps=3, solver="heun").mean()
    loss.backward()
    assert loss > -30 and model.net.w.grad < 0  # more of the oracle is better


def tiny_config(**loss):
    return config_from_dict({"model": {"kind": "diffsep", "nf": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
                                       "attn_resolutions": [], "head": "data", "time_embedding": "t"},
                             "loss": loss, "sampler": {"kind": "ddim", "steps": 2, "solver": "euler"}})


@pytest.mark.parametrize("loss", [{"objective": "data", "domain": "sb", "weight": "min_snr"},
                                  {"unroll_steps": 2}, {"objective": "score"}])
def test_the_family_trains_with_each_objective(loss):
    """One optimiser step on a tiny network through the family's loss: finite, with gradients."""
    cfg = tiny_config(**loss)
    family = build_family(cfg)
    model = family.build_model().double()
    s, mix = normalised_example(2, 1024)
    sources, mix = s[:, :, None].expand(2, -1, -1, -1), mix.expand(2, -1, -1)  # (B, K, C, N), (B, C, N)
    draws = family.draw(sources.shape, torch.Generator().manual_seed(0))
    loss_value = family.loss(model, mix, sources, draws).mean()
    loss_value.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss_value) and grads and any(g.abs().sum() > 0 for g in grads)


def test_unrolling_needs_the_sampler_it_is_tuned_for():
    with pytest.raises(ConfigError, match="sampler.kind=ddim sampler.steps=3"):
        build_family(tiny_config(unroll_steps=3))
    with pytest.raises(ConfigError, match="loss.objective"):
        tiny_config(objective="elbo")
    assert set(WEIGHTS) == {"one", "snr_plus_one", "min_snr"}


def test_a_model_tuned_through_the_sampler_separates_with_any_sampler():
    """loss.unroll_steps ties training to its sampler; separating may still choose another one."""
    from diffsep.inference.loading import with_sampler

    cfg = tiny_config(unroll_steps=2)
    other = with_sampler(cfg, {"steps": 5})
    assert other.sampler.steps == 5 and other.loss.unroll_steps == 0
    assert with_sampler(cfg, {}).loss.unroll_steps == 2
