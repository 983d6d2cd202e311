"""The one place that turns model settings into a network: explicit dispatch on model.kind."""
from __future__ import annotations

from torch import nn

from .convtasnet import ConvTasNet
from .score_model import ScoreModel

MODEL_KINDS = ("diffsep", "convtasnet")


def build_model(model: dict, convtasnet: dict | None = None) -> nn.Module:
    """A network from a config's ``model`` section (a dict with ``kind``) and, for Conv-TasNet,
    its ``convtasnet`` section (defaults where missing)."""
    kwargs = dict(model)
    kind = kwargs.pop("kind", "diffsep")
    if kind == "diffsep":
        kwargs["ch_mult"] = tuple(kwargs.get("ch_mult", (1, 1, 2, 2, 2, 2, 2)))
        kwargs["attn_resolutions"] = tuple(kwargs.get("attn_resolutions", (16,)))
        return ScoreModel(**kwargs)
    if kind == "convtasnet":
        return ConvTasNet(n_src=kwargs.get("n_src", 2), **(convtasnet or {}))
    raise ValueError(f"unknown model.kind {kind!r}; valid: {', '.join(MODEL_KINDS)}")
