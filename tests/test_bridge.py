"""The mixture-consistent bridge: marginals, the posterior step against the Markov process it
reverses (closed form against simulation), the sampler with an oracle denoiser, the loss, and the
family trained, separated and evaluated from the command line."""
import math

import pytest
import torch

from diffsep.core.mixture_bridge import MixtureBridge, bridge_sample, bridge_time_grid
from diffsep.core.pit import permute, random_permutation
from diffsep.core.sde import project_mean, project_null
from diffsep.families.bridge import BridgeDenoiser, bridge_loss, mixture_fit
from diffsep.families.score_matching import LossDraws
from helpers_audio import make_train_cv_tree


def _sources(B=3, K=2, N=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, K, N, generator=g, dtype=torch.float64)
    return s, s.sum(1, keepdim=True)


@pytest.mark.parametrize("K", [2, 3])
def test_marginals_keep_the_mixture_and_join_sources_to_the_prior(K):
    bridge = MixtureBridge(K, sigma=0.7)
    s, mix = _sources(K=K)
    z = torch.randn_like(s)
    for t in (0.0, 0.2, 0.5, 0.93, 1.0):
        x = bridge.marginal_sample(s, mix, t, z)
        torch.testing.assert_close(project_mean(x), project_mean(s))  # P x_t = mix / K at every t
        residual = project_null(x - bridge.mean(s, mix, t))
        torch.testing.assert_close(residual, bridge.std(torch.tensor(t, dtype=s.dtype)) * project_null(z))
    torch.testing.assert_close(bridge.marginal_sample(s, mix, 0.0, z), s)
    torch.testing.assert_close(bridge.marginal_sample(s, mix, 1.0, z), bridge.prior(mix))  # no mismatch at T
    assert float(bridge.std(torch.tensor(0.5))) == pytest.approx(0.35)


