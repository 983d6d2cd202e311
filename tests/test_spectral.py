import numpy as np
import pytest
import torch

from diffsep.core import spectral
from diffsep.nets.spectral_unet import SpectralUNet


@pytest.mark.parametrize("N", [1, 127, 1001, 12345])
def test_stft_istft_round_trip_any_length_and_leading_dims(N):
    x = torch.randn(2, 3, N, generator=torch.Generator().manual_seed(N), dtype=torch.float64)
    X = spectral.stft(x)
    assert X.shape[:3] == (2, 3, 256) and X.is_complex()
    y = spectral.istft(X, length=N)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9)


def test_stft_matches_numpy_definition():
    """Centred zero-padded frames times a periodic Hann window of 510, then a real FFT."""
    N, n_fft, hop = 2000, 510, 128
    x = np.random.default_rng(0).standard_normal(N)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    xp = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = [np.fft.rfft(xp[i * hop:i * hop + n_fft] * win) for i in range(1 + N // hop)]
    want = np.stack(frames, axis=1)
    got = spectral.stft(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("transform", spectral.TRANSFORMS)
@pytest.mark.parametrize("alpha", [0.5, 0.667, 1.0])
def test_compress_round_trip_and_definition(transform, alpha):
    g = torch.Generator().manual_seed(0)
    X = torch.complex(torch.randn(4, 100, generator=g), torch.randn(4, 100, generator=g)).to(torch.complex128)
    X[0, :3] = 0  # exact zeros must survive
    beta = 0.15
    Z = spectral.compress(X, alpha, beta, transform)
    torch.testing.assert_close(spectral.decompress(Z, alpha, beta, transform), X)
    nz = X.abs() > 0
    torch.testing.assert_close(torch.angle(Z[nz]), torch.angle(X[nz]))  # phase kept
    if transform == "exponent":
        torch.testing.assert_close(Z.abs(), beta * X.abs() ** alpha)
    elif transform == "log":
        torch.testing.assert_close(Z.abs(), beta * torch.log1p(X.abs()))
    assert torch.all(Z[0, :3] == 0)


def test_unknown_transform_is_rejected():
    with pytest.raises(ValueError, match="valid: exponent, log, none"):
        spectral.compress(torch.zeros(2, dtype=torch.complex64), transform="cubic")


def test_channel_packing_order_and_round_trip():
    X = torch.complex(torch.arange(6.0).reshape(1, 3, 1, 2), -torch.arange(6.0).reshape(1, 3, 1, 2))
    h = spectral.complex_to_channels(X)
    assert h.shape == (1, 6, 1, 2)
    torch.testing.assert_close(h[:, :3], X.real)  # [Re x1, Re x2, Re mix, Im x1, Im x2, Im mix]
    torch.testing.assert_close(h[:, 3:], X.imag)
    torch.testing.assert_close(spectral.channels_to_complex(h), X)


@pytest.mark.parametrize("N", [1, 999, 8000])
def test_score_model_encode_decode_round_trip(N):
    """The wrapper's own pre/post-processing (pad, STFT, compress, pack, frame padding) inverts."""
    model = SpectralUNet(n_src=2, nf=8, ch_mult=(1, 2, 2), spec_factor=0.33).double()
    x = torch.randn(2, 3, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h, pad = model.encode(x)
    assert h.shape[1] == 6 and h.shape[2] == 256 and h.shape[3] % model.frame_multiple == 0
    torch.testing.assert_close(model.decode(h, pad, N), x)
