"""Benchmarks: ``python -m diffsep.bench <name> [options]``. Each prints numbers; none asserts."""
