"""The spectral U-Net of DiffSep (Sec. 3.3): waveforms in, waveform-shaped output out, NCSN++ on
compressed STFT channels in between. It is the network only: what its output means (a score
scaled by 1/t, a data estimate, a velocity) is the head's, see
:mod:`diffsep.families.preconditioning`.

Pipeline (DESIGN §2): stack [x_1 .. x_K, mix] -> right-pad by n_fft − hop -> STFT -> compress c(.)
-> real channels [Re .., Im ..] -> pad frames to a multiple of 2^(levels−1) -> NCSN++ -> unpad ->
complex -> decompress c⁻¹(.) -> iSTFT -> crop to N.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import spectral
from .capture import capture_init
from .ncsnpp import PAPER_CH_MULT, NCSNpp


class SpectralUNet(nn.Module):
    """NCSN++ between STFT / compression and their inverses, for K sources.

    Args:
        n_src: number of sources K (network input 2K + 2 channels, output 2K).
        nf, ch_mult, num_res_blocks, attn_resolutions, fourier_scale, init_scale, dropout,
            time_embedding: NCSN++ settings (see :class:`~diffsep.nets.ncsnpp.NCSNpp`).
        n_fft, hop_length: STFT settings (periodic Hann window of n_fft).
        spec_factor (β), spec_abs_exponent (α), transform: compression c(X) = β |X|^α e^{i∠X}.

    ``init_kwargs`` holds every constructor argument (:func:`~diffsep.nets.capture.capture_init`),
    so ``SpectralUNet(**net.init_kwargs)`` rebuilds the same architecture.
    """

    @capture_init
    def __init__(self, n_src: int = 2, nf: int = 128, ch_mult=PAPER_CH_MULT,
                 num_res_blocks: int = 2, attn_resolutions=(16,), fourier_scale: float = 16.0,
                 init_scale: float = 0.0, dropout: float = 0.0, n_fft: int = 510,
                 hop_length: int = 128, spec_factor: float = 0.15, spec_abs_exponent: float = 0.5,
                 transform: str = "exponent", time_embedding: str = "log_t"):
        super().__init__()
        if transform not in spectral.TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; valid: {', '.join(spectral.TRANSFORMS)}")
        self.n_src = n_src
        self.n_fft, self.hop_length = n_fft, hop_length
        self.spec_factor, self.spec_abs_exponent, self.transform = spec_factor, spec_abs_exponent, transform
        self.frame_multiple = 2 ** (len(ch_mult) - 1)
        n_bins = n_fft // 2 + 1
        if n_bins % self.frame_multiple:
            raise ValueError(f"n_fft={n_fft} gives {n_bins} frequency bins, which {len(ch_mult)} "
                             f"U-Net levels cannot halve {len(ch_mult) - 1} times (use e.g. 510)")
        self.backbone = NCSNpp(in_ch=2 * n_src + 2, out_ch=2 * n_src, nf=nf, ch_mult=ch_mult,
                               num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions,
                               image_size=n_bins, fourier_scale=fourier_scale, init_scale=init_scale,
                               dropout=dropout, time_embedding=time_embedding)

    def _compress_args(self):
        return dict(alpha=self.spec_abs_exponent, beta=self.spec_factor, transform=self.transform)

    def encode(self, x: Tensor) -> tuple[Tensor, int]:
        """Waveforms to padded network channels. (B, C, N) -> ((B, 2C, F, T'), frame padding)."""
        x = F.pad(x, (0, self.n_fft - self.hop_length))
        X = spectral.compress(spectral.stft(x, self.n_fft, self.hop_length), **self._compress_args())
        h = spectral.complex_to_channels(X)
        pad = -h.shape[-1] % self.frame_multiple
        return F.pad(h, (0, pad)), pad

    def decode(self, h: Tensor, pad: int, length: int) -> Tensor:
        """Network channels back to waveforms. (B, 2C, F, T') -> (B, C, length)."""
        if pad:
            h = h[..., :-pad]
        Z = spectral.decompress(spectral.channels_to_complex(h), **self._compress_args())
        return spectral.istft(Z, self.n_fft, self.hop_length, length=length)

    def forward(self, x_t: Tensor, t: Tensor, mix: Tensor, divisor: Tensor | None = None) -> Tensor:
        """x_t (B, K, N), t (B,) or a scalar, mix (B, 1, N) -> (B, K, N).

        ``divisor`` (B,) or None: divides NCSN++'s output pyramid before its 1x1 output conv, that
        is before the decompression c⁻¹ and the iSTFT (where the paper's network divides by t);
        None leaves the network unscaled."""
        if x_t.ndim != 3 or x_t.shape[1] != self.n_src:
            raise ValueError(f"x_t must be (B, {self.n_src}, N), got {tuple(x_t.shape)}")
        if mix.shape != (x_t.shape[0], 1, x_t.shape[-1]):
            raise ValueError(f"mix must be (B, 1, N) = {(x_t.shape[0], 1, x_t.shape[-1])}, "
                             f"got {tuple(mix.shape)}")
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).expand(x_t.shape[0])
        h, pad = self.encode(torch.cat((x_t, mix), dim=1))
        h = self.backbone(h, t, divisor)  # under autocast h may come back in reduced precision
        return self.decode(h, pad, x_t.shape[-1]).to(x_t.dtype)
