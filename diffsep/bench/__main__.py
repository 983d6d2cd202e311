"""python -m diffsep.bench NAME: the same as ``diffsep bench NAME`` (:mod:`diffsep.cli.benchmarks`)."""
import sys

from ..cli.benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
