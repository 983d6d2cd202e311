"""Model families: what differs between DiffSep and a discriminative separator, behind one small
interface (:class:`~diffsep.families.family.Family`) that training, separation and checkpoints use.
"""
from torch import nn

from .family import Family
from .bridge import BridgeFamily
from .diffsep import DiffSepFamily
from .discriminative import ConvTasNetFamily, DemucsFamily

FAMILIES: dict[str, type[Family]] = {"diffsep": DiffSepFamily, "convtasnet": ConvTasNetFamily,
                                     "demucs": DemucsFamily, "bridge": BridgeFamily}

__all__ = ["FAMILIES", "Family", "describe", "register_family", "DiffSepFamily", "ConvTasNetFamily", "DemucsFamily",
           "BridgeFamily"]


def register_family(family: type[Family]) -> type[Family]:
    """Add a family to :data:`FAMILIES` under its ``kind`` (usable as a class decorator); from then
    on configs with that ``model.kind`` load, train, separate and evaluate with it."""
    if not family.kind or not isinstance(family.kind, str):
        raise ValueError(f"{family.__name__}: a family needs a kind (its model.kind name)")
    if family.kind in FAMILIES and FAMILIES[family.kind] is not family:
        raise ValueError(f"model.kind {family.kind!r} is taken by {FAMILIES[family.kind].__name__}")
    FAMILIES[family.kind] = family
    return family


def describe(model: nn.Module) -> dict:
    """Config sections that rebuild a bare network of any family (what a checkpoint of it holds)."""
    for family in FAMILIES.values():
        if isinstance(model, family.model_class):
            return family.config_of(model)
    raise TypeError(f"{type(model).__name__} belongs to no model family; known: {', '.join(FAMILIES)}")
