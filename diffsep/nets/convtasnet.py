"""Conv-TasNet (Luo and Mesgarani, "Conv-TasNet: surpassing ideal time-frequency magnitude masking
for speech separation", IEEE/ACM TASLP 2019): the discriminative baseline.

mix (B, 1, T) -> encoder (1-D conv, N filters of length L, stride L/2, ReLU) -> w (B, N, F)
-> temporal convolutional network -> K masks (B, K, N, F) -> decoder (transposed conv) -> (B, K, T).

Symbols are the paper's: N encoder filters, L filter length, B bottleneck channels, H block
channels, P depthwise kernel size, X blocks per repeat (dilations 1 … 2^(X−1)), R repeats,
Sc skip-connection channels.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .capture import capture_init

NORMS = ("gln", "cln", "bn")
MASK_ACTIVATIONS = ("sigmoid", "softmax", "relu")


class _LayerNorm(nn.Module):
    """Normalisation with per-channel gain γ and bias β: γ (x − mean) / sqrt(var + eps) + β."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def affine(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        return self.gamma * (x - mean) / (var + self.eps).sqrt() + self.beta


class GlobalLayerNorm(_LayerNorm):
    """gLN: statistics over channels and all frames of each item. (B, C, F) -> (B, C, F).

    That is group normalisation with one group: torch's fused kernel computes it (forward and
    backward) in a fraction of the time of the formula written out (:meth:`affine`)."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.group_norm(x, 1, self.gamma.view(-1), self.beta.view(-1), self.eps)


class CumulativeLayerNorm(_LayerNorm):
    """cLN (causal): statistics over channels and frames 0 … f for frame f. (B, C, F) -> (B, C, F)."""

    def forward(self, x: Tensor) -> Tensor:
        C = x.shape[1]
        count = C * torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
        mean = x.sum(1, keepdim=True).cumsum(-1) / count
        power = x.square().sum(1, keepdim=True).cumsum(-1) / count
        return self.affine(x, mean, (power - mean.square()).clamp_min(0))


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "gln":
        return GlobalLayerNorm(channels)
    if kind == "cln":
        return CumulativeLayerNorm(channels)
    if kind == "bn":
        return nn.BatchNorm1d(channels)
    raise ValueError(f"unknown norm {kind!r}; valid: {', '.join(NORMS)}")


class ConvBlock(nn.Module):
    """1×1 conv B→H, PReLU, norm, depthwise conv (kernel P, dilation d), PReLU, norm, then 1×1
    convs to the residual path (B) and the skip path (Sc). x (B, B_ch, F) -> (residual, skip)."""

    def __init__(self, B: int, H: int, P: int, Sc: int, dilation: int, norm: str, causal: bool):
        super().__init__()
        self.pad = (P - 1) * dilation
        self.causal = causal
        self.inp = nn.Conv1d(B, H, 1)
        self.act1, self.norm1 = nn.PReLU(), make_norm(norm, H)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H)
        self.act2, self.norm2 = nn.PReLU(), make_norm(norm, H)
        self.res = nn.Conv1d(H, B, 1)
        self.skip = nn.Conv1d(H, Sc, 1)

    def forward(self, x: Tensor, film: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """x (B, B_ch, F) -> (residual (B, B_ch, F), skip (B, Sc, F)). ``film``: (scale, shift),
        each (B, H, 1), modulates the first normalised features as y (1 + scale) + shift (FiLM;
        zero scale and shift are the identity).

        Without autograd the block's own tensors are updated in place (the same values, fewer
        allocations). The padding stays an explicit copy: inside a dilated depthwise convolution
        oneDNN falls back to a far slower im2col kernel."""
        inplace = not torch.is_grad_enabled()
        y = self.norm1(self.act1(self.inp(x)))
        if film is not None:
            scale, shift = 1 + film[0], film[1]
            ok = inplace and torch.promote_types(torch.promote_types(y.dtype, scale.dtype), shift.dtype) == y.dtype
            y = y.mul_(scale).add_(shift) if ok else y * scale + shift
        left = self.pad if self.causal else self.pad // 2
        y = nn.functional.pad(y, (left, self.pad - left))
        y = self.norm2(self.act2(self.depthwise(y)))
        res = self.res(y)
        same = inplace and torch.promote_types(res.dtype, x.dtype) == res.dtype  # (autocast may mix dtypes)
        return res.add_(x) if same else x + res, self.skip(y)


def make_blocks(B: int, H: int, P: int, Sc: int, X: int, R: int, norm: str, causal: bool) -> nn.ModuleList:
    """The temporal convolutional network: R repeats of X blocks with dilations 1 … 2^(X−1)."""
    return nn.ModuleList(ConvBlock(B, H, P, Sc, 2 ** x, norm, causal) for _ in range(R) for x in range(X))


def skip_sum(blocks: nn.ModuleList, x: Tensor, films=None) -> Tensor:
    """Bottleneck features (B, B_ch, F) through the blocks -> sum of their skip outputs (B, Sc, F).
    ``films``: one (scale, shift) per block (see :meth:`ConvBlock.forward`), or None."""
    skips = None
    inplace = not torch.is_grad_enabled()  # then the running sum is updated in place (same values)
    for i, block in enumerate(blocks):
        x, s = block(x, None if films is None else films[i])
        skips = s if skips is None else skips.add_(s) if inplace and skips.dtype == s.dtype else skips + s
    return skips


def activate_masks(m: Tensor, kind: str) -> Tensor:
    """Mask logits (B, K, N, F) -> masks: sigmoid, softmax over the sources (dim 1) or relu."""
    if kind == "sigmoid":
        return torch.sigmoid(m)
    if kind == "softmax":
        return torch.softmax(m, dim=1)
    if kind == "relu":
        return torch.relu(m)
    raise ValueError(f"unknown mask_activation {kind!r}; valid: {', '.join(MASK_ACTIVATIONS)}")


def encoder_padding(T: int, L: int) -> tuple[int, int]:
    """(left, right) padding of T samples so that frames of L samples with stride L/2 cover every
    sample: L/2 on the left, up to a whole hop on the right. The decoder's output cropped to
    [L/2, L/2 + T) has T samples again."""
    stride = L // 2
    frames = -(-(T + stride) // stride)
    return stride, (frames - 1) * stride + L - T - stride


class ConvTasNet(nn.Module):
    """Conv-TasNet for K sources. forward(mix (B, 1, T) or (B, T)) -> (B, K, T); with
    ``audio_channels`` C > 1 (the multichannel adaptation of the Demucs paper's baseline: the
    encoder reads all C channels, each source's masked code is decoded to C channels)
    forward(mix (B, C, T)) -> (B, K, C, T).

    Paper defaults at 8 kHz: N 512, L 16, B 128, H 512, P 3, X 8, R 3, Sc 128 (about 5.1 M
    parameters). ``norm``: gln (non-causal), cln (causal) or bn; ``causal`` pads the depthwise
    convolutions on the left only; ``mask_activation``: sigmoid, softmax (over sources) or relu.
    ``init_kwargs`` holds the constructor arguments (:func:`~diffsep.nets.capture.capture_init`).
    """

    @capture_init
    def __init__(self, n_src: int = 2, N: int = 512, L: int = 16, B: int = 128, H: int = 512,
                 P: int = 3, X: int = 8, R: int = 3, Sc: int = 128, norm: str = "gln",
                 causal: bool = False, mask_activation: str = "sigmoid", audio_channels: int = 1):
        super().__init__()
        if L % 2:
            raise ValueError(f"L must be even (stride L/2), got {L}")
        if mask_activation not in MASK_ACTIVATIONS:
            raise ValueError(f"unknown mask_activation {mask_activation!r}; valid: {', '.join(MASK_ACTIVATIONS)}")
        if causal and norm == "gln":
            raise ValueError("a causal Conv-TasNet needs norm 'cln' (or 'bn'), not the global 'gln'")
        self.audio_channels = audio_channels
        self.n_src, self.N, self.L, self.stride = n_src, N, L, L // 2
        self.P, self.X, self.R = P, X, R
        self.mask_activation = mask_activation
        self.encoder = nn.Conv1d(audio_channels, N, L, stride=L // 2, bias=False)
        self.decoder = nn.ConvTranspose1d(N, audio_channels, L, stride=L // 2, bias=False)
        self.in_norm = make_norm(norm, N)
        self.bottleneck = nn.Conv1d(N, B, 1)
        self.blocks = make_blocks(B, H, P, Sc, X, R, norm, causal)
        self.mask_act = nn.PReLU()
        self.mask_conv = nn.Conv1d(Sc, n_src * N, 1)

    @property
    def receptive_field(self) -> int:
        """Receptive field of the separator in encoder frames: 1 + (P − 1) R (2^X − 1)."""
        return 1 + (self.P - 1) * self.R * (2 ** self.X - 1)

    def masks(self, w: Tensor) -> Tensor:
        """Encoder output (B, N, F) -> masks (B, K, N, F)."""
        skips = skip_sum(self.blocks, self.bottleneck(self.in_norm(w)))
        m = self.mask_conv(self.mask_act(skips)).reshape(w.shape[0], self.n_src, self.N, -1)
        return activate_masks(m, self.mask_activation)

    def forward(self, mix: Tensor) -> Tensor:
        """mix (B, C, T) -> sources (B, K, C, T)."""
        C = self.audio_channels
        if mix.ndim != 3 or mix.shape[1] != C:
            raise ValueError(f"mix must be (B, {C}, T), got {tuple(mix.shape)}")
        T = mix.shape[-1]
        x = nn.functional.pad(mix, encoder_padding(T, self.L))  # frames cover every sample
        w = torch.relu(self.encoder(x))  # (B, N, F)
        masked = self.masks(w) * w[:, None]  # (B, K, N, F)
        out = self.decoder(masked.reshape(-1, self.N, w.shape[-1]))  # (B K, C, T')
        return out.reshape(mix.shape[0], self.n_src, C, out.shape[-1])[..., self.stride:self.stride + T]
