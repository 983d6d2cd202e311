"""diffsep: score-based diffusion source separation (DiffSep, Scheibler et al., ICASSP 2023),
with a Conv-TasNet baseline, in one toolkit for training, separating and evaluating.

The main entry points, imported on first use (``import diffsep`` itself loads nothing heavy)::

    import diffsep
    sep = diffsep.load_separator("ckpt.pt")               # our checkpoints, reference ones, hf://
    est = diffsep.separate_signal(sep, mix, rate)          # (K, N) numpy, any rate and length
    model = diffsep.load_model("ckpt.pt")                  # the network alone
    cfg = diffsep.load_config("configs/tiny.yaml", ["train.max_steps=100"])
    diffsep.Trainer(cfg).run()

Lower-level pieces: :mod:`diffsep.sde`, :mod:`diffsep.sampler`, :mod:`diffsep.score_model`,
:mod:`diffsep.separation`, :mod:`diffsep.evaluation`, :mod:`diffsep.families`.
"""
from importlib import import_module

__version__ = "0.2.0"

_EXPORTS = {
    "load_separator": "inference", "load_model": "inference", "load_trained": "inference",
    "separate_signal": "inference", "separate": "separation", "load_config": "config",
    "Trainer": "trainer", "DiffSepSDE": "sde", "ScoreModel": "score_model",
    "SamplerSettings": "sampler", "sample": "sampler",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'diffsep' has no attribute {name!r}")
