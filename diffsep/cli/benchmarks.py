"""diffsep bench {score,train,separate,overfit,gpu} [options] (also ``python -m diffsep.bench``):
benchmarks that print numbers; none asserts."""
from __future__ import annotations

import argparse
import sys

from ..bench import gpu_check, network_speed, overfit, separation_speed, training_speed

BENCHES = {"score": network_speed, "train": training_speed, "separate": separation_speed, "overfit": overfit,
           "gpu": gpu_check}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffsep bench", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    for name, module in BENCHES.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return BENCHES[args.bench].run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
