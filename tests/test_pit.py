import math

import torch

from diffsep.core.sdr import pit_si_sdr, si_sdr
from diffsep.core.pit import all_permutations, best_permutation, permutations, permute, random_permutation


def test_permutations_enumerate_all_orders():
    for K in (1, 2, 3, 4):
        p = permutations(K)
        assert p.shape == (math.factorial(K), K)
        assert p[0].tolist() == list(range(K))
        assert len({tuple(r) for r in p.tolist()}) == p.shape[0]


def test_permute_and_all_permutations_agree():
    x = torch.randn(2, 3, 5)
    allp = all_permutations(x)
    for i, perm in enumerate(permutations(3)):
        torch.testing.assert_close(allp[:, i], permute(x, perm.expand(2, 3)))


def test_best_permutation_recovers_planted_order():
    g = torch.Generator().manual_seed(0)
    for K in (2, 3, 4):
        ref = torch.randn(5, K, 400, generator=g)
        perm = random_permutation(5, K, generator=g)
        est = permute(ref, perm) + 0.1 * torch.randn(5, K, 400, generator=g)
        # est i = ref perm[i]: matching estimate i to reference j scores -distance
        pairwise = -(est[:, :, None] - ref[:, None, :]).square().mean(-1)
        found, _ = best_permutation(pairwise)
        assert torch.equal(found, perm)


def test_si_sdr_closed_forms():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(3, 8000, generator=g, dtype=torch.float64)
    assert (si_sdr(-2.5 * ref, ref) > 100).all()  # scale invariant (sign included)
    noise = torch.randn(3, 8000, generator=g, dtype=torch.float64)
    noise = noise - (noise * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True) * ref
    noise = noise / noise.norm(dim=-1, keepdim=True) * ref.norm(dim=-1, keepdim=True) * 0.1
    torch.testing.assert_close(si_sdr(ref + noise, ref), torch.full((3,), 20.0, dtype=torch.float64),
                               atol=0.05, rtol=0)


def test_pit_si_sdr_undoes_swaps():
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(2, 3, 4000, generator=g)
    est = ref[:, [2, 0, 1]] + 0.01 * torch.randn(2, 3, 4000, generator=g)
    scores, perm = pit_si_sdr(est, ref)
    assert perm.tolist() == [[1, 2, 0]] * 2
    assert (scores > 30).all()
