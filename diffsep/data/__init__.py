"""Datasets: wsj0-mix, LibriMix, VoiceBank-DEMAND and plain folders (see README for layouts)."""
from .base import Item, SeparationDataset, collate, normalize, denormalize
from .layouts import build_items, KINDS

__all__ = ["Item", "SeparationDataset", "collate", "normalize", "denormalize", "build_items", "KINDS"]
