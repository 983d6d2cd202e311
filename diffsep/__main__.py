"""python -m diffsep SUBCOMMAND: the ``diffsep`` command (:mod:`diffsep.cli.main`)."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
