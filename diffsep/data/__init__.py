"""Datasets: wsj0-mix, LibriMix, VoiceBank-DEMAND and plain folders (see README for layouts)."""
from ..core.normalization import denormalize, normalize
from .dataset import Item, SeparationDataset, collate
from .layouts import LAYOUTS, build_items

__all__ = ["Item", "SeparationDataset", "collate", "normalize", "denormalize", "build_items", "LAYOUTS"]
