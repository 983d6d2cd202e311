"""Demucs, the waveform U-Net of "Music Source Separation in the Waveform Domain" (Défossez et al.).

    mix (B, C, N) -> stems (B, K, C, N)

Encoder: L blocks  Conv1d(K=8, stride 4) -> ReLU -> Conv1d 1x1 to 2x channels -> GLU, channels
64, 128, ... (×``growth`` per block). Bottleneck: a 2-layer bidirectional LSTM over time with a
linear projection back to the channel count. Decoder: L blocks mirroring the encoder, each
Conv1d(K=``context``) to 2x channels -> GLU -> ConvTranspose1d(K=8, stride 4) -> ReLU (no ReLU at
the output, which has K·C channels). U-Net skips: each decoder block's input is added the
centre-trimmed output of the encoder block of the same depth.

Alignment: the network trims :meth:`Demucs.offset` samples per side (its context convolutions),
so the input is zero-padded by that much on the left and up to :meth:`Demucs.valid_length` (every
strided convolution exact) on the right; the first N output samples then line up with the input
sample by sample, for any N.

At init every convolution's weight and bias are divided by sqrt(std(weight) / ``rescale``)
(the paper's rescaling, which brings the weight standard deviations near sqrt(rescale · std)).

Deviations from the paper's code: no ×2 resampling of the input (an option there), no input
normalisation inside the model (the toolkit normalises every mixture outside, see
:mod:`diffsep.core.normalization`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .capture import capture_init


class BLSTM(nn.Module):
    """Bidirectional LSTM over time with a linear map back to ``dim``: (B, dim, T) -> (B, dim, T)."""

    def __init__(self, dim: int, layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x.permute(2, 0, 1))  # (T, B, 2 dim)
        return self.linear(y).permute(1, 2, 0)


def center_trim(x: Tensor, length: int) -> Tensor:
    """The middle ``length`` samples of x (..., n >= length); the extra sample of an odd
    difference is dropped at the end."""
    delta = x.shape[-1] - length
    if delta < 0:
        raise ValueError(f"cannot trim {x.shape[-1]} samples to {length}")
    return x[..., delta // 2: x.shape[-1] - (delta - delta // 2)]


def rescale_conv_(conv: nn.Module, reference: float) -> None:
    """Divide weight and bias by sqrt(std(weight) / reference) (in place)."""
    with torch.no_grad():
        scale = (conv.weight.std() / reference) ** 0.5
        conv.weight.div_(scale)
        if conv.bias is not None:
            conv.bias.div_(scale)


class Demucs(nn.Module):
    """See the module docstring. ``n_src`` stems of ``audio_channels`` channels each;
    ``init_kwargs`` holds the constructor arguments (:func:`~diffsep.nets.capture.capture_init`)."""

    @capture_init
    def __init__(self, n_src: int = 4, audio_channels: int = 2, channels: int = 64, depth: int = 6,
                 kernel_size: int = 8, stride: int = 4, growth: float = 2.0, lstm_layers: int = 2,
                 context: int = 3, rescale: float = 0.1):
        super().__init__()
        if context % 2 == 0:
            raise ValueError(f"Demucs context must be odd (a centred convolution), got {context}")
        self.n_src, self.audio_channels = n_src, audio_channels
        self.depth, self.kernel_size, self.stride, self.context = depth, kernel_size, stride, context
        self.encoder = nn.ModuleList()
        decoder = []
        c_in, c = audio_channels, channels
        for level in range(depth):
            self.encoder.append(nn.Sequential(
                nn.Conv1d(c_in, c, kernel_size, stride), nn.ReLU(),
                nn.Conv1d(c, 2 * c, 1), nn.GLU(dim=1)))
            c_out = n_src * audio_channels if level == 0 else c_in
            block = [nn.Conv1d(c, 2 * c, context), nn.GLU(dim=1), nn.ConvTranspose1d(c, c_out, kernel_size, stride)]
            if level > 0:
                block.append(nn.ReLU())
            decoder.insert(0, nn.Sequential(*block))
            c_in, c = c, int(growth * c)
        self.decoder = nn.ModuleList(decoder)
        self.lstm = BLSTM(c_in, lstm_layers) if lstm_layers else None
        if rescale:
            for m in self.modules():
                if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                    rescale_conv_(m, rescale)

    def valid_length(self, length: int) -> int:
        """The smallest input length >= ``length`` for which every convolution is exact (no
        sample dropped by a stride) and the output still covers ``length`` samples."""
        n = length
        for _ in range(self.depth):
            n = max(1, math.ceil((n - self.kernel_size) / self.stride) + 1)
            n += self.context - 1
        for _ in range(self.depth):
            n = (n - 1) * self.stride + self.kernel_size
        return int(n)

    def offset(self) -> int:
        """Input samples lost on each side by the decoder's context convolutions: output sample i
        lines up with input sample i + offset (each context conv of level l trims
        (context - 1) / 2 samples of resolution stride^(l+1) per side)."""
        return (self.context - 1) // 2 * sum(self.stride ** (level + 1) for level in range(self.depth))

    def forward(self, mix: Tensor) -> Tensor:
        """mix (B, C, N) -> stems (B, K, C, N), aligned with the input sample by sample."""
        B, C, N = mix.shape
        if C != self.audio_channels:
            raise ValueError(f"Demucs expects {self.audio_channels} audio channel(s), got {C}")
        length, off = self.valid_length(N), self.offset()
        x = nn.functional.pad(mix, (off, length - N - off))
        skips = []
        for encode in self.encoder:
            x = encode(x)
            skips.append(x)
        if self.lstm is not None:
            x = self.lstm(x)
        for decode in self.decoder:
            x = decode(x + center_trim(skips.pop(), x.shape[-1]))
        return x[..., :N].reshape(B, self.n_src, self.audio_channels, N)
