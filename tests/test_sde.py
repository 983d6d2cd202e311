import math

import pytest
import torch

from diffsep.core.sde import DiffSepSDE, project_mean, project_null
from conftest import DEVICES, normalised_example


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_eigenvalues_match_hand_computed_values():
    sde = DiffSepSDE(2)
    ln10 = math.log(10.0)
    for t in (0.25, 0.5, 1.0):
        lam1, lam2 = sde.eigvals(torch.tensor([t], dtype=torch.float64))
        assert lam1.item() == pytest.approx(0.05 ** 2 * (10.0 ** (2 * t) - 1), rel=1e-12)
        want2 = 0.05 ** 2 * ln10 * (10.0 ** (2 * t) - math.exp(-4.0 * t)) / (2.0 + ln10)
        assert lam2.item() == pytest.approx(want2, rel=1e-12)
    lam1, lam2 = sde.eigvals(torch.tensor([1.0], dtype=torch.float64))
    assert lam1.item() == pytest.approx(0.2475, rel=1e-12)  # 0.0025 * 99
    lam1, lam2 = sde.eigvals(torch.tensor([0.0], dtype=torch.float64))
    assert lam1.item() == 0 and abs(lam2.item()) < 1e-18


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_closed_form_identities(K):
    sde = DiffSepSDE(K)
    x, s = rand(3, K, 50, seed=1), rand(3, K, 50, seed=2)
    t = torch.tensor([0.03, 0.4, 1.0], dtype=torch.float64)
    torch.testing.assert_close(sde.mean(s, torch.zeros(3, dtype=torch.float64)), s)  # μ_0 = s
    torch.testing.assert_close(sde.mult_L(sde.mult_L(x, t), t), sde.mult_Sigma(x, t))  # L L = Σ
    torch.testing.assert_close(sde.mult_L_inv(sde.mult_L(x, t), t), x)  # L⁻¹ L = I
    torch.testing.assert_close(sde.mult_Sigma_inv(sde.mult_Sigma(x, t), t), x)
    # P and P̄ are complementary projections
    torch.testing.assert_close(project_mean(project_mean(x)), project_mean(x))
    torch.testing.assert_close(project_null(project_null(x)), project_null(x))
    torch.testing.assert_close(project_mean(x) + project_null(x), x)
    # explicit K x K matrices agree with the closed form
    P = torch.full((K, K), 1.0 / K, dtype=torch.float64)
    lam1, lam2 = sde.eigvals(t)
    for b in range(3):
        Sigma = lam1[b] * P + lam2[b] * (torch.eye(K, dtype=torch.float64) - P)
        torch.testing.assert_close(sde.mult_Sigma(x, t)[b], Sigma @ x[b])
        mean_mat = P + math.exp(-2.0 * t[b]) * (torch.eye(K, dtype=torch.float64) - P)
        torch.testing.assert_close(sde.mean(s, t)[b], mean_mat @ s[b])


def test_prior_mean_and_covariance():
    K, sde = 3, DiffSepSDE(3)
    mix = rand(2, 1, 40000, seed=3)
    torch.testing.assert_close(sde.prior_mean(mix), (mix / K).expand(2, K, -1))
    x = sde.prior_sample(mix, torch.Generator().manual_seed(0))
    assert x.shape == (2, K, 40000) and x.dtype == mix.dtype
    dev = (x - mix / K)[0]  # (K, N): columns are iid N(0, Σ_T)
    emp = dev @ dev.T / dev.shape[1]
    lam1, lam2 = sde.eigvals(torch.tensor([1.0], dtype=torch.float64))
    P = torch.full((K, K), 1.0 / K, dtype=torch.float64)
    want = lam1 * P + lam2 * (torch.eye(K, dtype=torch.float64) - P)
    assert (emp - want).abs().max() < 6 * want.diagonal().max() * (2 / 40000) ** 0.5


