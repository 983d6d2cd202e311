"""Memorise one example: the cheapest check that the training pipeline is sound.

Example: python -m diffsep.bench overfit --data-root ../shared/corpus --steps 1500 model.output_scale=sqrt_t

Trains a network of --config (default tiny.yaml) on a batch of copies of ONE crop of the first
training mixture, and every --eval-every steps separates that same mixture with the model's
sampler and a second one (ODE), printing SI-SDR per source (after the best permutation) against
the mix / K baseline. A sound pipeline drives both sources far above the baseline; one that does
not (wrong loss weighting, scaling, sampler use ...) stays near or below it.
"""
from __future__ import annotations

import argparse
import dataclasses
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/tiny.yaml")
    p.add_argument("--data-root", required=True, help="dataset root of the config's data.kind")
    p.add_argument("--seconds", type=float, default=1.0, help="crop length")
    p.add_argument("--copies", type=int, default=4, help="batch = this many copies of the crop")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. model.output_scale=sqrt_t")


def run(args) -> int:
    import torch

    from ..config.build import build_family
    from ..config.settings import load_config
    from ..data import SeparationDataset, build_items
    from ..core.sdr import pit_si_sdr
    from ..core.normalization import normalize
    from ..training.trainer import Trainer
    from .training_speed import _Sized

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [f"data.root={args.data_root}", f"train.seed={args.seed}",
                                    f"train.batch_size={args.copies}", "train.accumulate=1",
                                    "train.device=cpu", *args.overrides])
    d = cfg.data
    items = build_items(d.kind, d.root, d.train_split, n_src=cfg.model.n_src, sample_rate=d.sample_rate,
                        mode=d.mode, mixture=d.mixture)
    item = SeparationDataset(items[:1], d.sample_rate, segment=int(args.seconds * d.sample_rate),
                             random_crop=False)[0]
    batch = {"mix": item["mix"][None].expand(args.copies, -1, -1),
             "sources": item["sources"][None].expand(args.copies, -1, -1)}
    mix, sources, _, _ = normalize(item["mix"][None], item["sources"][None])
    tr = Trainer(cfg, datasets=(_Sized(args.copies), None))  # the real training step, no data files
    ode = build_family(dataclasses.replace(cfg, sampler=cfg.sampler.updated(kind="ode", steps=10)))
    base = pit_si_sdr(mix.expand_as(sources) / cfg.model.n_src, sources)[0][0].tolist()
    print(f"overfit bench: {items[0].name} {args.seconds:g} s x {args.copies}, model {cfg.model.kind} "
          f"{sum(p.numel() for p in tr.model.parameters()):,} params, {' '.join(args.overrides)}")
    print(f"baseline mix/K: SI-SDR {' / '.join(f'{v:.1f}' for v in base)} dB")
    first = tr.family.info().get("sampler", {}).get("kind", "model")
    print(f"{'step':>6} {'loss':>8} {'time':>7}  {first:>12}  {'ode-10':>12}")
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        losses.append(tr.train_step([batch])["loss"])
        if step % args.eval_every == 0 or step == args.steps:
            tr.model.eval()
            with torch.no_grad():  # the raw weights: the EMA lags far behind in a short run
                scores = [pit_si_sdr(f.estimate(tr.model, mix, torch.Generator().manual_seed(1)), sources)[0][0]
                          for f in (tr.family, ode)]
            cols = ["/".join(f"{v:.1f}" for v in sc.tolist()) for sc in scores]
            print(f"{step:6d} {sum(losses[-50:]) / len(losses[-50:]):8.4f} {time.perf_counter() - t0:6.0f}s"
                  f"  {cols[0]:>12}  {cols[1]:>12}")
    return 0
