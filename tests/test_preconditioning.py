"""Output heads (families/preconditioning.py): oracle backbones through every head give the exact
score and data, estimates are mixture-consistent, and the paper's head is the reference's."""
import pytest
import torch
from torch import nn

from diffsep.config.build import build_model
from diffsep.config.settings import ConfigError, config_from_dict, load_config
from diffsep.core.sde import DiffSepSDE, project_mean
from diffsep.core.sdr import pit_si_sdr
from diffsep.families import describe
from diffsep.families.preconditioning import HEADS, Preconditioned, resolve_head, velocity
from diffsep.inference import pretrained
from diffsep.inference.loading import load_model
from diffsep.inference.loading import from_reference
from diffsep.samplers import ode_sample, pc_sample
from diffsep.storage.checkpoint import make_checkpoint
from conftest import diffsep_model, normalised_example


class Fixed(nn.Module):
    """A backbone whose output is ``fn(x_t, t, mix)``, whatever the divisor (an oracle)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x_t, t, mix, divisor=None):
        return self.fn(x_t, t, mix)


def draw(K, seed, B=3, N=257):
    """A random marginal sample: sources s, z, t in (0.01, 1), x_t = μ_t(s) + L_t z, mix = Σ s."""
    g = torch.Generator().manual_seed(seed)
    sde = DiffSepSDE(K, gamma=1.0 + 2 * torch.rand(1, generator=g).item())
    s = torch.randn(B, K, N, generator=g, dtype=torch.float64)
    z = torch.randn(B, K, N, generator=g, dtype=torch.float64)
    t = 0.01 + 0.99 * torch.rand(B, generator=g, dtype=torch.float64)
    return sde, s, z, t, sde.marginal_sample(s, t, z), s.sum(1, keepdim=True)


CASES = [(K, seed) for K in (1, 2, 3, 4) for seed in range(3)]


@pytest.mark.parametrize("K,seed", CASES)
def test_an_oracle_denoiser_through_the_data_head_gives_the_exact_score(K, seed):
    sde, s, z, t, x_t, mix = draw(K, seed)
    model = Preconditioned(Fixed(lambda x, tt, m: s), "data", sde)
    torch.testing.assert_close(model.denoise(x_t, t, mix), s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model(x_t, t, mix), sde.exact_score(x_t, t, s), rtol=1e-10, atol=1e-10)
    # ... and the exact score is −L_t⁻¹ z (DESIGN §1), so a wrong data estimate would show
    torch.testing.assert_close(sde.mult_L(model(x_t, t, mix), t), -z, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("K,seed", CASES)
def test_the_oracle_velocity_through_the_v_head_gives_the_sources_and_the_exact_score(K, seed):
    sde, s, z, t, x_t, mix = draw(K, seed)
    v = velocity(sde, s, z, t)
    torch.testing.assert_close(project_mean(v), torch.zeros_like(v), rtol=0, atol=1e-12)
    model = Preconditioned(Fixed(lambda x, tt, m: v), "v", sde)
    torch.testing.assert_close(model.denoise(x_t, t, mix), s, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model(x_t, t, mix), sde.exact_score(x_t, t, s), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("head", ["score_t", "score_sqrt_t"])
@pytest.mark.parametrize("K,seed", CASES)
def test_score_heads_invert_tweedie_to_the_sources(head, K, seed):
    sde, s, z, t, x_t, mix = draw(K, seed)
    model = Preconditioned(Fixed(lambda x, tt, m: sde.exact_score(x, tt, s)), head, sde)
    torch.testing.assert_close(model.denoise(x_t, t, mix), s, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("K,seed", CASES)
def test_every_head_is_mixture_consistent_for_any_network_output(head, K, seed):
    """P D = mix / K whatever the network says (a random output here)."""
    sde, s, z, t, x_t, mix = draw(K, seed)
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 100), dtype=x_t.dtype)
    D = Preconditioned(Fixed(lambda x, tt, m: 3.0 * noise), head, sde).denoise(x_t, t, mix)
    torch.testing.assert_close(project_mean(D), (mix / K).expand_as(D), rtol=0, atol=1e-9)
    assert K == 1 or not torch.allclose(D, s, atol=1e-3)  # the output matters (K = 1: D = mix)


@pytest.mark.parametrize("head", ["data", "v"])
def test_samplers_run_unchanged_on_a_data_head(head):
    K = 2
    sde = DiffSepSDE(K)
    s, mix = normalised_example(K, 3000, seed=1)

    def oracle(x, t, m):  # the oracle output of the head's network
        if head == "data":
            return s.expand_as(x)
        t = t.reshape(-1, 1, 1)
        lam2 = sde.eigvals(t)[1]
        z_null = (x - sde.mean(s, t)) / lam2.sqrt()  # P̄ z of x_t = μ_t(s) + L_t z
        return velocity(sde, s, z_null, t.flatten())

    model = Preconditioned(Fixed(oracle), head, sde)
    for est in (pc_sample(model, sde, mix, steps=10, generator=torch.Generator().manual_seed(0)),
                ode_sample(model, sde, mix, steps=6, generator=torch.Generator().manual_seed(0))):
        assert pit_si_sdr(est, s)[0].min() >= 30.0


def test_the_paper_heads_divide_the_networks_output_pyramid(reference_fixture):
    """score_t: the reference's output from the converted reference checkpoint (the fixture);
    score_sqrt_t: the same network with divisor √t; the data head's denoise is finite at t = 0."""
    model = from_reference(reference_fixture["checkpoint"])
    inputs = reference_fixture["inputs"]
    expected = reference_fixture["expected"]["score_ema"]
    with torch.no_grad():
        out = model(**inputs)
        assert ((out - expected).abs().max() / expected.abs().max()).item() <= 1e-5
        t = inputs["t"].expand(inputs["x_t"].shape[0])
        torch.testing.assert_close(out, model.net(**inputs, divisor=t), rtol=0, atol=0)
        alt = Preconditioned(model.net, "score_sqrt_t", model.sde)
        torch.testing.assert_close(alt(**inputs), model.net(**inputs, divisor=t.sqrt()), rtol=0, atol=0)
    torch.manual_seed(0)
    data = diffsep_model(2, head="data", nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                         init_scale=1.0, time_embedding="t").eval()
    x = torch.randn(2, 2, 900)
    with torch.no_grad():
        assert torch.isfinite(data.denoise(x, torch.zeros(2), x.sum(1, keepdim=True))).all()


