"""NCSN++ building blocks (score_sde lineage): initialisers, Gaussian Fourier time embedding,
FIR up/down-sampling as depthwise (transposed) convolutions, BigGAN residual blocks, attention.

Attribute names (``GroupNorm_0``, ``Conv_0``, ``Dense_0``, ``NIN_0.W`` ...) follow the reference so
that its state dicts map one to one. Feature maps are (B, C, H, W) = (batch, channels, freq, frames).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .inference_path import REFERENCE, takes_fast_path

SQRT2 = math.sqrt(2.0)


# -- initialisation -------------------------------------------------------------------------------
def variance_scaling_(w: Tensor, scale: float = 1.0) -> Tensor:
    """In-place uniform init with variance scale / fan_avg (fan_in = shape[1] × receptive field,
    fan_out = shape[0] × receptive field). A scale of 0 means 1e-10 (near-zero residual init)."""
    scale = 1e-10 if scale == 0 else scale
    receptive = w[0, 0].numel() if w.ndim > 2 else 1
    fan_avg = (w.shape[0] + w.shape[1]) * receptive / 2.0
    bound = math.sqrt(3.0 * scale / fan_avg)
    with torch.no_grad():
        return w.uniform_(-bound, bound)


def conv2d(in_ch: int, out_ch: int, kernel: int, init_scale: float = 1.0) -> nn.Conv2d:
    """Same-padded square convolution with variance-scaling weights and zero bias."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def in_place_ok(inplace: bool, own: Tensor, other: Tensor) -> bool:
    """Whether ``own + other`` may be written into ``own`` with the same result: when asked to
    (no autograd) and the sum keeps ``own``'s dtype (under autocast operands may differ)."""
    return inplace and torch.promote_types(own.dtype, other.dtype) == own.dtype


def pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution. A channels-last input without autograd (the fast inference path) goes
    through one matrix product over the channel axis of its (B, H, W, C) view, which keeps the
    output channels-last (torch's 1x1 convolution of one item on one thread reorders it to NCHW
    and back). (B, C_in, H, W) -> (B, C_out, H, W)."""
    if torch.is_grad_enabled() or x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return conv(x)
    return F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1), conv.bias).permute(0, 3, 1, 2)


def dense(in_dim: int, out_dim: int) -> nn.Linear:
    lin = nn.Linear(in_dim, out_dim)
    variance_scaling_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(C/4, 32) groups and eps 1e-6."""
    return nn.GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


