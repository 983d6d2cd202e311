"""The path a network's forward takes when no gradient is recorded (``torch.no_grad`` /
``torch.inference_mode``): ``reference`` or ``fast``.

- ``reference`` (what a network is built with): exactly the computation of training, in the
  layout the reference implementation uses (NCHW for NCSN++); what the reference fixture pins.
- ``fast`` (what the separators of :mod:`diffsep.inference` set, ``make_separator(...,
  inference_path="fast")``, the default): the same function computed faster on CPU, equal to the
  reference path within float32 rounding. NCSN++ on CPU runs its feature maps channels-last
  (on other devices it keeps the reference layout, not measured there): oneDNN then
  convolves them without reordering input and output (two copies of every feature map per
  convolution), and its 1x1 convolutions become one matrix product over the channel axis; its
  attention gets a head axis, with which torch takes its fused attention kernel (without one it
  computes attention op by op, 4-5x slower on CPU at 1,024 positions).
  max |fast − reference| / max |reference| is about 1e-5 (tested below 1e-4; the larger share
  comes from torch's channels-last GroupNorm, whose statistics are less exact than the NCHW one's).

On either path a network without autograd updates its own intermediate tensors in place, which
changes no value. With gradients recorded (training) every network takes the reference path.
"""
from __future__ import annotations

import torch
from torch import nn

FAST, REFERENCE = "fast", "reference"
INFERENCE_PATHS = (FAST, REFERENCE)


def takes_fast_path(module: nn.Module) -> bool:
    """True when ``module`` should compute its fast path now: no gradient is being recorded and
    the module is set to the fast path."""
    return not torch.is_grad_enabled() and getattr(module, "inference_path", REFERENCE) == FAST


def set_inference_path(model: nn.Module, path: str = FAST) -> nn.Module:
    """Set every submodule of ``model`` that has a fast path to ``path`` (in place); returns
    ``model``. Raises ValueError for an unknown path."""
    if path not in INFERENCE_PATHS:
        raise ValueError(f"unknown inference path {path!r}; valid: {', '.join(INFERENCE_PATHS)}")
    for m in model.modules():
        if hasattr(m, "inference_path"):
            m.inference_path = path
    return model


def inference_path_of(model: nn.Module) -> str | None:
    """The path ``model``'s networks take without gradients: "fast", "reference", "mixed", or
    None when none of its modules has a fast path (they compute one way only)."""
    paths = {m.inference_path for m in model.modules() if hasattr(m, "inference_path")}
    return None if not paths else paths.pop() if len(paths) == 1 else "mixed"
