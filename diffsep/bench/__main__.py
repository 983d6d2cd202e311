"""python -m diffsep.bench {score,train,separate,overfit} [options]"""
from __future__ import annotations

import argparse
import sys

from . import overfit, score, separate, train

BENCHES = {"score": score, "train": train, "separate": separate, "overfit": overfit}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffsep.bench", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    for name, module in BENCHES.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return BENCHES[args.bench].run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
