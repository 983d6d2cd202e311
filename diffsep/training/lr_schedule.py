"""Learning-rate schedules: a linear warm-up, then constant or cosine decay (stepped every
optimizer step), or ReduceLROnPlateau on the validation score (stepped at every validation).
One object with the two hooks, so the training loop does not care which it is."""
from __future__ import annotations

import math

import torch

SCHEDULES = ("none", "plateau", "cosine")


def lr_factor(step: int, *, warmup_steps: int = 0, total_steps: int = 0, kind: str = "none",
              min_factor: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based): (step + 1) /
    warmup_steps during the warm-up, then 1 (``none``) or a half cosine from 1 down to
    ``min_factor`` at ``total_steps`` (``cosine``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "cosine" and total_steps > warmup_steps:
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


class LRSchedule:
    """``after_step()`` after every optimizer step, ``after_validation(score)`` after every
    validation (higher is better); ``state_dict`` / ``load_state_dict`` for checkpoints."""

    def __init__(self, opt: torch.optim.Optimizer, kind: str, *, lr: float, warmup_steps: int = 0,
                 total_steps: int = 0, lr_min: float = 0.0, patience: int = 3, factor: float = 0.5):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
        if kind == "plateau" and warmup_steps:
            raise ValueError("a warm-up is not combined with the plateau schedule (use none or cosine)")
        self.kind = kind
        if kind == "plateau":  # an absolute threshold: a relative one misbehaves for negative scores
            self.torch = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=factor, patience=patience, threshold=1e-3, threshold_mode="abs")
        else:
            kw = dict(warmup_steps=warmup_steps, total_steps=total_steps, kind=kind, min_factor=lr_min / lr)
            self.torch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, **kw))

    def after_step(self) -> None:
        if self.kind != "plateau":
            self.torch.step()

    def after_validation(self, score: float) -> None:
        if self.kind == "plateau":
            self.torch.step(score)

    def state_dict(self) -> dict:
        return self.torch.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.torch.load_state_dict(state)
