"""python train.py CONFIG.yaml [section.key=value ...]

Single process, or torchrun --nproc_per_node=N train.py CONFIG.yaml ... for DDP. The newest
checkpoint is RUN_DIR/last.pt; a run restarted with the same run_dir resumes from it.
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.max_steps=1000")
    args = p.parse_args(argv)

    from ..storage.audio import AudioError
    from .common import error_line
    from ..storage.checkpoint import CheckpointError
    from ..config.settings import ConfigError, load_config
    from ..data.layouts import LayoutError
    from ..training import distributed
    from ..training.divergence import TrainingDiverged
    from ..training.run_lock import RunDirBusy
    from ..training.trainer import Trainer

    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg)
        step = trainer.run()
    except (ConfigError, LayoutError, AudioError, CheckpointError, ValueError, OSError, RunDirBusy,
            TrainingDiverged) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    if trainer.dist.is_main:
        last = trainer.run_dir / "last.pt"
        print(f"stopped at step {step}; checkpoint: {last}" if last.is_file()
              else f"stopped at step {step}; nothing to save (train.max_steps={cfg.train.max_steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
