"""The spectral U-Net: waveforms (B, K, N) and mix (B, 1, N) in, waveform-shaped output out."""
import pytest
import torch

from diffsep.nets.spectral_unet import SpectralUNet
from conftest import DEVICES


def tiny(K=2, **kw):
    return SpectralUNet(n_src=K, nf=8, ch_mult=(1, 2, 2), attn_resolutions=(128,), **kw)


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("N", [1, 1001, 4097])
def test_shapes_any_sources_any_length(K, N):
    model = tiny(K).eval()
    x = torch.randn(2, K, N)
    with torch.no_grad():
        out = model(x, torch.tensor([0.3, 0.9]), x.sum(1, keepdim=True))
    assert out.shape == (2, K, N) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_rejects_mismatched_shapes():
    model = tiny(2)
    with pytest.raises(ValueError, match=r"x_t must be \(B, 2, N\)"):
        model(torch.randn(1, 3, 100), torch.ones(1), torch.randn(1, 1, 100))
    with pytest.raises(ValueError, match="mix must be"):
        model(torch.randn(1, 2, 100), torch.ones(1), torch.randn(1, 1, 99))


@pytest.mark.parametrize("device", DEVICES)
def test_follows_device_and_dtype(device):
    model = tiny(2).to(device=device, dtype=torch.float64).eval()
    x = torch.randn(1, 2, 500, device=device, dtype=torch.float64)
    with torch.no_grad():
        out = model(x, torch.tensor([0.5], device=device, dtype=torch.float64), x.sum(1, keepdim=True))
    assert out.device.type == device and out.dtype == torch.float64


def test_autocast_bfloat16_forward_is_close_to_float32():
    torch.manual_seed(0)
    model = tiny(2, init_scale=1.0).eval()
    x = torch.randn(1, 2, 3000)
    args = (x, torch.tensor([0.5]), x.sum(1, keepdim=True))
    with torch.no_grad():
        ref = model(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(*args)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert _rel_err(low, ref) < 0.1


def test_rejects_frequency_sizes_the_unet_cannot_halve():
    with pytest.raises(ValueError, match="n_fft=512 gives 257 frequency bins"):
        SpectralUNet(n_fft=512)


def test_time_embedding_of_t_gives_a_finite_output_at_t_0():
    torch.manual_seed(0)
    model = tiny(2, init_scale=1.0, time_embedding="t").eval()
    x = torch.randn(3, 2, 1500)
    with torch.no_grad():
        out = model(x, torch.tensor([0.0, 0.0, 0.7]), x.sum(1, keepdim=True))
    assert torch.isfinite(out).all() and out.abs().max() > 0


def test_divisor_reaches_the_network_and_one_changes_nothing():
    torch.manual_seed(0)
    model = tiny(2, init_scale=1.0).eval()
    x, t = torch.randn(2, 2, 1200), torch.tensor([0.2, 0.9])
    args = (x, t, x.sum(1, keepdim=True))
    with torch.no_grad():
        plain = model(*args)
        torch.testing.assert_close(model(*args, divisor=torch.ones(2)), plain, rtol=0, atol=0)
        assert not torch.allclose(model(*args, divisor=t), plain, rtol=1e-2)


def _rel_err(out, expected):
    return ((out - expected).abs().max() / expected.abs().max()).item()
