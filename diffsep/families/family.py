"""The interface of a model family, and the config sections every family has.

A family declares the config sections it owns (:attr:`Family.sections`: name -> settings
dataclass); the configuration of a run holds the chosen family's sections only, besides data,
optim and train. Value checks are field metadata, read by :mod:`diffsep.config.settings`:
``{"min": 1}`` (>= 1), ``{"gt": 0}`` (> 0), ``{"range": (0, 1)}`` (closed), ``{"choices": (...)}``;
``{"help": "..."}`` documents a field where a command line shows it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


def arg_default(fn, name: str):
    """The default of parameter ``name`` of ``fn`` (a network's constructor): settings fields take
    their defaults from the network, so that each default is written once."""
    import inspect

    default = inspect.signature(fn).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{fn.__qualname__}: parameter {name!r} has no default")
    return default


@dataclass
class ModelSettings:
    """The ``model`` section of every family; a family's own model settings extend it."""
    kind: str = "diffsep"  # model family (diffsep.families.FAMILIES): diffsep | convtasnet | demucs | bridge
    n_src: int = field(default=2, metadata={"range": (1, 8)})  # number of sources K (enhancement: 2 = [speech, noise]; music: the stems); at most 8, since source orders are searched over all K! permutations
    audio_channels: int = field(default=1, metadata={"range": (1, 16)})  # C: 1 (speech) or 2 (stereo music), at most 16; data files must have as many


@dataclass
class LossSettings:
    """The ``loss`` section of every family; a family's own loss settings extend it."""
    fixed_order: bool = False  # keep the source order (enhancement, music stems); otherwise the best permutation


class Family:
    """One model family (``model.kind``).

    - :attr:`sections`: the config sections it owns, name -> settings dataclass (``model`` and
      ``loss`` extend :class:`ModelSettings` / :class:`LossSettings`); :meth:`check`: value checks
      that involve several fields;
    - :attr:`sampler_section`: the section of sampler settings that separation may override (None:
      the family has no sampler); :attr:`warm_start`: whether :meth:`estimate` can start from
      another separator's estimate (``init``);

    - :meth:`build_model`: the network, from the config's sections;
    - :meth:`draw`: every random draw of one loss evaluation of a (global) batch, made up front so
      that a batch split across processes sees the draws of the whole batch (None: no draws);
    - :meth:`loss`: per-item training loss of normalised mixtures and sources;
    - :meth:`estimate`: separate normalised mixtures with a trained network;
    - :attr:`nfe`, :meth:`info`: network evaluations per estimate and what result files record;
    - :attr:`model_class`, :meth:`config_of`: the network class and how a bare network of it is
      described as config sections in a checkpoint; :meth:`upgrade_weights`: older key layouts.
    """
    kind: str = ""
    model_class: type[nn.Module] = nn.Module
    sections: ClassVar[dict[str, type]] = {"model": ModelSettings, "loss": LossSettings}
    config_sections: tuple[str, ...] = ("model",)  # the config sections that define the network
    sampler_section: str | None = None
    warm_start: bool = False

    def __init__(self, cfg):
        self.cfg = cfg

    @classmethod
    def check(cls, cfg) -> None:
        """Raise ValueError for values that are wrong together (each field's own range is checked
        from its metadata)."""

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def draw(self, shape: tuple[int, int, int], generator: torch.Generator) -> Any | None:
        """Random draws for a batch of sources of ``shape`` (B, K, C, N); None if the loss has none.
        The result has ``slice(start, stop)`` and ``to(device)``."""
        return None

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws: Any | None) -> Tensor:
        """mix (B, C, N), sources (B, K, C, N), normalised -> per-item loss (B,)."""
        raise NotImplementedError

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None,
                 init: Tensor | None = None) -> Tensor:
        """Normalised mixtures (B, C, N) -> source estimates (B, K, C, N). ``init``: another
        separator's estimate to start from (families with :attr:`warm_start` only)."""
        raise NotImplementedError

    @property
    def nfe(self) -> int:
        return 1

    @property
    def frame_hop(self) -> int:
        """Samples between the network's analysis frames (the span test-time shift averaging
        spreads its delays over, :mod:`diffsep.inference.shift_averaging`)."""
        return 1

    def info(self) -> dict:
        return {"kind": self.kind}

    def upgrade_weights(self, model: nn.Module, weights: dict) -> dict:
        """Weights of an older checkpoint of this family renamed to the current layout."""
        return weights

    @staticmethod
    def config_of(model: nn.Module) -> dict:
        """Config sections that rebuild ``model`` (an instance of :attr:`model_class`)."""
        raise NotImplementedError
