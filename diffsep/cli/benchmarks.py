"""diffsep bench {score,train,separate,overfit,gpu,backbones} [options] (also ``python -m diffsep.bench``):
benchmarks that print numbers; none asserts."""
from __future__ import annotations

import argparse
import sys

from ..bench import backbone_speed, gpu_check, network_speed, overfit, separation_speed, training_speed
from .common import check_device, error_line, finite_float

BENCHES = {"score": network_speed, "train": training_speed, "separate": separation_speed, "overfit": overfit,
           "gpu": gpu_check, "backbones": backbone_speed}


ANY_NUMBER = {"seed"}  # numeric options every finite value of which means something
AT_LEAST_ZERO = {"chunk_seconds", "overlap_seconds"}  # 0: the whole input, no overlap


def check_numbers(parser: argparse.ArgumentParser) -> None:
    """Give each int / float option of a bench a type that refuses, as a usage error, what no bench
    can run with: non-finite numbers, and values <= 0 (< 0 for :data:`AT_LEAST_ZERO`) except for
    :data:`ANY_NUMBER`."""
    for action in parser._actions:
        base = action.type
        if base not in (int, float) or action.dest in ANY_NUMBER:
            continue

        def parse(text: str, base=base, zero=action.dest in AT_LEAST_ZERO):
            value = finite_float(text) if base is float else int(text)
            if not (value >= 0 if zero else value > 0):
                raise argparse.ArgumentTypeError(f"must be {'>= 0' if zero else '> 0'}, got {text}")
            return value
        parse.__name__ = base.__name__  # argparse names the type in "invalid int value" messages
        action.type = parse


def check_together(parser: argparse.ArgumentParser, args) -> None:
    """Usage errors that involve several options or the machine (before any bench starts)."""
    from ..samplers import SAMPLERS

    chunk, overlap = getattr(args, "chunk_seconds", 0), getattr(args, "overlap_seconds", 0)
    if chunk and overlap >= chunk:
        parser.error(f"argument --overlap-seconds: must be less than --chunk-seconds ({overlap:g} >= {chunk:g})")
    sampler = getattr(args, "sampler", None)
    if sampler is not None and sampler not in SAMPLERS:
        parser.error(f"argument --sampler: unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if args.bench != "gpu":  # the GPU check reports a machine without the device step by step
        check_device(parser, args)


def main(argv=None) -> int:
    from ..config.settings import ConfigError
    from ..storage.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(prog="diffsep bench", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    subs = {}
    for name, module in BENCHES.items():
        subs[name] = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        module.add_arguments(subs[name])
        check_numbers(subs[name])
    args = parser.parse_args(argv)
    check_together(subs[args.bench], args)
    try:
        return BENCHES[args.bench].run(args) or 0
    except (ConfigError, CheckpointError, ValueError, OSError) as e:  # a missing config, data root ...
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
