"""The reference DiffSep checkpoint (PyTorch Lightning, github fakufaku/diffusion-separation):
detection, its hydra config as our :class:`~diffsep.config.Config`, and its weights as our
DiffSep model: a :class:`~diffsep.nets.spectral_unet.SpectralUNet` under the paper's head
``score_t`` (:class:`~diffsep.families.preconditioning.Preconditioned`).

The reference keeps its model under ``score_model.backbone.*`` with the NCSN++ submodules in one
flat ``all_modules.<i>`` list, and its EMA weights as a torch_ema state whose ``shadow_params``
follow the parameter order. Keys map to our named modules through
:meth:`~diffsep.nets.ncsnpp.NCSNpp.reference_module_names`.
"""
from __future__ import annotations

import torch

from ..core.sde import DiffSepSDE
from ..families import describe
from ..families.preconditioning import Preconditioned
from ..nets.ncsnpp import rename_reference_keys
from ..nets.spectral_unet import SpectralUNet
from ..storage.checkpoint import FORMAT, CheckpointError

REFERENCE_PREFIX = "score_model."
BACKBONE_PREFIX = "score_model.backbone."


def is_reference(ckpt: dict) -> bool:
    """True for a reference DiffSep (Lightning) checkpoint."""
    sd = ckpt.get("state_dict")
    return isinstance(sd, dict) and any(str(k).startswith(BACKBONE_PREFIX) for k in sd)


def read_reference_config(ckpt: dict) -> dict:
    """Model and SDE settings of a reference checkpoint, from its own hydra config.

    Returns {"model": SpectralUNet kwargs, "sde": DiffSepSDE kwargs (without n_src),
    "sampler": dict, "fs": int | None}.
    """
    from omegaconf import DictConfig, OmegaConf

    cfg = ckpt.get("hyper_parameters", {}).get("config")
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise CheckpointError("reference checkpoint has no readable hyper_parameters['config']['model']")
    m = cfg["model"]
    sm = m.get("score_model", {})
    stft = dict(sm.get("stft_args", {}))
    if stft.get("win_length", stft.get("n_fft", 510)) != stft.get("n_fft", 510):
        raise CheckpointError(f"reference STFT with win_length != n_fft is not supported: {stft}")
    if not stft.get("center", True) or stft.get("pad_mode", "constant") != "constant":
        raise CheckpointError(f"reference STFT must be centred with zero padding, got {stft}")
    bb = {k: v for k, v in sm.get("backbone_args", {}).items() if not k.startswith("_")}
    model = dict(n_src=int(sm.get("num_sources", m.get("n_speakers", 2))),
                 n_fft=int(stft.get("n_fft", 510)), hop_length=int(stft.get("hop_length", 128)),
                 spec_factor=float(sm.get("spec_factor", 3.0)),
                 spec_abs_exponent=float(sm.get("spec_abs_exponent", 0.5)),
                 transform=str(sm.get("transform", "exponent")))
    for key in ("nf", "num_res_blocks", "fourier_scale", "init_scale", "dropout"):
        if key in bb:
            model[key] = bb[key]
    for key in ("ch_mult", "attn_resolutions"):
        if key in bb:
            model[key] = tuple(bb[key])
    expected = dict(resblock_type="biggan", progressive="output_skip", progressive_input="input_skip",
                    progressive_combine="sum", embedding_type="fourier", centered=False,
                    scale_by_sigma=True, conditional=True, fir=True, fir_kernel=[1, 3, 3, 1])
    as_list = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    odd = {k: bb[k] for k in expected if k in bb and as_list(bb[k]) != expected[k]}
    if odd:
        raise CheckpointError(f"reference backbone settings not supported: {odd}")
    s = m.get("sde", {})
    sde = dict(gamma=float(s.get("d_lambda", 2.0)), sigma_min=float(s.get("sigma_min", 0.05)),
               sigma_max=float(s.get("sigma_max", 0.5)))
    return {"model": model, "sde": sde, "sampler": dict(m.get("sampler", {})),
            "t_eps": float(m.get("t_eps", 0.03)), "fs": m.get("fs")}


