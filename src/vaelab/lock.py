"""A run folder has one writer at a time: an advisory lock (``flock``) on RUN/.lock, held while a command writes
into the folder. The file names its holder (pid, host, command); the system frees the lock when the holder
exits, killed or not, so a crash never leaves a stale lock. Locks are re-entrant within a process."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import RunError

LOCK_FILE = ".lock"

_held: dict[Path, list[int]] = {}  # resolved run folder -> [fd, depth]
_kept: list[list[Path]] = []  # the run folders locked under each open ``keep_locks``


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    name = "vaelab" if name in ("__main__.py", "vaelab", "-m") else name
    return " ".join([name, *sys.argv[1:]])


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, from what it wrote there."""
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its pid yet)"


def _acquire(run_dir: Path) -> int | None:
    """An open, locked descriptor of RUN/.lock holding this process's details; a RunError if another holds it;
    None where the folder cannot be written."""
    path = run_dir / LOCK_FILE
    while True:
        fd = _open(path)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(
                f"{run_dir} is being written by {_holder(path)}; wait for it to end or stop it, then run this again"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else a holder removed the file as we opened it: lock the new one
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "since": time.strftime("%H:%M:%S")}
    with contextlib.suppress(OSError):  # not on another user's lock file, opened read-only
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return fd


def _open(path: Path) -> int | None:
    """RUN/.lock opened for locking: created if need be, read-only if it is another user's (flock needs no write
    access); None in a folder we cannot write in (a read-only copy): nothing of ours will be written there."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _release(key: Path) -> None:
    fd, _ = _held.pop(key)
    with contextlib.suppress(OSError):
        (key / LOCK_FILE).unlink()  # while still locked: a process that opened it retries on the new file
    os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's lock for the block (nothing to lock when the folder does not exist: the command's
    own checks report that)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        yield
        return
    key = run_dir.resolve()
    if key in _held:
        _held[key][1] += 1
    else:
        fd = _acquire(run_dir)
        if fd is None:  # a folder we cannot write in: its writes fail with their own message
            yield
            return
        _held[key] = [fd, 1]
        if _kept:
            _kept[-1].append(key)
            _held[key][1] += 1  # released when that ``keep_locks`` ends
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            _release(key)


@contextlib.contextmanager
def keep_locks() -> Iterator[None]:
    """Keep the run folders locked inside this block locked until it ends (e.g. training, then its eval)."""
    _kept.append([])
    try:
        yield
    finally:
        for key in _kept.pop():
            _held[key][1] -= 1
            if _held[key][1] == 0:
                _release(key)