# -- time embedding -------------------------------------------------------------------------------
class GaussianFourierProjection(nn.Module):
    """[sin(2π W x), cos(2π W x)] with frozen W ~ N(0, scale²). (B,) -> (B, 2 * size)."""

    def __init__(self, embedding_size: int, scale: float = 16.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        proj = x[:, None] * self.W[None, :] * (2.0 * math.pi)
        return torch.cat((proj.sin(), proj.cos()), dim=-1)


# -- FIR resampling ------------------------------------------------------------------------------
def fir_kernel_2d(kernel, gain: float, like: Tensor) -> Tensor:
    """Normalised separable 2-D FIR kernel (sum = gain) from a 1-D one, shape (L, L)."""
    k = torch.as_tensor(kernel, dtype=like.dtype, device=like.device)
    if k.ndim != 1 or k.numel() % 2:
        raise ValueError(f"FIR kernel must be 1-D of even length, got {tuple(k.shape)}")
    k2 = torch.outer(k, k)
    return k2 * (gain / k2.sum())


def fir_downsample(x: Tensor, kernel=(1, 3, 3, 1)) -> Tensor:
    """Filter with the FIR kernel then keep every other sample on both axes.
    (B, C, H, W) -> (B, C, H/2, W/2). Same as upfirdn2d(x, k, down=2) of the reference."""
    C = x.shape[1]
    k = fir_kernel_2d(kernel, 1.0, x).flip((0, 1))
    w = k.expand(C, 1, *k.shape)
    return F.conv2d(x, w, stride=2, padding=(k.shape[0] - 2) // 2, groups=C)


def fir_upsample(x: Tensor, kernel=(1, 3, 3, 1)) -> Tensor:
    """Zero-insert by 2 on both axes then filter with the FIR kernel (gain 4), as one depthwise
    transposed convolution. (B, C, H, W) -> (B, C, 2H, 2W). Same as upfirdn2d(x, 4k, up=2)."""
    C = x.shape[1]
    k = fir_kernel_2d(kernel, 4.0, x)
    w = k.expand(C, 1, *k.shape)
    return F.conv_transpose2d(x, w, stride=2, padding=(k.shape[0] - 2) // 2, groups=C)


# -- blocks --------------------------------------------------------------------------------------
class ResnetBlockBigGAN(nn.Module):
    """GN-SiLU-(resample)-conv3x3 (+ time bias) GN-SiLU-conv3x3, plus a (resampled, 1x1) shortcut,
    summed and divided by √2. (B, in_ch, H, W), (B, temb_dim) -> (B, out_ch, H', W')."""

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 up: bool = False, down: bool = False, dropout: float = 0.0,
                 fir_kernel=(1, 3, 3, 1), skip_rescale: bool = True, init_scale: float = 0.0):
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv2d(in_ch, out_ch, 3)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv2d(out_ch, out_ch, 3, init_scale=init_scale)
        if in_ch != out_ch or up or down:
            self.Conv_2 = conv2d(in_ch, out_ch, 1)
        self.up, self.down = up, down
        self.fir_kernel = tuple(fir_kernel)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor, temb_act: Tensor | None = None) -> Tensor:
        """temb_act is SiLU(time embedding), computed once per network call.

        Without autograd (inference) the block's own intermediate tensors are updated in place:
        the same operations in the same order, so the same values, with fewer large allocations."""
        inplace = not torch.is_grad_enabled()
        h = F.silu(self.GroupNorm_0(x), inplace=inplace)
        if self.up:
            h, x = fir_upsample(h, self.fir_kernel), fir_upsample(x, self.fir_kernel)
        elif self.down:
            h, x = fir_downsample(h, self.fir_kernel), fir_downsample(x, self.fir_kernel)
        h = self.Conv_0(h)
        if temb_act is not None:
            bias = self.Dense_0(temb_act)[:, :, None, None]
            h = h.add_(bias) if in_place_ok(inplace, h, bias) else h + bias
        h = self.Conv_1(self.Dropout_0(F.silu(self.GroupNorm_1(h), inplace=inplace)))
        if hasattr(self, "Conv_2"):
            x = pointwise(self.Conv_2, x)
        if in_place_ok(inplace, h, x):  # h is this block's own tensor; x may be a skip the U-Net holds
            h = h.add_(x)
            return h.div_(SQRT2) if self.skip_rescale else h
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class NIN(nn.Module):
    """Per-pixel linear map over the channel axis with weight W stored (in, out), as the reference
    stores it (transposed relative to nn.Linear). (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(variance_scaling_(torch.empty(in_dim, num_units), init_scale))
        self.b = nn.Parameter(torch.zeros(num_units))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bchw,cd->bdhw", x, self.W) + self.b[:, None, None]


class AttnBlock(nn.Module):
    """Single-head self-attention over all H·W positions, residual, divided by √2.
    (B, C, H, W) -> (B, C, H, W). q, k, v are one fused matmul; softmax(q kᵀ / √C) v is computed
    by torch's scaled_dot_product_attention (on the fast inference path with a head axis, which
    selects its fused kernel)."""

    def __init__(self, channels: int, skip_rescale: bool = True, init_scale: float = 0.0):
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale
        self.inference_path = REFERENCE  # fast: one-head 4-D inputs, which torch's fused CPU kernel takes

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        tokens = self.GroupNorm_0(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        w_qkv = torch.cat((self.NIN_0.W, self.NIN_1.W, self.NIN_2.W), dim=1)  # (C, 3C)
        b_qkv = torch.cat((self.NIN_0.b, self.NIN_1.b, self.NIN_2.b))
        q, k, v = torch.addmm(b_qkv, tokens.reshape(-1, C), w_qkv).view(B, H * W, 3, C).unbind(2)
        if takes_fast_path(self):  # (3-D inputs go to the unfused "math" attention, 4-5x slower on CPU)
            h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        else:
            h = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        h = torch.addmm(self.NIN_3.b, h.reshape(-1, C), self.NIN_3.W)
        h = h.view(B, H, W, C).permute(0, 3, 1, 2)
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class Combine(nn.Module):
    """Input-pyramid combiner: 1x1 conv of the pyramid, summed with (or concatenated to) h.
    (B, dim1, H, W), (B, dim2, H, W) -> (B, dim2 or 2 dim2, H, W)."""

    def __init__(self, dim1: int, dim2: int, method: str = "sum"):
        super().__init__()
        if method not in ("sum", "cat"):
            raise ValueError(f"unknown combine method {method!r}; valid: sum, cat")
        self.Conv_0 = conv2d(dim1, dim2, 1)
        self.method = method

    def forward(self, pyramid: Tensor, h: Tensor) -> Tensor:
        p = pointwise(self.Conv_0, pyramid)
        return p + h if self.method == "sum" else torch.cat((p, h), dim=1)
