import numpy as np
import pytest
import torch

from diffsep.nets.layers import AttnBlock, NIN, fir_downsample, fir_upsample
from diffsep.nets.ncsnpp import NCSNpp

K1 = np.array([1.0, 3.0, 3.0, 1.0])


def _upfirdn_1d(x, k, up, down, pad0, pad1):
    """Literal upsample-by-zero-insertion, pad, FIR convolve, downsample along the last axis."""
    n = x.shape[-1]
    y = np.zeros(x.shape[:-1] + (n * up,))
    y[..., ::up] = x
    y = np.pad(y, [(0, 0)] * (x.ndim - 1) + [(pad0, pad1)])
    out = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), -1, y)
    return out[..., ::down]


def _upfirdn_2d(x, k, up, down, pad0, pad1):
    y = _upfirdn_1d(x, k, up, down, pad0, pad1)
    return np.swapaxes(_upfirdn_1d(np.swapaxes(y, -1, -2), k, up, down, pad0, pad1), -1, -2)


def test_fir_downsample_matches_upfirdn():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 12))
    want = _upfirdn_2d(x, K1 / K1.sum(), up=1, down=2, pad0=1, pad1=1)
    got = fir_downsample(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_fir_upsample_matches_upfirdn():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 6))
    want = _upfirdn_2d(x, 2 * K1 / K1.sum(), up=2, down=1, pad0=2, pad1=1)  # gain 4 in 2-D
    got = fir_upsample(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 3, 8, 12)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_fir_resampling_preserves_constants_and_rejects_odd_kernels():
    x = torch.ones(1, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(fir_downsample(x)[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2, dtype=torch.float64))
    torch.testing.assert_close(fir_upsample(x)[..., 2:-2, 2:-2], torch.ones(1, 2, 12, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match="even length"):
        fir_downsample(x, kernel=(1, 2, 1))


def test_attention_matches_the_reference_formula():
    torch.manual_seed(0)
    blk = AttnBlock(8).double()
    for p in blk.parameters():  # non-symmetric random weights: a transposed NIN would show
        p.data.normal_()
    x = torch.randn(2, 8, 4, 3, dtype=torch.float64)
    B, C, H, W = x.shape

    def nin(m: NIN, h):
        return torch.einsum("bchw,cd->bdhw", h, m.W) + m.b[None, :, None, None]

    h = blk.GroupNorm_0(x)
    q, k, v = nin(blk.NIN_0, h), nin(blk.NIN_1, h), nin(blk.NIN_2, h)
    w = torch.einsum("bchw,bcij->bhwij", q, k) * C ** -0.5
    w = torch.softmax(w.reshape(B, H, W, H * W), -1).reshape(B, H, W, H, W)
    want = (x + nin(blk.NIN_3, torch.einsum("bhwij,bcij->bchw", w, v))) / 2 ** 0.5
    torch.testing.assert_close(blk(x), want)


@pytest.mark.parametrize("nf,count", [(16, 1_047_526), (64, 16_456_390), (128, 65_623_366)])
def test_parameter_counts_at_paper_settings(nf, count):
    with torch.device("meta"):
        net = NCSNpp(in_ch=6, out_ch=4, nf=nf)
    assert sum(p.numel() for p in net.parameters()) == count
    assert len(list(net.parameters())) == 647
    assert not net.temb.fourier.W.requires_grad  # frozen Fourier frequencies
