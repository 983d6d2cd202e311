"""Atomic file output: write to temporary files next to the targets, rename into place only when
everything was written, remove the temporaries on any failure. One helper for checkpoints, audio,
result tables and figures.

Temporary files are created with mode 0666 minus the umask, like any other file the user writes
(``tempfile.mkstemp`` would make them 0600 and the renamed outputs would stay private). Their names,
``.NAME.diffsep-tmp-HOST-PID-RANDOM.SUFFIX``, are a pattern only this program writes and say which
process wrote them, so that :func:`remove_stale_temporaries` removes the leftovers of killed writers
and nothing else.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


TEMP_MARK = "diffsep-tmp"  # in every temporary name: .NAME.diffsep-tmp-HOST-PID-RANDOM.SUFFIX
_TEMP_RE = re.compile(rf"^\.(.*)\.{TEMP_MARK}-([0-9a-f]{{8}})-([0-9]+)-([0-9a-f]{{8}})(\.[^.]*)?$", re.S)
_NAME_MAX = 255  # bytes in a file name on common file systems


def _host_tag() -> str:
    """8 hex digits naming this machine (temporaries on a shared disk say which host wrote them)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _temp_path(path: Path) -> Path:
    """A fresh, exclusively created empty file in ``path``'s folder, e.g.
    ``.name.diffsep-tmp-HOST-PID-a1b2c3d4.wav``: a pattern only this program writes, naming the
    writer (host and process, see :func:`remove_stale_temporaries`), with the real suffix last so
    that libraries choosing a format by extension still work."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    while True:
        name = f".{stem}.{TEMP_MARK}-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}"
        if len(name.encode(errors="surrogateescape")) > _NAME_MAX and stem:
            stem = stem[:-1]  # a long target name: the temporary's stem is shortened
            continue
        tmp = path.with_name(name)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when that cannot be told)."""
    if os.name != "posix":
        return True  # no harmless existence probe (os.kill would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's
        return True
    return True


def stale_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of :func:`atomic_paths` whose writer has ended: the name
    pattern only this program writes, this host, a process that no longer exists. Temporaries of
    running writers (another run, another host) and every other file are not stale."""
    m = _TEMP_RE.match(path.name)
    return bool(m) and m.group(2) == _host_tag() and not _process_alive(int(m.group(3)))


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Remove the temporaries that killed writers left in ``folder`` (not in its subfolders);
    returns them. Nothing else is touched: not the user's ``.notes.tmp.md``, not the temporary of
    a write in progress."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = [p for p in entries if TEMP_MARK in p.name and stale_temporary(p) and p.is_file()
             and not p.is_symlink()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


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
