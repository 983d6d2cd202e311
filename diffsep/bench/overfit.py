"""Memorise one example: the cheapest check that the training pipeline is sound.

Example: python -m diffsep.bench overfit --data-root ../shared/corpus --steps 1500 model.head=score_sqrt_t

Trains a network of --config (default tiny.yaml) on a batch of copies of ONE crop of the first
training mixture, and every --eval-every steps separates that same mixture with the model's
sampler and two others (DiffSep: the ODE in 10 steps, 19 evaluations, and the few-step ddim sampler
in 3; the bridge: 1 step, and its steps without noise), printing SI-SDR per source (after the best
permutation) against the mix / K baseline. A sound pipeline drives both sources far above the baseline; one that does
not (wrong loss weighting, scaling, sampler use ...) stays near or below it.
"""
from __future__ import annotations

import argparse
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
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. model.head=score_sqrt_t")


def run(args) -> int:
    import torch

    from ..config.settings import load_config
    from ..data import SeparationDataset, build_items
    from ..evaluation.scoring import score_separator
    from ..inference.loading import Trained, make_separator
    from ..inference.separator import Separator
    from ..training.trainer import Trainer
    from .training_speed import _Sized

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [f"data.root={args.data_root}", f"train.seed={args.seed}",
                                    f"train.batch_size={args.copies}", "train.accumulate=1",
                                    "train.device=cpu", *args.overrides])
    d, K, segment = cfg.data, cfg.model.n_src, int(args.seconds * cfg.data.sample_rate)
    items = build_items(d.kind, d.root, d.train_split, n_src=K, sample_rate=d.sample_rate,
                        mode=d.mode, mixture=d.mixture)[:1]
    item = SeparationDataset(items, d.sample_rate, segment=segment, random_crop=False)[0]
    batch = {"mix": item["mix"][None].expand(args.copies, -1, -1),
             "sources": item["sources"][None].expand(args.copies, -1, -1, -1)}
    tr = Trainer(cfg, datasets=(_Sized(args.copies), None))  # the real training step, no data files
    trained = Trained(cfg, tr.model)  # the raw weights: the EMA lags far behind in a short run
    sampler = tr.family.info().get("sampler", {})
    name = f"bridge-{sampler['steps']}" if tr.family.kind == "bridge" else sampler.get("kind", "model")
    columns = {name: make_separator(trained)}
    if tr.family.kind == "bridge":  # one step (the separator at t = 1) and the deterministic steps
        columns["bridge-1"] = make_separator(trained, sampler={"steps": 1})
        columns["bridge-det"] = make_separator(trained, sampler={"eta": 0.0})
    elif "sampler" in tr.family.info():
        columns["ode-10"] = make_separator(trained, sampler={"kind": "ode", "steps": 10})
        columns["ddim-3"] = make_separator(trained, sampler={"kind": "ddim", "steps": 3, "solver": "euler",
                                                             "eta": 0.0, "init": "prior"})

    def si_sdrs(separator) -> list[float]:
        """SI-SDR (dB) of each source of the crop, after the best permutation."""
        row = score_separator(separator, items, crop=segment, metrics=("si_sdr",), per_source=True,
                              seed=1).rows[0]
        return [row.get(f"si_sdr_s{k + 1}", row["si_sdr"]) for k in range(K)]

    mixture = Separator(lambda mix, generator: mix[:, None].expand(-1, K, -1, -1), K, d.sample_rate)  # the mix as each
    print(f"overfit bench: {items[0].name} {args.seconds:g} s x {args.copies}, model {cfg.model.kind} "
          f"{sum(p.numel() for p in tr.model.parameters()):,} params, {' '.join(args.overrides)}")
    print(f"baseline mix/K: SI-SDR {' / '.join(f'{v:.1f}' for v in si_sdrs(mixture))} dB")
    print(f"{'step':>6} {'loss':>8} {'time':>7}" + "".join(f"  {name:>12}" for name in columns))
    t0, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        losses.append(tr.train_step([batch])["loss"])
        if step % args.eval_every == 0 or step == args.steps:
            cols = ["/".join(f"{v:.1f}" for v in si_sdrs(sep)) for sep in columns.values()]
            print(f"{step:6d} {sum(losses[-50:]) / len(losses[-50:]):8.4f} {time.perf_counter() - t0:6.0f}s"
                  + "".join(f"  {c:>12}" for c in cols))
    return 0
