"""``python -m diffsep.evaluate``: see :mod:`diffsep.cli.evaluate` for the options."""
import sys

from .cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
