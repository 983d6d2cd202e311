#!/usr/bin/env python
"""Separate audio files: python separate.py INPUT... -o OUTDIR --model MODEL (see README)."""
import sys

from diffsep.cli.separate import main

if __name__ == "__main__":
    sys.exit(main())
