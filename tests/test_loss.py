import pytest
import torch

from diffsep.families.score_matching import score_matching_loss
from diffsep.core.pit import permute
from diffsep.core.sde import DiffSepSDE
from conftest import diffsep_model, normalised_example


def batch(K, B=4, N=600, dtype=torch.float64):
    items = [normalised_example(K, N, seed=i, dtype=dtype) for i in range(B)]
    return torch.cat([s for s, _ in items]), torch.cat([m for _, m in items])


def exact_score_for(sde, sources):
    """Exact score of p(x_t | s) for the given source order."""
    return lambda x, t, mix: sde.exact_score(x, t, sources)


@pytest.mark.parametrize("p_T", [0.0, 0.5, 1.0])
def test_zero_for_the_exact_score_fixed_order(p_T):
    """Regular items: x_t − μ_t = L_t z; items at T: x_T − μ_T = L_T z_id. Both give loss 0."""
    sde = DiffSepSDE(2)
    s, mix = batch(2)
    loss = score_matching_loss(exact_score_for(sde, s), sde, s, mix, p_T=p_T, fixed_order=True,
                               generator=torch.Generator().manual_seed(0))
    assert loss.shape == (4,)
    assert loss.abs().max() < 1e-20


@pytest.mark.parametrize("K", [2, 3])
def test_t_T_branch_takes_the_minimum_over_permutations(K):
    """A score exact for ANY source order gives zero loss at t = T; in fixed order only the
    matching order does."""
    sde = DiffSepSDE(K)
    s, mix = batch(K)
    other = permute(s, torch.roll(torch.arange(K), 1).expand(4, K))
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    loss = score_matching_loss(exact_score_for(sde, other), sde, s, mix, p_T=1.0, generator=g())
    assert loss.abs().max() < 1e-20
    fixed = score_matching_loss(exact_score_for(sde, other), sde, s, mix, p_T=1.0,
                                fixed_order=True, generator=g())
    assert (fixed > 1e-3).all()


def test_t_T_branch_is_invariant_to_permuting_the_targets():
    sde = DiffSepSDE(3)
    s, mix = batch(3)
    net = torch.nn.Conv1d(3, 3, 5, padding=2).double()
    score_fn = lambda x, t, m: net(x) + m  # noqa: E731  any fixed function of the input
    losses = []
    for perm in ([0, 1, 2], [2, 0, 1], [1, 0, 2]):
        with torch.no_grad():
            losses.append(score_matching_loss(score_fn, sde, s[:, perm], mix, p_T=1.0,
                                              generator=torch.Generator().manual_seed(3)))
    torch.testing.assert_close(losses[1], losses[0])
    torch.testing.assert_close(losses[2], losses[0])


def test_one_network_call_and_branch_statistics():
    sde = DiffSepSDE(2)
    s, mix = batch(2, B=2, N=64)
    s, mix = s.repeat(500, 1, 1), mix.repeat(500, 1, 1)
    seen = []

    def score_fn(x, t, m):
        seen.append(t.clone())
        return torch.zeros_like(x)

    score_matching_loss(score_fn, sde, s, mix, p_T=0.3, t_eps=0.05,
                        generator=torch.Generator().manual_seed(0))
    assert len(seen) == 1
    t = seen[0]
    at_T = t == 1.0
    assert abs(at_T.double().mean().item() - 0.3) < 0.05
    assert t[~at_T].min() >= 0.05 and t[~at_T].max() < 1.0
    assert abs(t[~at_T].mean().item() - 0.525) < 0.03  # uniform on [t_eps, T]


def test_regular_branch_shuffles_sources_per_item():
    """Random order: the exact score for the given order is right for only some items."""
    sde = DiffSepSDE(2)
    s, mix = batch(2, B=2, N=64)
    s, mix = s.repeat(20, 1, 1), mix.repeat(20, 1, 1)
    loss = score_matching_loss(exact_score_for(sde, s), sde, s, mix, p_T=0.0,
                               generator=torch.Generator().manual_seed(0))
    exact = loss < 1e-20
    assert 0 < exact.sum() < len(loss)


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    model = diffsep_model(2, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(128,), init_scale=1.0)
    sde = DiffSepSDE(2)
    s, mix = batch(2, B=2, N=1000, dtype=torch.float32)
    loss = score_matching_loss(model, sde, s, mix, p_T=0.5, generator=torch.Generator().manual_seed(0))
    loss.mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_rejects_wrong_number_of_sources():
    s, mix = batch(3, B=1, N=32)
    with pytest.raises(ValueError, match="n_src = 2"):
        score_matching_loss(lambda x, t, m: x, DiffSepSDE(2), s, mix)
