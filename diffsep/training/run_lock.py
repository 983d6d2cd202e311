"""The lock of a run directory: one training at a time writes checkpoints and logs there.

``RUN_DIR/train.lock`` holds the holder's pid, host and start time (JSON). Exclusion comes from
``fcntl.flock`` on that file, which the kernel releases when the holder ends however it ends
(exception, Ctrl-C, kill -9), so a lock left by a dead process is never in force: the next run
takes it over with a warning naming the run that left it. Where ``flock`` is not available (some
network file systems, Windows) the file's contents decide: a live holder on this host, or a holder
on another host (whose liveness cannot be told), keeps the directory; a dead holder on this host
is taken over. Under torchrun only rank 0 holds the lock.
"""
from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = "train.lock"


class RunDirBusy(RuntimeError):
    """Another training holds the run directory."""


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, Linux), to tell a reused pid from the
    holder; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(info: dict) -> bool:
    """Whether the holder described by ``info`` (a lock file's contents) still runs on this host."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: it exists
    ticks = _start_ticks(pid)
    return ticks is None or info.get("start_ticks") in (None, ticks)


def describe(info: dict) -> str:
    """'pid 123 on host gpu1, since 2024-05-01 12:00:00' (what a lock file says)."""
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
            f"since {info.get('since', 'an unknown time')}")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        info = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _write(fd: int, info: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(info) + "\n").encode())
    os.fsync(fd)


def _flock(fd: int) -> bool | None:
    """Take the exclusive flock: True when taken, False when another process holds it, None when
    this file system (or system) has no flock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EINVAL, ENOTSUP ...: no flock here


class RunLock:
    """The lock of ``run_dir`` (a context manager); :meth:`acquire` raises :class:`RunDirBusy`,
    in one sentence naming the holder, when another training holds it."""

    def __init__(self, run_dir: Path | str):
        self.path = Path(run_dir) / LOCK_NAME
        self.info = {}
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # another run removed the file between our open and our flock: again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                previous = self._refuse_if_held(fd)
                try:
                    same_file = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same_file = False
                if not same_file:
                    os.close(fd)
                    continue
                if previous.get("pid") is not None:
                    print(f"warning: {self.path.parent}: taking over the lock of a training that ended "
                          f"without releasing it ({describe(previous)})", file=sys.stderr)
                self.info = {"pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.datetime.now().isoformat(sep=" ", timespec="seconds"),
                             "start_ticks": _start_ticks(os.getpid())}
                _write(fd, self.info)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self
        raise RunDirBusy(f"{self.path}: could not take the run directory's lock (it keeps being replaced)")

    def check_free(self) -> None:
        """Raise :class:`RunDirBusy` now if another training holds the lock (before a long set-up);
        takes nothing."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:  # no lock file, no run directory: free
            return
        try:
            self._refuse_if_held(fd)
        finally:
            os.close(fd)  # and with it the flock it may have taken

    def _refuse_if_held(self, fd: int) -> dict:
        """Take the flock of the open lock file ``fd`` (where there is flock); raise RunDirBusy,
        naming the holder, when another training holds it. Returns what the file says."""
        got = _flock(fd)
        previous = _read(fd)
        if got is False or (got is None and previous and not self._stale(previous)):
            raise RunDirBusy(f"{self.path.parent} is in use by another training ({describe(previous)}); "
                             f"wait for it to end, or use another train.run_dir"
                             + ("" if got is False else f" (if that run is over, delete {self.path})"))
        return previous

    @staticmethod
    def _stale(info: dict) -> bool:
        """A lock file without flock: its holder is known to have ended (this host, no such process)."""
        return info.get("host") == socket.gethostname() and not _alive(info)

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and let go of the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _read(fd).get("pid") == os.getpid() and os.path.samestat(os.fstat(fd), os.stat(self.path)):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> "RunLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
