"""Command-line entry points (train, ...). Thin: parse arguments, call the package."""
