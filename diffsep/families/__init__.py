"""Model families: what differs between DiffSep and a discriminative separator, behind one small
interface (:class:`~diffsep.families.base.Family`) that training, separation and checkpoints use.

Adding a family is one file in this package and one entry in :data:`FAMILIES`.
"""
from .base import Family
from .convtasnet import ConvTasNetFamily
from .demucs import DemucsFamily
from .diffsep import DiffSepFamily

FAMILIES: dict[str, type[Family]] = {"diffsep": DiffSepFamily, "convtasnet": ConvTasNetFamily,
                                     "demucs": DemucsFamily}

__all__ = ["FAMILIES", "Family", "DiffSepFamily", "ConvTasNetFamily", "DemucsFamily"]
