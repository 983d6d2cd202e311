"""A time-conditioned Conv-TasNet: a DiffSep backbone far cheaper per network evaluation on CPU
than NCSN++ inside the STFT (:class:`~diffsep.nets.spectral_unet.SpectralUNet`).

It keeps the backbone signature ``net(x_t, t, mix, divisor=None) -> (B, K, N)``; what its output
means (a data estimate for the ``data`` head, a scaled score for ``score_t`` ...) is the head's,
see :mod:`diffsep.families.preconditioning`.

    [x_1 .. x_K, mix] (B, K+1, N) -> state encoder (1-D conv, N filters of length L, stride L/2,
    ReLU) -> gLN -> bottleneck (B_ch) -> R × X Conv-TasNet blocks, each FiLM-modulated by an embedding
    of t -> skip sum -> K masks (B, K, N_f, F) on the encoded mixture relu(enc(mix)) (B, N_f, F)
    -> transposed-conv decoder -> (B, K, N), divided by ``divisor`` when one is given.

Time embedding: Gaussian Fourier features of t itself (valid at t = 0) -> two-layer MLP (SiLU)
-> per block a linear map to (scale, shift) of the block's first normalised features (H channels).
Those maps start at zero, so an untrained network ignores t (FiLM starts as the identity).
Symbols are Conv-TasNet's (:mod:`diffsep.nets.convtasnet`).

With the x_t columns of the state encoder at zero and FiLM at the identity the network *is* a
Conv-TasNet of the same sizes, so :func:`load_convtasnet` starts a denoiser from a trained
separator: it computes that separator's estimate at every t until training teaches it to use x_t
and t.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .capture import capture_init
from .convtasnet import MASK_ACTIVATIONS, NORMS, activate_masks, encoder_padding, make_blocks, make_norm, skip_sum
from .layers import GaussianFourierProjection


class TasNetDenoiser(nn.Module):
    """Conv-TasNet conditioned on the diffusion state x_t and time t, for K sources.

    Args:
        n_src: number of sources K (encoder input K + 1 channels, K output waveforms).
        N, L, B, H, P, X, R, Sc: Conv-TasNet's encoder filters, filter length (even; stride L/2),
            bottleneck, block and skip channels, depthwise kernel, blocks per repeat, repeats.
        norm: gln | cln | bn (non-causal padding either way).
        mask_activation: sigmoid | softmax (over sources) | relu.
        emb_dim: width of the time embedding (even).
        fourier_scale: std of the Gaussian Fourier frequencies applied to t.

    Defaults are the paper's Conv-TasNet sizes at 8 kHz: about 6.7 M parameters, 1.6 M of them
    the FiLM maps (R X blocks × (emb_dim + 1) × 2H). ``init_kwargs`` holds every constructor argument
    (:func:`~diffsep.nets.capture.capture_init`), so ``TasNetDenoiser(**net.init_kwargs)``
    rebuilds the architecture.
    """

    @capture_init
    def __init__(self, n_src: int = 2, N: int = 512, L: int = 16, B: int = 128, H: int = 512,
                 P: int = 3, X: int = 8, R: int = 3, Sc: int = 128, norm: str = "gln",
                 mask_activation: str = "sigmoid", emb_dim: int = 64, fourier_scale: float = 16.0):
        super().__init__()
        if L % 2:
            raise ValueError(f"L must be even (stride L/2), got {L}")
        if emb_dim % 2:
            raise ValueError(f"emb_dim must be even (sine and cosine features), got {emb_dim}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if mask_activation not in MASK_ACTIVATIONS:
            raise ValueError(f"unknown mask_activation {mask_activation!r}; valid: {', '.join(MASK_ACTIVATIONS)}")
        self.n_src, self.N, self.L, self.stride = n_src, N, L, L // 2
        self.H, self.P, self.X, self.R = H, P, X, R
        self.mask_activation = mask_activation
        self.encoder = nn.Conv1d(n_src + 1, N, L, stride=L // 2, bias=False)  # [x_1 .. x_K, mix]
        self.mix_encoder = nn.Conv1d(1, N, L, stride=L // 2, bias=False)  # the code the masks apply to
        self.decoder = nn.ConvTranspose1d(N, 1, L, stride=L // 2, bias=False)
        self.in_norm = make_norm(norm, N)
        self.bottleneck = nn.Conv1d(N, B, 1)
        self.blocks = make_blocks(B, H, P, Sc, X, R, norm, causal=False)
        self.mask_act = nn.PReLU()
        self.mask_conv = nn.Conv1d(Sc, n_src * N, 1)
        self.fourier = GaussianFourierProjection(emb_dim // 2, fourier_scale)
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.film = nn.ModuleList(nn.Linear(emb_dim, 2 * H) for _ in self.blocks)
        for lin in self.film:  # FiLM starts as the identity: scale 0, shift 0
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def receptive_field(self) -> int:
        """Receptive field of the TCN in encoder frames: 1 + (P − 1) R (2^X − 1)."""
        return 1 + (self.P - 1) * self.R * (2 ** self.X - 1)

    def films(self, t: Tensor) -> list[tuple[Tensor, Tensor]]:
        """t (B,) -> per block (scale, shift), each (B, H, 1)."""
        emb = self.time_mlp(self.fourier(t))
        return [tuple(lin(emb)[..., None].chunk(2, dim=1)) for lin in self.film]

    def forward(self, x_t: Tensor, t: Tensor, mix: Tensor, divisor: Tensor | None = None) -> Tensor:
        """x_t (B, K, N), t (B,) or a scalar, mix (B, 1, N) -> (B, K, N). ``divisor`` (B,) or None
        divides the output (the score heads' scaling)."""
        if x_t.ndim != 3 or x_t.shape[1] != self.n_src:
            raise ValueError(f"x_t must be (B, {self.n_src}, N), got {tuple(x_t.shape)}")
        Bt, K, T = x_t.shape
        if mix.shape != (Bt, 1, T):
            raise ValueError(f"mix must be (B, 1, N) = {(Bt, 1, T)}, got {tuple(mix.shape)}")
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).expand(Bt)
        pad = encoder_padding(T, self.L)
        state = torch.relu(self.encoder(nn.functional.pad(torch.cat((x_t, mix), dim=1), pad)))  # (B, N, F)
        code = torch.relu(self.mix_encoder(nn.functional.pad(mix, pad)))  # (B, N, F)
        skips = skip_sum(self.blocks, self.bottleneck(self.in_norm(state)), self.films(t))
        masks = activate_masks(self.mask_conv(self.mask_act(skips)).reshape(Bt, K, self.N, -1), self.mask_activation)
        out = self.decoder((masks * code[:, None]).reshape(Bt * K, self.N, -1))  # (B K, 1, T')
        out = out.reshape(Bt, K, -1)[..., pad[0]:pad[0] + T]
        if divisor is not None:
            out = out / torch.as_tensor(divisor, device=out.device, dtype=out.dtype).reshape(-1, 1, 1)
        return out.to(x_t.dtype)  # under autocast the convolutions may run in reduced precision


