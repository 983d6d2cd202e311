"""Model families: what differs between DiffSep and a discriminative separator, behind one small
interface (:class:`~diffsep.families.family.Family`) that training, separation and checkpoints use.
"""
from torch import nn

from .family import Family
from .diffsep import DiffSepFamily
from .discriminative import ConvTasNetFamily, DemucsFamily

FAMILIES: dict[str, type[Family]] = {"diffsep": DiffSepFamily, "convtasnet": ConvTasNetFamily,
                                     "demucs": DemucsFamily}

__all__ = ["FAMILIES", "Family", "describe", "DiffSepFamily", "ConvTasNetFamily", "DemucsFamily"]


def describe(model: nn.Module) -> dict:
    """Config sections that rebuild a bare network of any family (what a checkpoint of it holds)."""
    for family in FAMILIES.values():
        if isinstance(model, family.model_class):
            return family.config_of(model)
    raise TypeError(f"{type(model).__name__} belongs to no model family; known: {', '.join(FAMILIES)}")
