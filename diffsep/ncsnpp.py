"""NCSN++ U-Net (score_sde / SGMSE lineage) as the DiffSep paper uses it.

Time-conditioned on log t through a Gaussian Fourier embedding; BigGAN residual blocks with FIR
[1, 3, 3, 1] resampling; attention at the levels whose frequency size is in ``attn_resolutions``
and in the middle; an "input_skip" input pyramid and an "output_skip" output pyramid combined by
sum; every skip divided by √2; output divided by t and mapped by a 1x1 conv to ``out_ch``.

Submodules live in one flat ``all_modules`` list, in the reference's construction order, so the
reference's state dict (``output_layer.*``, ``all_modules.<i>.*``) loads without renaming.
"""
from __future__ import annotations

from torch import Tensor, nn
import torch
import torch.nn.functional as F

from .layers import (AttnBlock, Combine, GaussianFourierProjection, ResnetBlockBigGAN, conv2d,
                     dense, fir_downsample, fir_upsample, group_norm)


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
        mapped to 2x − 1; scale_by_sigma: divide the output pyramid by t.

    Shapes: x (B, in_ch, F, T) with F = image_size and T a multiple of 2^(levels−1);
    t (B,) -> (B, out_ch, F, T).
    """

    def __init__(self, in_ch: int = 6, out_ch: int = 4, nf: int = 128,
                 ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks: int = 2,
                 attn_resolutions=(16,), image_size: int = 256, fourier_scale: float = 16.0,
                 init_scale: float = 0.0, dropout: float = 0.0, fir_kernel=(1, 3, 3, 1),
                 centered: bool = False, scale_by_sigma: bool = True):
        super().__init__()
        self.num_levels = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.centered = centered
        self.scale_by_sigma = scale_by_sigma
        self.fir_kernel = tuple(fir_kernel)
        resolutions = [image_size // 2 ** i for i in range(self.num_levels)]
        self.attn_levels = frozenset(i for i, r in enumerate(resolutions) if r in attn_resolutions)

        temb_dim = 4 * nf
        block = dict(temb_dim=temb_dim, dropout=dropout, fir_kernel=fir_kernel,
                     skip_rescale=True, init_scale=init_scale)
        self.output_layer = nn.Conv2d(in_ch, out_ch, 1)

        mods: list[nn.Module] = [GaussianFourierProjection(nf, fourier_scale),
                                 dense(2 * nf, temb_dim), dense(temb_dim, temb_dim),
                                 conv2d(in_ch, nf, 3)]
        skip_ch = [nf]
        ch = nf
        for level, mult in enumerate(ch_mult):  # down path
            for _ in range(num_res_blocks):
                mods.append(ResnetBlockBigGAN(ch, nf * mult, **block))
                ch = nf * mult
                if level in self.attn_levels:
                    mods.append(AttnBlock(ch, init_scale=init_scale))
                skip_ch.append(ch)
            if level != self.num_levels - 1:
                mods.append(ResnetBlockBigGAN(ch, down=True, **block))
                mods.append(Combine(in_ch, ch, method="sum"))
                skip_ch.append(ch)
        mods += [ResnetBlockBigGAN(ch, **block), AttnBlock(ch, init_scale=init_scale),
                 ResnetBlockBigGAN(ch, **block)]  # middle
        for level in reversed(range(self.num_levels)):  # up path
            for _ in range(num_res_blocks + 1):
                mods.append(ResnetBlockBigGAN(ch + skip_ch.pop(), nf * ch_mult[level], **block))
                ch = nf * ch_mult[level]
            if level in self.attn_levels:
                mods.append(AttnBlock(ch, init_scale=init_scale))
            mods += [group_norm(ch), conv2d(ch, in_ch, 3, init_scale=init_scale)]  # output pyramid
            if level != 0:
                mods.append(ResnetBlockBigGAN(ch, up=True, **block))
        assert not skip_ch
        self.all_modules = nn.ModuleList(mods)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        mods = iter(self.all_modules)
        temb = next(mods)(torch.log(t))
        temb = next(mods)(temb)
        temb_act = F.silu(next(mods)(F.silu(temb)))  # every block uses SiLU(temb)
        if not self.centered:
            x = 2.0 * x - 1.0
        pyramid_in = x
        hs = [next(mods)(x)]
        for level in range(self.num_levels):
            for _ in range(self.num_res_blocks):
                h = next(mods)(hs[-1], temb_act)
                if level in self.attn_levels:
                    h = next(mods)(h)
                hs.append(h)
            if level != self.num_levels - 1:
                h = next(mods)(hs[-1], temb_act)
                pyramid_in = fir_downsample(pyramid_in, self.fir_kernel)
                hs.append(next(mods)(pyramid_in, h))
        h = hs[-1]
        h = next(mods)(h, temb_act)
        h = next(mods)(h)
        h = next(mods)(h, temb_act)
        pyramid = None
        for level in reversed(range(self.num_levels)):
            for _ in range(self.num_res_blocks + 1):
                h = next(mods)(torch.cat((h, hs.pop()), dim=1), temb_act)
            if level in self.attn_levels:
                h = next(mods)(h)
            norm, conv = next(mods), next(mods)
            p = conv(F.silu(norm(h)))
            pyramid = p if pyramid is None else fir_upsample(pyramid, self.fir_kernel) + p
            if level != 0:
                h = next(mods)(h, temb_act)
        if self.scale_by_sigma:
            pyramid = pyramid / t.to(pyramid.dtype).reshape(-1, 1, 1, 1)
        return self.output_layer(pyramid)