def test_time_grid_is_uniform_from_one_to_zero():
    torch.testing.assert_close(bridge_time_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(ValueError, match="steps"):
        bridge_time_grid(0)


def test_posterior_step_reverses_the_markov_process():
    """With D = s and eta = 1, (x_t, x_t') drawn by the marginal then the step has the joint law of
    the forward Markov process: x_t' on the marginal at t', and in P̄ the covariance
    Cov(x_t, x_t') = (α_t / α_t') σ_t'² per unit of P̄ z's variance (1 − 1/K)."""
    torch.manual_seed(0)
    bridge, K, n = MixtureBridge(2, sigma=0.8), 2, 200_000
    s = torch.tensor([[[0.3], [-1.1]]], dtype=torch.float64).expand(n, K, 1)
    mix = s.sum(1, keepdim=True)
    t, t2 = 0.8, 0.3
    x = bridge.marginal_sample(s, mix, t, torch.randn(n, K, 1, dtype=torch.float64))
    x2 = bridge.posterior_step(x, s, mix, t, t2, eta=1.0, z=torch.randn(n, K, 1, dtype=torch.float64))
    d, d2 = (project_null(v - bridge.mean(s, mix, tt))[:, 0, 0] for v, tt in ((x, t), (x2, t2)))
    var = 1 - 1 / K
    std2 = float(bridge.std(torch.tensor(t2)))
    assert abs(float(d2.mean())) < 4 * std2 / math.sqrt(n)
    assert float(d2.var()) == pytest.approx(std2 ** 2 * var, rel=0.02)
    cov = float((d * d2).mean())
    assert cov == pytest.approx((bridge.alpha(t) / bridge.alpha(t2)) * std2 ** 2 * var, rel=0.03)
    torch.testing.assert_close(project_mean(x2), project_mean(s))


def test_deterministic_step_keeps_the_noise_direction():
    bridge = MixtureBridge(3, sigma=0.5)
    s, mix = _sources(K=3)
    z = torch.randn_like(s)
    x = bridge.marginal_sample(s, mix, 0.7, z)
    x2 = bridge.posterior_step(x, s, mix, 0.7, 0.4, eta=0.0)
    torch.testing.assert_close(x2, bridge.marginal_sample(s, mix, 0.4, z))  # the same z, moved along


def test_first_step_from_the_prior_renoises_the_estimate():
    """At t = 1 there is no noise to keep: eta = 1 lands on D's marginal at t' with fresh noise,
    eta = 0 on its mean."""
    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources()
    z = torch.randn_like(s)
    x1 = bridge.prior(mix)
    torch.testing.assert_close(bridge.posterior_step(x1, s, mix, 1.0, 0.5, eta=1.0, z=z),
                               bridge.marginal_sample(s, mix, 0.5, z))
    torch.testing.assert_close(bridge.posterior_step(x1, s, mix, 1.0, 0.5, eta=0.0), bridge.mean(s, mix, 0.5))
    with pytest.raises(ValueError, match="needs noise"):
        bridge.posterior_step(x1, s, mix, 1.0, 0.5, eta=0.5)
    with pytest.raises(ValueError, match="eta"):
        bridge.posterior_step(x1, s, mix, 1.0, 0.5, eta=1.5, z=z)


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_with_an_oracle_denoiser_returns_the_sources(steps, eta):
    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources()
    seen = []

    def oracle(x, t, m):
        seen.append(float(t[0]))
        torch.testing.assert_close(project_mean(x), project_mean(s))
        return s

    est = bridge_sample(oracle, bridge, mix, steps=steps, eta=eta, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(est, s)
    assert seen == pytest.approx([1 - i / steps for i in range(steps)])


def test_a_denoiser_that_misses_the_sources_is_not_rescued():
    """The sampler's output is the last data estimate: a constant-offset denoiser keeps its error
    (the samples are not pulled to the truth by anything but the network)."""
    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources()
    offset = project_null(torch.randn_like(s))
    est = bridge_sample(lambda x, t, m: s + offset, bridge, mix, steps=3, eta=1.0)
    torch.testing.assert_close(est, s + offset)


class _Oracle(torch.nn.Module):
    """Returns fixed sources whatever it is given (in the loss, in their original order)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x, t, mix):
        return self.s


def _draws(s, t, perm=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return LossDraws(perm, t, t == 1, torch.randn(s.shape, generator=g, dtype=s.dtype))


@pytest.mark.parametrize("domain", ["wave", "sisdr", "spec"])
def test_loss_finds_the_order_and_scores_errors(domain):
    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources(N=1024)
    t = torch.tensor([1.0, 0.5, 0.05], dtype=s.dtype)
    perm = random_permutation(3, 2, generator=torch.Generator().manual_seed(3))
    perfect = bridge_loss(_Oracle(s), bridge, s, mix, _draws(s, t, perm), domain=domain)
    swapped = bridge_loss(_Oracle(s.flip(1)), bridge, s, mix, _draws(s, t, perm), domain=domain)
    torch.testing.assert_close(perfect, swapped)  # best permutation at every t
    noisy = bridge_loss(_Oracle(s + 0.3 * torch.randn_like(s)), bridge, s, mix, _draws(s, t, perm), domain=domain)
    assert (noisy > perfect).all()
    fixed = bridge_loss(_Oracle(s.flip(1)), bridge, s, mix, _draws(s, t, None), domain=domain)
    assert (fixed > perfect).all()  # fixed order (enhancement): no search
    if domain == "wave":
        assert torch.all(perfect.abs() < 1e-20)


def test_the_network_input_is_the_bridge_marginal():
    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources()
    t = torch.tensor([1.0, 0.5, 0.2], dtype=s.dtype)
    perm = torch.tensor([[1, 0], [0, 1], [1, 0]])
    draws = _draws(s, t, perm)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, tt, m):
            seen["x"], seen["t"] = x, tt
            return torch.zeros_like(x)

    bridge_loss(Spy(), bridge, s, mix, draws, domain="wave")
    torch.testing.assert_close(seen["x"], bridge.marginal_sample(permute(s, perm), mix, t, draws.z))
    torch.testing.assert_close(seen["x"][0], bridge.prior(mix)[0])
    torch.testing.assert_close(seen["t"], t)


@pytest.mark.parametrize("gains", [(1.0, 1.0), (-1.0, 0.5), (0.1, -3.0)])
def test_mixture_fit_undoes_any_gain_per_source(gains):
    """A scale-invariant separator may output g_k s_k with any g_k, negative included: the fit
    recovers s exactly (up to the ridge), and the denoiser's estimate is then the sources."""
    s, mix = _sources(B=2, N=2000)
    est = torch.tensor(gains, dtype=s.dtype)[None, :, None] * s
    torch.testing.assert_close(mixture_fit(est, mix), s, rtol=1e-3, atol=2e-3)
    silent = mixture_fit(torch.zeros_like(s), mix)
    assert torch.isfinite(silent).all() and silent.abs().max() == 0


def test_denoiser_is_mixture_consistent():
    from diffsep.nets.tasnet_denoiser import TasNetDenoiser

    torch.manual_seed(0)
    net = TasNetDenoiser(n_src=2, N=16, L=8, B=8, H=16, X=2, R=1, Sc=8)
    model = BridgeDenoiser(net, MixtureBridge(2))
    s, mix = _sources(B=2, N=400)
    s, mix = s.float(), mix.float()
    est = model(torch.randn_like(s), torch.tensor([0.3, 1.0]), mix)
    torch.testing.assert_close(est.sum(1, keepdim=True), mix, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="bridge has 3"):
        BridgeDenoiser(net, MixtureBridge(3))


def test_bridge_family_trains_separates_and_evaluates(tmp_path):
    from diffsep.cli import evaluate, separate, train
    from diffsep.inference.loading import load_separator, load_trained

    root = make_train_cv_tree(tmp_path / "data", 4)
    config = tmp_path / "bridge.yaml"
    config.write_text("model:\n  kind: bridge\n  backbone: tasnet\n  tasnet_N: 16\n  tasnet_L: 8\n  tasnet_B: 8\n"
                      "  tasnet_H: 16\n  tasnet_X: 2\n  tasnet_R: 1\n  tasnet_Sc: 8\n  tasnet_emb_dim: 8\n"
                      "bridge:\n  sigma: 0.4\nsampler:\n  steps: 2\n"
                      "data:\n  kind: folder\n  segment_seconds: 0.25\n  num_workers: 0\n"
                      "  train_split: tr\n  valid_split: cv\n")
    run = tmp_path / "run"
    assert train.main([str(config), f"data.root={root}", f"train.run_dir={run}", "train.max_steps=2",
                       "train.batch_size=2", "train.accumulate=1", "train.val_every=0", "train.val_batches=1",
                       "train.val_sep_items=1", "train.log_every=1", "train.device=cpu"]) == 0
    trained = load_trained(run / "last.pt")
    assert isinstance(trained.model, BridgeDenoiser) and trained.model.bridge.sigma == 0.4
    assert trained.config.sampler.steps == 2 and not hasattr(trained.config, "sde")

    sep = load_separator(str(run / "last.pt"), device="cpu", sampler={"steps": 4})
    assert sep.nfe == 4
    tuned = tmp_path / "tuned"  # fine-tuned through the 2-step sampler, then separated with 4 steps
    assert train.main([str(config), f"data.root={root}", f"train.run_dir={tuned}", "train.max_steps=1",
                       "train.batch_size=2", "train.accumulate=1", "train.val_every=0", "train.val_batches=1",
                       "train.val_sep_items=1", "train.device=cpu", f"train.init_from={run / 'last.pt'}",
                       "loss.unroll_steps=2"]) == 0
    assert load_trained(tuned / "last.pt").config.loss.unroll_steps == 2
    assert load_separator(str(tuned / "last.pt"), device="cpu", sampler={"steps": 4}).nfe == 4
    with pytest.raises(ValueError, match="unknown option"):
        load_separator(str(run / "last.pt"), device="cpu", sampler={"snr": 0.3})

    out = tmp_path / "sep"
    mix = next((root / "cv" / "mix").glob("*.wav"))
    assert separate.main([str(mix), "-o", str(out), "--model", str(run / "last.pt"), "--device", "cpu",
                          "--steps", "3", "--eta", "0"]) == 0
    assert (out / "s1" / mix.name).is_file() and (out / "s2" / mix.name).is_file()
    assert evaluate.main(["--model", str(run / "last.pt"), "--dataset", "folder", "--data-root", str(root),
                          "--split", "cv", "--out", str(tmp_path / "eval"), "--no-perceptual", "--jobs", "0",
                          "--device", "cpu", "--quiet"]) == 0
    assert (tmp_path / "eval" / "summary.json").is_file()


def _tiny_bridge(seed=0):
    from diffsep.nets.tasnet_denoiser import TasNetDenoiser

    torch.manual_seed(seed)
    net = TasNetDenoiser(n_src=2, N=16, L=8, B=8, H=16, X=2, R=1, Sc=8)
    for p in net.parameters():  # away from the zero-initialised x_t columns and FiLM: every input matters
        torch.nn.init.normal_(p, std=0.2)
    return BridgeDenoiser(net, MixtureBridge(2, sigma=0.5))


def _unroll_draws(s, steps, seed=0):
    from diffsep.families.bridge import BridgeDraws

    g = torch.Generator().manual_seed(seed)
    B, K, N = s.shape
    return BridgeDraws(random_permutation(B, K, generator=g), torch.ones(B), torch.ones(B, dtype=torch.bool),
                       torch.randn(B, K, N, generator=g), torch.randn(B, steps - 1, K, N, generator=g))


def test_unrolled_loss_scores_the_sampler_output_and_trains_every_step():
    from diffsep.families.bridge import unrolled_bridge_loss

    bridge = MixtureBridge(2, sigma=0.5)
    s, mix = _sources(B=2, N=512)
    s, mix = s.float(), mix.float()
    draws = _unroll_draws(s, 3)
    oracle = unrolled_bridge_loss(_Oracle(s), bridge, s, mix, draws, steps=3, eta=1.0)
    swapped = unrolled_bridge_loss(_Oracle(s.flip(1)), bridge, s, mix, draws, steps=3, eta=1.0)
    assert (oracle < -60).all() and torch.allclose(oracle, swapped)  # the sources, in either order

    model = _tiny_bridge()
    loss = unrolled_bridge_loss(model, bridge, s, mix, draws, steps=3, eta=1.0)
    again = unrolled_bridge_loss(model, bridge, s, mix, draws, steps=3, eta=1.0)
    torch.testing.assert_close(loss, again)  # all randomness is in the draws
    other = unrolled_bridge_loss(model, bridge, s, mix, _unroll_draws(s, 3, seed=5), steps=3, eta=1.0)
    assert not torch.allclose(loss, other)  # ... and the step noise is used
    loss.mean().backward()
    x_cols = model.net.encoder.weight.grad[:, :2]  # the encoder's x_t inputs: read only after step 1
    assert torch.isfinite(x_cols).all() and x_cols.abs().sum() > 0


def test_unroll_needs_the_shipped_number_of_steps():
    from diffsep.config.settings import ConfigError, load_config

    with pytest.raises((ValueError, ConfigError), match="sampler.steps=2"):
        load_config(None, ["model.kind=bridge", "loss.unroll_steps=2", "sampler.steps=3"])
    cfg = load_config(None, ["model.kind=bridge", "loss.unroll_steps=2", "sampler.steps=2"])
    assert cfg.loss.unroll_steps == 2