def reference_weights(ckpt: dict, ema: bool = True) -> dict:
    """Backbone weights of a reference checkpoint, keys without the ``score_model.backbone.``
    prefix. With ``ema`` the EMA ``shadow_params`` are zipped, in order, with the state_dict's
    parameter keys (every key but the STFT window buffers); without it (or without EMA state) the
    state_dict's own tensors are used."""
    sd = ckpt["state_dict"]
    param_keys = [k for k in sd if k.startswith(REFERENCE_PREFIX) and not k.endswith(".window")]
    tensors = dict(sd)
    if ema and ckpt.get("ema") is not None:
        shadow = ckpt["ema"].get("shadow_params")
        if shadow is None or len(shadow) != len(param_keys):
            raise CheckpointError(f"reference EMA state has {0 if shadow is None else len(shadow)} "
                                  f"tensors but the model has {len(param_keys)} parameters")
        for k, v in zip(param_keys, shadow):
            if tuple(v.shape) != tuple(sd[k].shape):
                raise CheckpointError(f"reference EMA tensor for {k} has shape {tuple(v.shape)}, "
                                      f"expected {tuple(sd[k].shape)}: parameter order mismatch")
            tensors[k] = v
    out = {k[len(BACKBONE_PREFIX):]: tensors[k] for k in param_keys if k.startswith(BACKBONE_PREFIX)}
    learned = {k[len(REFERENCE_PREFIX):]: tensors[k] for k in param_keys if not k.startswith(BACKBONE_PREFIX)}
    return {"backbone": out, "learned": learned}


def convert_reference(ckpt: dict, ema: bool = True, where="reference checkpoint") -> dict:
    """A reference DiffSep checkpoint (loaded) as a checkpoint of our format: the config sections
    of the converted model (the spectral U-Net under the paper's head score_t, learned compression
    included, with the checkpoint's SDE), its sampler settings (N, snr, corrector steps, t_eps)
    and sample rate from the reference's hydra config, and the backbone weights under our module
    names. ``ema=True`` (default) takes the EMA weights, as the reference does at inference.
    Nothing is allocated: the names come from a network built on the meta device."""
    if not is_reference(ckpt):
        raise CheckpointError(f"{where}: not a reference DiffSep checkpoint "
                              f"(no '{BACKBONE_PREFIX}*' weights in state_dict)")
    ref = read_reference_config(ckpt)
    kwargs = dict(ref["model"])
    w = reference_weights(ckpt, ema)
    for key in ("spec_factor", "spec_abs_exponent"):
        if key in w["learned"]:  # spec_trans_learnable checkpoints
            kwargs[key] = abs(float(w["learned"][key]))
    out_w = w["backbone"].get("output_layer.weight")
    if out_w is not None and out_w.shape[0] != 2 * kwargs["n_src"]:
        raise CheckpointError(f"{where}: config says {kwargs['n_src']} sources but the output layer "
                              f"has {out_w.shape[0]} channels")
    with torch.device("meta"):
        model = Preconditioned(SpectralUNet(**kwargs), "score_t", DiffSepSDE(kwargs["n_src"], **ref["sde"]))
    renamed = rename_reference_keys(w["backbone"], model.net.backbone.reference_module_names())
    s = ref["sampler"]
    sampler = {k: v for k, v in (("steps", s.get("N")), ("snr", s.get("snr")),
                                 ("corrector_steps", s.get("corrector_steps")),
                                 ("t_eps", ref.get("t_eps"))) if v is not None}
    config = {**describe(model), "sampler": sampler}
    if ref["fs"]:
        config["data"] = {"sample_rate": int(ref["fs"])}
    return {"format": FORMAT, "config": config, "ema": None, "step": ckpt.get("global_step", 0),
            "model": {f"net.backbone.{k}": v for k, v in renamed.items()}}
