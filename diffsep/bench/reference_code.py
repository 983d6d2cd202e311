"""The reference implementation's score network (github fakufaku/diffusion-separation, the
paper's code), run from a checkout the user names, with our network's weights: the "reference"
column of ``python -m diffsep.bench score --reference-code DIR``.

Nothing of that code is copied here. It is imported from DIR as it is, on CPU, with stand-ins for
what it needs and the toolkit does not install:

- ``torchaudio.transforms.Spectrogram`` / ``InverseSpectrogram`` (power=None): thin layers over
  ``torch.stft`` / ``torch.istft`` with a periodic Hann window kept as a buffer, as torchaudio's
  are (the reference fixture, tests/data/reference_nf16_k2.README.md, was made with the same
  stand-in, checked bit-identical to torchaudio 2.11);
- ``hydra.utils.instantiate``: builds ``{"_target_": "pkg.mod.Class", **kwargs}``;
- the CUDA extensions its FIR ops compile at import (``torch.utils.cpp_extension.load``): its CPU
  path never calls them (``upfirdn2d`` runs its native PyTorch version on CPU), so the build is
  replaced by a placeholder while the code is imported.

A real hydra is used when installed; torchaudio is always the stand-in. Weights go from our
:class:`~diffsep.nets.spectral_unet.SpectralUNet` to the reference's flat ``all_modules.<i>``
layout through :meth:`~diffsep.nets.ncsnpp.NCSNpp.reference_module_names` (the inverse of the
checkpoint converter), so both networks compute the same function on the same weights.
"""
from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..nets.spectral_unet import SpectralUNet


def _hann(n_fft: int, win_length: int | None) -> torch.Tensor:
    return torch.hann_window(win_length or n_fft, periodic=True)


class _Spectrogram(nn.Module):
    """torchaudio.transforms.Spectrogram(power=None) for a centred STFT: (..., N) -> (..., F, T)."""

    def __init__(self, n_fft=400, win_length=None, hop_length=None, pad=0, power=None,
                 normalized=False, center=True, pad_mode="reflect", onesided=True, **_):
        super().__init__()
        if power is not None or pad or normalized:
            raise ValueError("the stand-in Spectrogram only takes power=None, pad=0, normalized=False")
        self.n_fft, self.win_length = n_fft, win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.center, self.pad_mode, self.onesided = center, pad_mode, onesided
        self.register_buffer("window", _hann(n_fft, win_length))

    def forward(self, x):
        shape = x.shape
        X = torch.stft(x.reshape(-1, shape[-1]), self.n_fft, self.hop_length, self.win_length, self.window,
                       self.center, self.pad_mode, False, self.onesided, return_complex=True)
        return X.reshape(shape[:-1] + X.shape[-2:])


class _InverseSpectrogram(nn.Module):
    """torchaudio.transforms.InverseSpectrogram: (..., F, T) complex -> (..., N)."""

    def __init__(self, n_fft=400, win_length=None, hop_length=None, pad=0, normalized=False,
                 center=True, pad_mode="reflect", onesided=True, **_):
        super().__init__()
        if pad or normalized:
            raise ValueError("the stand-in InverseSpectrogram only takes pad=0, normalized=False")
        self.n_fft, self.win_length = n_fft, win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.center, self.onesided = center, onesided
        self.register_buffer("window", _hann(n_fft, win_length))

    def forward(self, X, length=None):
        shape = X.shape
        x = torch.istft(X.reshape((-1,) + shape[-2:]), self.n_fft, self.hop_length, self.win_length,
                        self.window, self.center, False, self.onesided, length)
        return x.reshape(shape[:-2] + x.shape[-1:])


def _instantiate(cfg, **kwargs):
    cfg = {**dict(cfg), **kwargs}
    module, _, name = cfg.pop("_target_").rpartition(".")
    return getattr(importlib.import_module(module), name)(**cfg)


def _stand_ins() -> dict[str, types.ModuleType]:
    """Modules to put in sys.modules: the torchaudio stand-in, and hydra's when it is not installed."""
    # torchaudio: always the stand-in, never the package (its wheels fail to import against a
    # CPU-only torch, and not with an ImportError; DESIGN.md §5)
    ta, tr = types.ModuleType("torchaudio"), types.ModuleType("torchaudio.transforms")
    tr.Spectrogram, tr.InverseSpectrogram, ta.transforms = _Spectrogram, _InverseSpectrogram, tr
    mods = {"torchaudio": ta, "torchaudio.transforms": tr}
    try:
        importlib.import_module("hydra.utils")
    except ImportError:
        hy, hu = types.ModuleType("hydra"), types.ModuleType("hydra.utils")
        hu.instantiate, hy.utils = _instantiate, hu
        mods.update({"hydra": hy, "hydra.utils": hu})
    return mods


