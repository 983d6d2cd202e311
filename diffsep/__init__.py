"""diffsep: score-based diffusion source separation (DiffSep, Scheibler et al., ICASSP 2023),
with a Conv-TasNet baseline, in one toolkit for training, separating and evaluating.

The main entry points, imported on first use (``import diffsep`` itself loads nothing heavy)::

    import diffsep
    sources, rate = diffsep.separate_file("mix.wav")      # (K, N) numpy with the bundled default model
    sep = diffsep.load_separator("ckpt.pt")               # our checkpoints, reference ones, hf://
    est = diffsep.separate_signal(sep, mix, rate)          # (K, N) numpy, any rate and length
    scores = diffsep.score_separator(sep, items, metrics=["si_sdr", "pesq"])  # rows and summary
    model = diffsep.load_model("ckpt.pt")                  # the network alone
    cfg = diffsep.load_config("configs/tiny.yaml", ["train.max_steps=100"])
    diffsep.Trainer(cfg).run()

The package is grouped by layer, each importing only the ones above it in this list:
:mod:`diffsep.core` (SDE, STFT, PIT, SI-SDR: tensor math), :mod:`diffsep.nets` (networks),
:mod:`diffsep.samplers`, :mod:`diffsep.families` (one file a model family), :mod:`diffsep.data`,
:mod:`diffsep.storage` (audio and checkpoint files), :mod:`diffsep.config`,
:mod:`diffsep.training`, :mod:`diffsep.inference`, :mod:`diffsep.evaluation`, and
:mod:`diffsep.cli` (the ``diffsep`` command) on top.
"""
from importlib import import_module

__version__ = "0.2.0"

_EXPORTS = {
    "load_separator": "inference.loading", "load_model": "inference.loading",
    "load_trained": "inference.loading", "separate_signal": "inference.loading",
    "separate": "inference.separator", "separate_file": "inference.file_separation",
    "load_config": "config", "Trainer": "training.trainer",
    "DiffSepSDE": "core.sde", "SpectralUNet": "nets.spectral_unet",
    "Preconditioned": "families.preconditioning", "SamplerSettings": "samplers",
    "sample": "samplers", "score_separator": "evaluation.scoring",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'diffsep' has no attribute {name!r}")
