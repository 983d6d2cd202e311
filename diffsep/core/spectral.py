"""STFT / iSTFT for any leading dimensions, the compressive transform c(X) and the packing of
complex spectrograms into real network channels (paper Sec. 3.3, reference channel order).

Shapes: waveforms (..., N); spectrograms (..., F, frames) with F = n_fft // 2 + 1.
"""
from __future__ import annotations

import torch
from torch import Tensor

TRANSFORMS = ("exponent", "log", "none")


def _window(n_fft: int, like: Tensor) -> Tensor:
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(n_fft, periodic=True, device=like.device, dtype=dtype)


def stft(x: Tensor, n_fft: int = 510, hop_length: int = 128) -> Tensor:
    """Centred, zero-padded STFT with a periodic Hann window of n_fft. (..., N) -> (..., F, frames)."""
    lead = x.shape[:-1]
    X = torch.stft(x.reshape(-1, x.shape[-1]), n_fft=n_fft, hop_length=hop_length,
                   window=_window(n_fft, x), center=True, pad_mode="constant",
                   normalized=False, onesided=True, return_complex=True)
    return X.reshape(*lead, *X.shape[-2:])


def istft(X: Tensor, n_fft: int = 510, hop_length: int = 128, length: int | None = None) -> Tensor:
    """Inverse of :func:`stft`. (..., F, frames) -> (..., length).

    Without ``length`` the output has hop_length * (frames − 1) samples, as torch.istft gives it;
    with it, the output is cropped or zero-padded to ``length`` (the samples are the same).
    """
    lead = X.shape[:-2]
    x = torch.istft(X.reshape(-1, *X.shape[-2:]), n_fft=n_fft, hop_length=hop_length,
                    window=_window(n_fft, X), center=True, normalized=False, onesided=True,
                    length=length)
    return x.reshape(*lead, x.shape[-1])


def compress(X: Tensor, alpha: float = 0.5, beta: float = 0.15, transform: str = "exponent") -> Tensor:
    """c(X) = β |X|^α e^{i∠X} ("exponent"), β log(1 + |X|) e^{i∠X} ("log") or X ("none")."""
    if transform == "exponent":
        if alpha == 1:
            return beta * X
        mag = X.abs()
        # |X|^α e^{i∠X} = X |X|^(α−1); at X = 0 the result is 0 whatever the clamp.
        return X * (beta * mag.clamp_min(torch.finfo(mag.dtype).tiny) ** (alpha - 1.0))
    if transform == "log":
        mag = X.abs()
        return X * (beta * torch.log1p(mag) / mag.clamp_min(torch.finfo(mag.dtype).tiny))
    if transform == "none":
        return X
    raise ValueError(f"unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}")


def decompress(Z: Tensor, alpha: float = 0.5, beta: float = 0.15, transform: str = "exponent") -> Tensor:
    """c⁻¹(Z) = (|Z| / β)^{1/α} e^{i∠Z} (and the inverses of "log" and "none")."""
    if transform == "exponent":
        Z = Z / beta
        if alpha == 1:
            return Z
        if alpha == 0.5:  # the paper's setting: Z |Z|, no pow needed
            return Z * Z.abs()
        mag = Z.abs()
        return Z * mag.clamp_min(torch.finfo(mag.dtype).tiny) ** (1.0 / alpha - 1.0)
    if transform == "log":
        Z = Z / beta
        mag = Z.abs()
        return Z * (torch.expm1(mag) / mag.clamp_min(torch.finfo(mag.dtype).tiny))
    if transform == "none":
        return Z
    raise ValueError(f"unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}")


def complex_to_channels(X: Tensor) -> Tensor:
    """[Re X_1 .. Re X_C, Im X_1 .. Im X_C] on the channel axis. (B, C, F, T) complex -> (B, 2C, F, T)."""
    return torch.cat((X.real, X.imag), dim=1)


def channels_to_complex(x: Tensor) -> Tensor:
    """Inverse of :func:`complex_to_channels`: first half real, second half imaginary.
    (B, 2C, F, T) -> (B, C, F, T) complex."""
    if x.shape[1] % 2:
        raise ValueError(f"need an even number of channels, got {x.shape[1]}")
    if x.dtype in (torch.float16, torch.bfloat16):  # no complex type for these: go to float32
        x = x.float()
    re, im = x.chunk(2, dim=1)
    return torch.complex(re, im)