@contextmanager
def _importable(code_dir: Path):
    """DIR on sys.path, stand-ins in sys.modules and no CUDA build, for the time of an import or
    of building the model (which imports the backbone's module)."""
    import torch.utils.cpp_extension as ext

    added = _stand_ins()
    saved_load, saved_path = ext.load, list(sys.path)
    ext.load = lambda name, *a, **k: types.SimpleNamespace(name=f"{name} (not built: CPU only)")
    sys.modules.update(added)
    sys.path.insert(0, str(code_dir))
    try:
        yield
    finally:  # the imported code keeps its references; nothing else in this process sees the stand-ins
        ext.load, sys.path[:] = saved_load, saved_path
        for name in added:
            sys.modules.pop(name, None)


def load_reference_module(code_dir) -> types.ModuleType:
    """``models.score_models`` of a reference checkout. Raises ValueError, one sentence, when DIR
    is not one."""
    code_dir = Path(code_dir)
    if not (code_dir / "models" / "score_models.py").is_file() or not (code_dir / "models" / "ncsnpp.py").is_file():
        raise ValueError(f"{code_dir}: not a checkout of the reference DiffSep code (no models/score_models.py "
                         f"and models/ncsnpp.py; git clone https://github.com/fakufaku/diffusion-separation)")
    with _importable(code_dir):
        return importlib.import_module("models.score_models")


def reference_weights_of(net: SpectralUNet) -> dict:
    """Our backbone's state dict in the reference's layout (``backbone.all_modules.<i>.*``, and
    ``backbone.output_layer.*`` as it is): the inverse of
    :func:`~diffsep.nets.ncsnpp.rename_reference_keys`."""
    index = {name: i for i, name in enumerate(net.backbone.reference_module_names())}
    out = {}
    for key, value in net.backbone.state_dict().items():
        module = key.rsplit(".", 1)[0]
        while module not in index and "." in module:  # the module of ours that holds the weight
            module = module.rsplit(".", 1)[0]
        if module in index:
            key = f"all_modules.{index[module]}{key[len(module):]}"
        elif not key.startswith("output_layer."):
            raise ValueError(f"no reference module for weight {key!r}")
        out[f"backbone.{key}"] = value
    return out


def reference_score_model(code_dir, net: SpectralUNet) -> nn.Module:
    """The reference's ``ScoreModelNCSNpp`` with ``net``'s settings and weights, in eval mode:
    ``model(x_t, t, mix)`` equals our ``score_t`` head on ``net`` (the paper's score).
    The backbone settings the reference fixes (BigGAN blocks, input/output skip pyramids, log-t
    Fourier embedding) are the only ones our NCSN++ builds; a ``time_embedding="t"`` network has
    no reference counterpart."""
    if net.backbone.time_embedding != "log_t":
        raise ValueError("the reference NCSN++ embeds log t; this network embeds t (no reference counterpart)")
    mod = load_reference_module(code_dir)
    kw = net.init_kwargs
    backbone = {"_target_": "models.ncsnpp.NCSNpp", "nf": kw.get("nf", 128),
                "ch_mult": tuple(kw.get("ch_mult", (1, 1, 2, 2, 2, 2, 2))),
                "num_res_blocks": kw.get("num_res_blocks", 2),
                "attn_resolutions": tuple(kw.get("attn_resolutions", (16,))),
                "fourier_scale": kw.get("fourier_scale", 16.0), "dropout": kw.get("dropout", 0.0),
                "image_size": net.n_fft // 2 + 1}
    stft = {"n_fft": net.n_fft, "hop_length": net.hop_length, "center": True, "pad_mode": "constant"}
    with _importable(Path(code_dir)):  # the backbone's module is imported while building
        ref = mod.ScoreModelNCSNpp(num_sources=net.n_src, stft_args=stft, backbone_args=backbone,
                                   transform=net.transform, spec_abs_exponent=net.spec_abs_exponent,
                                   spec_factor=net.spec_factor)
    missing, unexpected = ref.load_state_dict(reference_weights_of(net), strict=False)
    missing = [k for k in missing if not k.endswith("window")]  # the STFT windows: buffers of its own
    if missing or unexpected:
        raise ValueError(f"reference model does not fit the weights: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return ref.eval()