# Conv-TasNet parameters that the denoiser holds under the same name and shape (the rest: the
# encoder, which sees the mixture here as its last input channel, and the time embedding)
SHARED_PREFIXES = ("decoder.", "in_norm.", "bottleneck.", "blocks.", "mask_act.", "mask_conv.")


def load_convtasnet(net: TasNetDenoiser, weights: dict[str, Tensor]) -> None:
    """Set ``net`` from a Conv-TasNet state dict of the same sizes (N, L, B, H, P, X, R, Sc, norm,
    one audio channel): shared layers copied, the mixture encoder and the mixture column of the state
    encoder set to the separator's encoder, the x_t columns to zero, FiLM to the identity. Then
    ``net(x_t, t, mix)`` equals the separator's output for any x_t and t. Raises ValueError naming
    the first parameter whose shape differs."""
    own = net.state_dict()
    enc = weights.get("encoder.weight")
    if enc is None or enc.shape != own["mix_encoder.weight"].shape:
        raise ValueError(f"encoder.weight: Conv-TasNet {None if enc is None else tuple(enc.shape)}, "
                         f"denoiser {tuple(own['mix_encoder.weight'].shape)} (one audio channel, same N and L)")
    new = {}
    for k, v in weights.items():
        if k.startswith(SHARED_PREFIXES):
            if k not in own or own[k].shape != v.shape:
                raise ValueError(f"{k}: Conv-TasNet {tuple(v.shape)}, denoiser "
                                 f"{tuple(own[k].shape) if k in own else 'none'} (same sizes needed)")
            new[k] = v.to(own[k].dtype)
    state = torch.zeros_like(own["encoder.weight"])
    state[:, net.n_src:] = enc.to(state.dtype)
    new["encoder.weight"], new["mix_encoder.weight"] = state, enc.to(state.dtype)
    missing = [k for k in own if k.startswith(SHARED_PREFIXES) and k not in new]
    if missing:
        raise ValueError(f"{missing[0]}: not in the Conv-TasNet weights (same sizes needed)")
    for lin in net.film:
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)
    net.load_state_dict(new, strict=False)
