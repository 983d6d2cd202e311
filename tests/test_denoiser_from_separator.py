"""A time-conditioned Conv-TasNet denoiser started from a trained Conv-TasNet is that separator:
for any x_t and t its output equals the separator's, until training moves it."""
import pytest
import torch

from diffsep.nets.convtasnet import ConvTasNet
from diffsep.nets.tasnet_denoiser import TasNetDenoiser, load_convtasnet

SIZES = dict(N=16, L=8, B=8, H=12, P=3, X=3, R=2, Sc=8)


def _trained_like(net):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("mask", ["sigmoid", "softmax"])
def test_denoiser_from_convtasnet_is_the_separator(mask):
    torch.manual_seed(0)
    sep = _trained_like(ConvTasNet(n_src=2, mask_activation=mask, **SIZES)).eval()
    den = _trained_like(TasNetDenoiser(n_src=2, mask_activation=mask, emb_dim=8, **SIZES)).eval()
    load_convtasnet(den, sep.state_dict())
    mix = torch.randn(3, 1, 257)
    with torch.no_grad():
        want = sep(mix)[:, :, 0]
        for t in (torch.tensor([0.0, 0.3, 1.0]), torch.tensor(0.7)):
            got = den(torch.randn(3, 2, 257) * 5, t, mix)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_loaded_denoiser_learns_to_use_xt_and_t():
    """After loading, x_t and the FiLM maps get gradients (the start is not a dead end)."""
    sep = ConvTasNet(n_src=2, **SIZES)
    den = TasNetDenoiser(n_src=2, emb_dim=8, **SIZES)
    load_convtasnet(den, sep.state_dict())
    den(torch.randn(2, 2, 200), torch.tensor([0.2, 0.9]), torch.randn(2, 1, 200)).square().mean().backward()
    assert den.encoder.weight.grad[:, :2].abs().sum() > 0
    assert sum(lin.weight.grad.abs().sum() for lin in den.film) > 0


def test_other_sizes_are_refused_naming_the_parameter():
    sep = ConvTasNet(n_src=2, **{**SIZES, "H": 16})
    den = TasNetDenoiser(n_src=2, emb_dim=8, **SIZES)
    with pytest.raises(ValueError, match=r"blocks\.0\.inp\.weight"):
        load_convtasnet(den, sep.state_dict())
