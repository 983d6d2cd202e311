"""The interface of a model family. A family is built from a :class:`~diffsep.config.Config` and
holds whatever fixed objects its kind needs (DiffSep: the SDE and the sampler settings)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Family:
    """One model family (``model.kind``).

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
    config_sections: tuple[str, ...] = ("model",)  # the config sections that define the network

    def __init__(self, cfg):
        self.cfg = cfg

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def draw(self, shape: tuple[int, int, int], generator: torch.Generator) -> Any | None:
        """Random draws for a batch of sources of ``shape`` (B, K, N); None if the loss has none.
        The result has ``slice(start, stop)`` and ``to(device)``."""
        return None

    def loss(self, net: nn.Module, mix: Tensor, sources: Tensor, draws: Any | None) -> Tensor:
        """mix (B, 1, N), sources (B, K, N), normalised -> per-item loss (B,)."""
        raise NotImplementedError

    def estimate(self, model: nn.Module, mix: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalised mixtures (B, 1, N) -> source estimates (B, K, N)."""
        raise NotImplementedError

    @property
    def nfe(self) -> int:
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
