"""diffsep SUBCOMMAND [options]: one command for everything the toolkit does.

    diffsep separate mix.wav -o out/            separate files or folders (default: the bundled model)
    diffsep train configs/tiny.yaml [k=v ...]   train (torchrun --nproc_per_node=N -m diffsep train ... for DDP)
    diffsep evaluate --model M --data-root R    score a model on a test split, or folders of estimates
    diffsep export last.pt model.pt --fp16      an inference-only copy of a trained model
    diffsep curves runs/a runs/b -o curves.png  validation curves against wall-clock time
    diffsep bench score|train|separate|overfit|gpu   benchmarks that print numbers
    diffsep synth --root data/synth              a synthetic multitrack (music) corpus
    diffsep corpus --root data/voices ...        build a speech training corpus (Kokoro, realspeech ...)

``diffsep SUBCOMMAND --help`` lists each one's options; ``python -m diffsep`` is the same command.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

# subcommand -> module of diffsep.cli with a main(argv) -> int
SUBCOMMANDS = {"separate": "separate", "train": "train", "evaluate": "evaluate", "export": "export",
               "curves": "curves", "bench": "benchmarks", "synth": "synth", "corpus": "corpus"}


class _Parsed(Exception):
    """Stops a subcommand's main() at its parse_args call (see :func:`build_parser`)."""


def build_parser(name: str) -> argparse.ArgumentParser:
    """The argument parser of subcommand ``name``, built without running it (for checks of the
    documented command lines, shell completion ...): the module's ``build_parser()`` when it has
    one, else its ``main`` stopped where it parses its arguments (nothing before that call does
    any work). ``bench``'s parser holds one sub-parser per benchmark."""
    from unittest import mock

    module = import_module(f"{__package__}.{SUBCOMMANDS[name]}")
    if hasattr(module, "build_parser"):
        return module.build_parser()
    built = []

    def capture(parser, *args, **kwargs):
        built.append(parser)
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        try:
            module.main([])
        except _Parsed:
            pass
    if not built:
        raise RuntimeError(f"diffsep {name}: main() returned without parsing its arguments")
    return built[0]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"diffsep: unknown subcommand {name!r}; valid: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return import_module(f"{__package__}.{SUBCOMMANDS[name]}").main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
