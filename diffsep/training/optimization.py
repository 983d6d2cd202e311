"""The training objects of a config: the optimizer (Adam), the EMA of the weights, the learning-rate
schedule, autocast's dtype and the gradient scaler."""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..config import Config, ConfigError
from .lr_schedule import SCHEDULES, LRSchedule

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def build_ema(cfg: Config, model: nn.Module) -> AveragedModel:
    """Exponential moving average of the weights: the first update copies, then
    ema ← decay · ema + (1 − decay) · weights after every optimizer step."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay))


def build_scheduler(cfg: Config, opt: torch.optim.Optimizer):
    """None (constant lr, no warm-up) or an :class:`~diffsep.training.lr_schedule.LRSchedule`."""
    o = cfg.optim
    if o.lr_schedule not in SCHEDULES:
        raise ConfigError(f"unknown optim.lr_schedule {o.lr_schedule!r}; valid: {', '.join(SCHEDULES)}")
    if o.lr_schedule == "none" and not o.warmup_steps:
        return None
    try:
        return LRSchedule(opt, o.lr_schedule, lr=o.lr, warmup_steps=o.warmup_steps,
                          total_steps=cfg.train.max_steps, lr_min=o.lr_min, patience=o.lr_patience,
                          factor=o.lr_factor)
    except ValueError as e:
        raise ConfigError(f"optim: {e}") from None


def amp_dtype(cfg: Config) -> torch.dtype | None:
    if cfg.train.amp not in AMP_DTYPES:
        raise ConfigError(f"unknown train.amp {cfg.train.amp!r}; valid: {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[cfg.train.amp]


def build_scaler(cfg: Config, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (disabled otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(cfg) == torch.float16)