def test_marginal_solves_the_moment_odes():
    """dμ/dt = −γ P̄ μ and dΣ/dt = −γ (P̄ Σ + Σ P̄) + g² I, checked by central differences."""
    K, sde = 3, DiffSepSDE(3)
    s, x = rand(1, K, 20, seed=4), rand(1, K, 20, seed=5)
    for t0 in (0.1, 0.5, 0.9):
        h = 1e-5
        tp, tm, t = (torch.tensor([v], dtype=torch.float64) for v in (t0 + h, t0 - h, t0))
        dmu = (sde.mean(s, tp) - sde.mean(s, tm)) / (2 * h)
        torch.testing.assert_close(dmu, sde.drift(sde.mean(s, t)), rtol=1e-6, atol=1e-8)
        dSx = (sde.mult_Sigma(x, tp) - sde.mult_Sigma(x, tm)) / (2 * h)
        rhs = (-sde.gamma * (project_null(sde.mult_Sigma(x, t)) + sde.mult_Sigma(project_null(x), t))
               + sde.diffusion(t) ** 2 * x)
        torch.testing.assert_close(dSx, rhs, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("K", [2, 3])
def test_marginal_matches_euler_maruyama_simulation(K):
    """Closed-form mean and covariance vs a fine Euler-Maruyama simulation of the forward SDE."""
    sde = DiffSepSDE(K)
    g = torch.Generator().manual_seed(K)
    M, n = 20000, 4  # independent paths, samples per path
    s = rand(1, K, n, seed=10 + K)
    x = s.expand(M, K, n).clone()
    steps, checks = 1000, {500: 0.5, 1000: 1.0}
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.tensor([i * dt], dtype=torch.float64)
        x = x + sde.drift(x) * dt + sde.diffusion(t) * dt ** 0.5 * torch.randn(
            x.shape, generator=g, dtype=torch.float64)
        if i + 1 in checks:
            tt = torch.tensor([checks[i + 1]], dtype=torch.float64)
            mu = sde.mean(s, tt)[0]
            lam1, lam2 = sde.eigvals(tt)
            P = torch.full((K, K), 1.0 / K, dtype=torch.float64)
            Sigma = lam1 * P + lam2 * (torch.eye(K, dtype=torch.float64) - P)
            emp_mean = x.mean(0)
            se_mean = (Sigma.diagonal().max() / M) ** 0.5
            assert (emp_mean - mu).abs().max() < 5 * se_mean
            d = x - emp_mean
            emp_cov = torch.einsum("mkn,mjn->kj", d, d) / (M * n)
            se_cov = Sigma.diagonal().max() * (2.0 / (M * n)) ** 0.5
            # Euler-Maruyama bias is O(dt); allow it on top of 5 standard errors
            assert (emp_cov - Sigma).abs().max() < 5 * se_cov + 2e-3 * Sigma.abs().max()


def test_matches_reference_sde_values(reference_fixture):
    ref = reference_fixture["sde"]
    sde = DiffSepSDE(2, gamma=ref["params"]["d_lambda"], sigma_min=ref["params"]["sigma_min"],
                     sigma_max=ref["params"]["sigma_max"])
    t, x0 = ref["t"], ref["x0"]
    tol = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sde.mean(x0, t), ref["marginal_mean"], **tol)
    lam1, lam2 = sde.eigvals(t)
    torch.testing.assert_close(lam1, ref["lambda1"], **tol)
    torch.testing.assert_close(lam2, ref["lambda2"], **tol)
    eye = torch.eye(2).expand(4, 2, 2).transpose(1, 2)  # columns of I as (B, K, N=2)
    torch.testing.assert_close(sde.mult_L(eye, t), ref["L"], **tol)
    torch.testing.assert_close(sde.mult_L_inv(x0, t), ref["L_inv_x0"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sde.drift(x0, t), ref["drift"], **tol)
    torch.testing.assert_close(sde.diffusion(t), ref["diffusion"], **tol)
    pr = ref["prior"]
    torch.testing.assert_close(sde.prior_mean(pr["y"]) + sde.mult_L(pr["z"], 1.0), pr["x_T"], **tol)
    xc = ref["x_t_construction"]
    torch.testing.assert_close(sde.marginal_sample(xc["sources"], xc["t"], xc["z"]),
                               reference_fixture["inputs"]["x_t"], **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_follows_input_device_and_dtype(device, dtype):
    sde = DiffSepSDE(2)
    s, mix = normalised_example(2, 100, dtype=dtype)
    s, mix = s.to(device), mix.to(device)
    t = torch.tensor([0.5], device=device, dtype=dtype)
    outs = [sde.mean(s, t), sde.mult_L(s, t), sde.mult_L_inv(s, t), sde.mult_Sigma(s, t),
            sde.prior_sample(mix), sde.exact_score(s, t, s), sde.drift(s)]
    for o in outs:
        assert o.device.type == device and o.dtype == dtype
    tt = sde.sample_time(1000, 0.03, device=device, dtype=dtype,
                         generator=torch.Generator(device).manual_seed(0))
    assert tt.min() >= 0.03 and tt.max() <= 1.0 and tt.dtype == dtype


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="n_src"):
        DiffSepSDE(0)
    with pytest.raises(ValueError, match="sigma_min"):
        DiffSepSDE(2, sigma_min=0.5, sigma_max=0.05)
