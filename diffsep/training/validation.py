"""Validation during training: the loss on fixed batches of the validation set, and separation
scores of the model as it ships (its sampler settings and, when ``train.val_warm_start`` names one,
its warm-start partner), scored by the same path as ``diffsep evaluate``
(:func:`diffsep.evaluation.scoring.score_separator`), so that ``best.pt`` is the best of what
users get."""
from __future__ import annotations

import numpy as np
import torch

from ..config.settings import Config, ConfigError
from ..data import collate
from ..core.normalization import normalize
from ..evaluation.scoring import score_separator
from ..inference.loading import Trained, load_trained, make_separator

SCORES = ("si_sdr", "si_sdri")  # logged as val_si_sdr, val_si_sdri (and val_SPLIT_... for monitors)


def validation_separator(cfg: Config, model: torch.nn.Module, device):
    """The separator ``model`` (the EMA network, updated in place) ships as: ``cfg``'s sampler
    settings and the warm-start partner ``train.val_warm_start`` (a checkpoint or bundled name)
    if set. Raises ConfigError when they do not fit together."""
    from ..inference.hub import resolve_model

    partner = cfg.train.val_warm_start
    try:
        partner = load_trained(resolve_model(partner)) if partner else None
        return make_separator(Trained(cfg, model), device=device, warm_start=partner, seed=cfg.train.seed)
    except ValueError as e:
        raise ConfigError(f"validation separator (sampler, train.val_warm_start): {e}") from None


def separation_scores(separator, dataset, n_items: int, seed: int) -> dict:
    """Mean SI-SDR and SI-SDRi (dB) over the first ``n_items`` items of ``dataset`` (a
    SeparationDataset: its crops from the start) separated by ``separator``; item i uses the
    sampler seed ``seed + i``. {} when there are none."""
    items = dataset.items[:n_items]
    if not items:
        return {}
    scores = score_separator(separator, items, crop=dataset.segment, metrics=SCORES, seed=seed,
                             nonfinite_fails=False)
    return {key: scores.mean(key) for key in SCORES}


@torch.no_grad()
def validation_loss(family, model, valid_set, cfg: Config, device) -> float:
    """Mean loss over ``val_batches`` batches of the validation set (the same draws every time)."""
    t = cfg.train
    model.eval()
    loader = torch.utils.data.DataLoader(valid_set, batch_size=t.batch_size, collate_fn=collate)
    gen = torch.Generator().manual_seed(t.seed + 1)
    losses = []
    for _, batch in zip(range(t.val_batches), loader):
        mix, sources, _, _ = normalize(batch["mix"].to(device), batch["sources"].to(device))
        draws = family.draw(sources.shape, gen)
        draws = None if draws is None else draws.to(device)
        losses.append(family.loss(model, mix, sources, draws).mean().item())
    return float(np.mean(losses))


def validate(family, model, separator, valid_set, monitor_sets: dict, cfg: Config, device) -> dict:
    """{val_loss, val_si_sdr, val_si_sdri, val_SPLIT_si_sdr, val_SPLIT_si_sdri for each monitor
    split}: the loss of ``model`` and the scores of ``separator`` (built on it) on the first
    ``train.val_sep_items`` validation items and ``data.monitor_items`` (default all) of each
    monitor split."""
    t = cfg.train
    out = {"val_loss": validation_loss(family, model, valid_set, cfg, device)}
    sep = separation_scores(separator, valid_set, t.val_sep_items, t.seed)
    out.update({f"val_{k}": v for k, v in sep.items()})
    for split, dataset in monitor_sets.items():
        sep = separation_scores(separator, dataset, cfg.data.monitor_items or len(dataset), t.seed)
        out.update({f"val_{split}_{k}": v for k, v in sep.items()})
    return out
