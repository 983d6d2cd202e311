"""Non-finite training: a step whose loss (or, without fp16 loss scaling, gradient norm) is NaN or
infinite is skipped, so one bad batch does not poison the weights; ``train.max_nonfinite`` such
steps in a row stop the run with :class:`TrainingDiverged`; weights that are not finite are never
written as a checkpoint (the last finite ``last.pt`` / ``best.pt`` stay as they are)."""
from __future__ import annotations

import math

import torch


class TrainingDiverged(RuntimeError):
    """The run cannot go on: non-finite losses in a row, or non-finite weights."""


def non_finite_tensors(*modules: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of ``modules`` holding NaN or inf."""
    bad = []
    for module in modules:
        for name, value in module.state_dict().items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad.append(name)
    return bad


class NonFiniteSteps:
    """Counts consecutive non-finite optimizer steps; :meth:`check` raises after ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0
        self.first_step = 0  # the first step of the current series

    @staticmethod
    def bad(loss: float, grad_norm: float, loss_scaling: bool) -> bool:
        """Whether a step must be skipped: a non-finite loss, or a non-finite gradient norm when no
        GradScaler is there to skip the step itself (fp16 overflow is the scaler's business)."""
        return not math.isfinite(loss) or (not loss_scaling and not math.isfinite(grad_norm))

    def record(self, step: int, bad: bool) -> None:
        if not bad:
            self.in_a_row = 0
            return
        if self.in_a_row == 0:
            self.first_step = step
        self.in_a_row += 1

    def check(self, step: int, loss: float, grad_norm: float, last_saved: str) -> None:
        """Raise :class:`TrainingDiverged` when the limit is reached. ``last_saved`` says which
        checkpoint stays (e.g. 'RUN_DIR/last.pt (step 40)' or 'none was written')."""
        if self.in_a_row >= self.limit:
            raise TrainingDiverged(
                f"training diverged: the loss or its gradient was not finite (loss {loss}, gradient norm "
                f"{grad_norm}) at {self.in_a_row} steps in a row (steps {self.first_step}-{step}, their "
                f"updates skipped; train.max_nonfinite={self.limit}); the last finite checkpoint is kept: "
                f"{last_saved}; lower optim.lr, check train.init_from and the data")