def test_heads_round_trip_through_configs_and_checkpoints():
    cfg = load_config(None, ["model.nf=8", "model.ch_mult=[1,2]", "model.num_res_blocks=1",
                             "model.attn_resolutions=[]", "model.head=v", "model.time_embedding=t",
                             "sde.gamma=3.0"])
    model = build_model(cfg)
    assert model.head == "v" and model.net.init_kwargs["time_embedding"] == "t"
    again = load_model(make_checkpoint(model, config=describe(model)))
    assert again.head == "v" and again.sde.gamma == 3.0 and describe(again) == describe(model)


def test_the_older_output_scale_key_still_names_the_head():
    assert [resolve_head("score_t", o) for o in ("", "t", "sqrt_t")] == ["score_t", "score_t", "score_sqrt_t"]
    assert build_model(load_config(None, ["model.output_scale=sqrt_t", "model.nf=8",
                                          "model.ch_mult=[1,2]"])).head == "score_sqrt_t"
    old = {"model": {"kind": "diffsep", "nf": 8, "ch_mult": [1, 2], "output_scale": "t"}}
    assert config_from_dict(old).model.head == "score_t"
    with pytest.raises(ConfigError, match="contradicts model.head=data"):
        load_config(None, ["model.output_scale=t", "model.head=data"])
    with pytest.raises(ValueError, match="valid: score_t, score_sqrt_t, data, v"):
        Preconditioned(Fixed(lambda x, t, m: x), "eps", DiffSepSDE(2))
    bundled = pretrained.bundled_models()["diffsep-small"]
    assert load_model(bundled.path).head == "score_sqrt_t"  # written with output_scale: sqrt_t


def test_network_and_sde_must_agree_on_the_number_of_sources():
    net = diffsep_model(3, nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=()).net
    with pytest.raises(ValueError, match="separates 3 sources but the SDE has 2"):
        Preconditioned(net, "score_t", DiffSepSDE(2))
