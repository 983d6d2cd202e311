"""NCSN++ U-Net (score_sde / SGMSE lineage) as the DiffSep paper uses it.

Time-conditioned through a Gaussian Fourier embedding of log t (the paper's) or of t (valid at
t = 0); BigGAN residual blocks with FIR [1, 3, 3, 1] resampling; attention at the levels whose
frequency size is in ``attn_resolutions`` and in the middle; an "input_skip" input pyramid and an
"output_skip" output pyramid combined by sum; every skip divided by √2; the output pyramid mapped
by a 1x1 conv to ``out_ch``. The network scales nothing by time itself: a caller may pass a
per-item ``divisor`` that divides the output pyramid just before the 1x1 conv, which is where the
reference divides by t (score_sde's ``scale_by_sigma``; see
:mod:`diffsep.families.preconditioning`).

Structure (named, so that forward cannot pick up the wrong module)::

    temb.{fourier, dense_0, dense_1}        time embedding
    conv_in                                 3x3 conv of the input
    down[l].{blocks[b].{res, attn}, downsample, combine}   level l = 0 .. L−1 (no resampling at L−1)
    mid.{block_0, attn, block_1}
    up[l].{blocks[b], attn, norm, conv, upsample}     b = 0 .. num_res_blocks (no upsample at 0)
    output_layer                            1x1 conv to out_ch

Parameters are registered in the reference's order, so optimizer and EMA states line up with it.

Deviations from upstream (same function, same weights; the reference fixture matches to ~1e-6):
- upstream keeps every submodule in one flat ``all_modules`` list consumed in order; here they are
  named, and :meth:`NCSNpp.reference_module_names` gives the upstream order, from which the
  checkpoint converter maps ``all_modules.<i>.*`` keys;
- FIR up/down-sampling is a depthwise (transposed) convolution instead of the compiled upfirdn2d;
- attention computes q, k, v with one fused matmul and torch's scaled_dot_product_attention;
- SiLU of the time embedding is computed once per call, not in every block;
- only the configuration the paper uses is built (BigGAN blocks, input_skip / output_skip
  pyramids combined by sum, Fourier embedding); upstream's other options are not;
- the division of the output pyramid by t is the caller's (``divisor``), not a constructor flag,
  and the embedding may take t instead of log t.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capture import capture_init
from .inference_path import REFERENCE, takes_fast_path
from .layers import (AttnBlock, Combine, GaussianFourierProjection, ResnetBlockBigGAN, conv2d, dense,
                     fir_downsample, fir_upsample, group_norm, pointwise)

PAPER_CH_MULT = (1, 1, 2, 2, 2, 2, 2)
TIME_EMBEDDINGS = ("log_t", "t")  # what the Fourier embedding reads: log t (the paper) | t (valid at t = 0)


class ResAttn(nn.Module):
    """A residual block followed, at attention levels, by self-attention (the down path's unit)."""

    def __init__(self, res: ResnetBlockBigGAN, attn: AttnBlock | None = None):
        super().__init__()
        self.res, self.attn = res, attn

    def forward(self, h: Tensor, temb_act: Tensor) -> Tensor:
        h = self.res(h, temb_act)
        return h if self.attn is None else self.attn(h)


class NCSNpp(nn.Module):
    """Score U-Net on stacked spectrogram channels.

    Args:
        in_ch: input channels (2K + 2 for DiffSep), out_ch: output channels (2K).
        nf: base width; ch_mult: width multiplier per level (len(ch_mult) levels).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attn_resolutions: frequency sizes at which attention follows each residual block.
        image_size: frequency size at level 0 (sizes halve per level), 256 for n_fft 510.
        fourier_scale: std of the Fourier frequencies; init_scale: scale of the last conv of each
        residual path (0 = near-zero init); dropout; fir_kernel; centered: if False the input is
        mapped to 2x − 1; time_embedding: the Fourier embedding reads log t ("log_t", the paper
        and every released checkpoint; undefined at t = 0) or t itself ("t", defined for t >= 0).

    Shapes: x (B, in_ch, F, T) with F = image_size and T a multiple of 2^(levels−1);
    t (B,) -> (B, out_ch, F, T).
    """

    @capture_init
    def __init__(self, in_ch: int = 6, out_ch: int = 4, nf: int = 128, ch_mult=PAPER_CH_MULT,
                 num_res_blocks: int = 2, attn_resolutions=(16,), image_size: int = 256,
                 fourier_scale: float = 16.0, init_scale: float = 0.0, dropout: float = 0.0,
                 fir_kernel=(1, 3, 3, 1), centered: bool = False, time_embedding: str = "log_t"):
        super().__init__()
        self.num_levels = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.centered = centered
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"unknown time_embedding {time_embedding!r}; valid: {', '.join(TIME_EMBEDDINGS)}")
        self.time_embedding = time_embedding
        self.fir_kernel = tuple(fir_kernel)
        self.inference_path = REFERENCE  # without gradients: reference (NCHW) | fast (channels-last); nets/inference_path.py
        resolutions = [image_size // 2 ** i for i in range(self.num_levels)]
        self.attn_levels = frozenset(i for i, r in enumerate(resolutions) if r in attn_resolutions)
        temb_dim = 4 * nf
        block = dict(temb_dim=temb_dim, dropout=dropout, fir_kernel=fir_kernel,
                     skip_rescale=True, init_scale=init_scale)
        attn = lambda ch: AttnBlock(ch, init_scale=init_scale)  # noqa: E731

        # Construction order = the reference's all_modules order (so that seeded initial weights
        # are the same); output_layer comes first, as in the reference.
        self.output_layer = nn.Conv2d(in_ch, out_ch, 1)
        self.temb = nn.ModuleDict(dict(fourier=GaussianFourierProjection(nf, fourier_scale),
                                       dense_0=dense(2 * nf, temb_dim),
                                       dense_1=dense(temb_dim, temb_dim)))
        self.conv_in = conv2d(in_ch, nf, 3)
        skip_ch, ch = [nf], nf
        self.down = nn.ModuleList()
        for level, mult in enumerate(ch_mult):
            lv = nn.Module()
            lv.blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                lv.blocks.append(ResAttn(ResnetBlockBigGAN(ch, nf * mult, **block),
                                         attn(nf * mult) if level in self.attn_levels else None))
                ch = nf * mult
                skip_ch.append(ch)
            if level != self.num_levels - 1:
                lv.downsample = ResnetBlockBigGAN(ch, down=True, **block)
                lv.combine = Combine(in_ch, ch, method="sum")
                skip_ch.append(ch)
            self.down.append(lv)
        self.mid = nn.ModuleDict(dict(block_0=ResnetBlockBigGAN(ch, **block), attn=attn(ch),
                                      block_1=ResnetBlockBigGAN(ch, **block)))
        self.up = nn.ModuleDict()  # keyed by level, deepest first (the order of use)
        for level in reversed(range(self.num_levels)):
            lv = nn.Module()
            lv.blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                lv.blocks.append(ResnetBlockBigGAN(ch + skip_ch.pop(), nf * ch_mult[level], **block))
                ch = nf * ch_mult[level]
            if level in self.attn_levels:
                lv.attn = attn(ch)
            lv.norm = group_norm(ch)  # output pyramid: GN-SiLU-conv3x3 to in_ch
            lv.conv = conv2d(ch, in_ch, 3, init_scale=init_scale)
            if level != 0:
                lv.upsample = ResnetBlockBigGAN(ch, up=True, **block)
            self.up[str(level)] = lv
        assert not skip_ch

    def reference_module_names(self) -> list[str]:
        """Names of our submodules in the order of the reference's ``all_modules`` list (its
        construction and forward order), so that ``all_modules.<i>`` maps to ``names[i]``."""
        names = ["temb.fourier", "temb.dense_0", "temb.dense_1", "conv_in"]
        for level, lv in enumerate(self.down):
            for b, unit in enumerate(lv.blocks):
                names.append(f"down.{level}.blocks.{b}.res")
                if unit.attn is not None:
                    names.append(f"down.{level}.blocks.{b}.attn")
            if hasattr(lv, "downsample"):
                names += [f"down.{level}.downsample", f"down.{level}.combine"]
        names += ["mid.block_0", "mid.attn", "mid.block_1"]
        for level, lv in self.up.items():
            names += [f"up.{level}.blocks.{b}" for b in range(len(lv.blocks))]
            names += [f"up.{level}.{n}" for n in ("attn", "norm", "conv", "upsample") if hasattr(lv, n)]
        return names

    def forward(self, x: Tensor, t: Tensor, divisor: Tensor | None = None) -> Tensor:
        """x (B, in_ch, F, T), t (B,) -> (B, out_ch, F, T). ``divisor`` (B,) or None: the output
        pyramid is divided by it before the 1x1 output conv (the paper's head passes t)."""
        c_noise = torch.log(t) if self.time_embedding == "log_t" else t
        temb = self.temb.dense_0(self.temb.fourier(c_noise))
        temb_act = F.silu(self.temb.dense_1(F.silu(temb)))  # every block uses SiLU(temb)
        if not self.centered:
            x = 2.0 * x - 1.0
        if takes_fast_path(self) and x.device.type == "cpu":  # channels-last: oneDNN skips its reorders
            x = x.contiguous(memory_format=torch.channels_last)
        pyramid_in = x
        hs = [self.conv_in(x)]
        for lv in self.down:
            for unit in lv.blocks:
                hs.append(unit(hs[-1], temb_act))
            if hasattr(lv, "downsample"):
                h = lv.downsample(hs[-1], temb_act)
                pyramid_in = fir_downsample(pyramid_in, self.fir_kernel)
                hs.append(lv.combine(pyramid_in, h))
        h = self.mid.block_0(hs[-1], temb_act)
        h = self.mid.block_1(self.mid.attn(h), temb_act)
        pyramid = None
        for lv in self.up.values():
            for block in lv.blocks:
                h = block(torch.cat((h, hs.pop()), dim=1), temb_act)
            if hasattr(lv, "attn"):
                h = lv.attn(h)
            p = lv.conv(F.silu(lv.norm(h), inplace=not torch.is_grad_enabled()))  # GN's own output
            pyramid = p if pyramid is None else fir_upsample(pyramid, self.fir_kernel) + p
            if hasattr(lv, "upsample"):
                h = lv.upsample(h, temb_act)
        if divisor is not None:
            pyramid = pyramid / divisor.to(pyramid.dtype).reshape(-1, 1, 1, 1)
        return pointwise(self.output_layer, pyramid).contiguous()


def rename_reference_keys(state: dict, names: list[str]) -> dict:
    """Reference keys ``all_modules.<i>.rest`` to ours ``names[i].rest``, given
    :meth:`NCSNpp.reference_module_names`. Other keys, and indices beyond ``names`` (a network
    that does not fit, which loading then reports), are kept as they are."""
    out = {}
    for key, value in state.items():
        parts = key.split(".", 2)
        if parts[0] == "all_modules" and len(parts) == 3 and int(parts[1]) < len(names):
            key = f"{names[int(parts[1])]}.{parts[2]}"
        out[key] = value
    return out
