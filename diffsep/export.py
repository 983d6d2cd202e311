"""Export a trained model for sharing: the weights used for inference (EMA by default) and the
configuration, without optimizer, RNG or schedule state; fp16 storage halves the size again.

    python -m diffsep.export runs/small/best.pt diffsep-small.pt --fp16

The file loads wherever a checkpoint is accepted; fp16 weights are widened to float32 on load
(estimates differ from the fp32 model's by the rounding of the weights only).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .checkpoint import FORMAT, CheckpointError, atomic_save, is_ours, safe_load


def exported(ckpt: dict, *, ema: bool = True, fp16: bool = False, note: str | None = None) -> dict:
    """An inference-only checkpoint of our format from a full one. Floating-point tensors are
    stored as float16 when ``fp16``; integer buffers keep their type. The data folders of the
    training machine (``data.root``, ``data.monitor_root``) are cleared."""
    if not is_ours(ckpt):
        raise CheckpointError("only diffsep checkpoints can be exported (convert reference ones by "
                              "loading them with diffsep.load_trained first)")
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]

    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.half() if fp16 and t.is_floating_point() else t.clone()

    config = dict(ckpt["config"])
    if isinstance(config.get("data"), dict):  # where the data lay on the training machine: not shared
        config["data"] = {**config["data"], **{k: "" for k in ("root", "monitor_root") if k in config["data"]}}
    out = {"format": FORMAT, "model": {k: store(v) for k, v in weights.items()}, "ema": None,
           "config": config, "step": ckpt.get("step", 0),
           "exported": {"weights": "ema" if weights is ckpt.get("ema") else "model",
                        "dtype": "float16" if fp16 else "float32"}}
    if note:
        out["exported"]["note"] = note
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffsep.export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a training checkpoint (last.pt, best.pt ...)")
    p.add_argument("output", type=Path, help="the file to write")
    p.add_argument("--fp16", action="store_true", help="store floating-point weights as float16")
    p.add_argument("--raw-weights", action="store_true", help="export the raw weights, not the EMA")
    args = p.parse_args(argv)
    try:
        ckpt = exported(safe_load(args.checkpoint), ema=not args.raw_weights, fp16=args.fp16)
        atomic_save(ckpt, args.output)
    except (CheckpointError, OSError) as e:
        print(f"error: {args.checkpoint}: {e}" if str(args.checkpoint) not in str(e) else f"error: {e}",
              file=sys.stderr)
        return 2
    mb = args.output.stat().st_size / 2 ** 20
    print(f"wrote {args.output} ({mb:.2f} MiB, {ckpt['exported']['weights']} weights, "
          f"{ckpt['exported']['dtype']}, step {ckpt['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
