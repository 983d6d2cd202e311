#!/usr/bin/env python
"""Train DiffSep: python train.py CONFIG.yaml [section.key=value ...] (see README)."""
import sys

from diffsep.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
