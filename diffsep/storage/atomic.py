"""Atomic file output: write to temporary files next to the targets, rename into place only when
everything was written, remove the temporaries on any failure. One helper for checkpoints, audio,
result tables and figures.

Temporary files are created with mode 0666 minus the umask, like any other file the user writes
(``tempfile.mkstemp`` would make them 0600 and the renamed outputs would stay private).
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _temp_path(path: Path) -> Path:
    """A fresh, exclusively created empty file in ``path``'s folder, e.g. ``.name.a1b2c3.tmp.wav``
    (the real suffix last, so that libraries choosing a format by extension still work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


FULL_BYTES = 1 << 20  # a folder with less free space than this counts as full


def _explained(e: Exception, target: Path) -> Exception:
    """Writers report a full disk in their own words (libsndfile: "System error.", torch: "file
    write failed"); say it plainly, with the path."""
    import errno
    import shutil

    full = isinstance(e, OSError) and e.errno == errno.ENOSPC
    if not full:
        try:
            full = shutil.disk_usage(target.parent).free < FULL_BYTES
        except OSError:
            pass
    return OSError(errno.ENOSPC, "No space left on device", str(target)) if full else e


@contextmanager
def atomic_paths(paths: list[Path | str], fsync: bool = False) -> Iterator[list[Path]]:
    """Yield one temporary path per target; on a clean exit rename each onto its target (all or
    nothing as far as the writing goes), otherwise delete them. With ``fsync`` the data is flushed
    to disk before the renames (checkpoints)."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_temp_path(target))
        try:
            yield temps
        except Exception as e:
            plain = _explained(e, targets[0])
            if plain is e:
                raise
            raise plain from e
        if fsync:
            for tmp in temps:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


@contextmanager
def atomic_path(path: Path | str, fsync: bool = False) -> Iterator[Path]:
    """:func:`atomic_paths` for a single file."""
    with atomic_paths([path], fsync) as (tmp,):
        yield tmp


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
