"""The backbones of the DiffSep family (``model.backbone``) and how the model section maps to them.

- ``spectral_unet``: NCSN++ inside STFT / compression (:class:`~diffsep.nets.spectral_unet.SpectralUNet`,
  the paper's, the default); its settings are the model section's unprefixed network fields
  (nf, ch_mult, n_fft ...).
- ``tasnet``: a time-conditioned Conv-TasNet (:class:`~diffsep.nets.tasnet_denoiser.TasNetDenoiser`),
  far cheaper per network evaluation on CPU; its settings are the model section's ``tasnet_*``
  fields (``tasnet_N`` is the constructor's ``N``).

Each backbone reads only its own fields, so the other's need not be set. A checkpoint's model
section names its backbone and holds the backbone's constructor arguments
(:func:`backbone_section`), from which :func:`build_backbone` rebuilds it.
"""
from __future__ import annotations

import inspect

from torch import nn

from ..nets.spectral_unet import SpectralUNet
from ..nets.tasnet_denoiser import TasNetDenoiser

BACKBONES = {"spectral_unet": SpectralUNet, "tasnet": TasNetDenoiser}
PREFIXES = {"spectral_unet": "", "tasnet": "tasnet_"}  # the model-section name of an argument: prefix + name


def _arguments(cls) -> list[str]:
    """Constructor arguments of a backbone besides n_src (the model section's own)."""
    return [k for k in inspect.signature(cls).parameters if k != "n_src"]


def build_backbone(model_settings) -> nn.Module:
    """The backbone a model section (:class:`~diffsep.families.diffsep_settings.DiffSepModelSettings`)
    names, from its fields for that backbone."""
    name = model_settings.backbone
    if name not in BACKBONES:
        raise ValueError(f"unknown model.backbone {name!r}; valid: {', '.join(BACKBONES)}")
    cls, prefix = BACKBONES[name], PREFIXES[name]
    kwargs = {k: getattr(model_settings, prefix + k) for k in _arguments(cls) if hasattr(model_settings, prefix + k)}
    return cls(n_src=model_settings.n_src, **kwargs)


def backbone_section(net: nn.Module) -> dict:
    """Model-section entries that rebuild ``net``: its backbone name, n_src and its constructor
    arguments under their field names."""
    for name, cls in BACKBONES.items():
        if type(net) is cls:
            kwargs = dict(net.init_kwargs)
            n_src = kwargs.pop("n_src")
            return {"backbone": name, "n_src": n_src, **{PREFIXES[name] + k: v for k, v in kwargs.items()}}
    raise TypeError(f"{type(net).__name__} is not a DiffSep backbone; known: {', '.join(BACKBONES)}")


def backbone_frame_hop(model_settings) -> int:
    """Samples between the chosen backbone's analysis frames: the STFT's hop, or the tasnet
    encoder's stride L/2."""
    return model_settings.tasnet_L // 2 if model_settings.backbone == "tasnet" else model_settings.hop_length


def check_backbone(model_settings) -> None:
    """Raise ValueError for values of the chosen backbone's fields that no network can take."""
    if model_settings.backbone == "tasnet":
        for key in ("tasnet_L", "tasnet_emb_dim"):
            if getattr(model_settings, key) % 2:
                raise ValueError(f"model.{key} must be even, got {getattr(model_settings, key)}")
