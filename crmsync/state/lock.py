"""One run per state store at a time: an flock on ``<real path of the state file>.lock``.

The lock is keyed on the resolved real path, so a run on ``state.db`` and one
on a symlink to it (or a path through a symlinked folder) exclude each other.
The kernel releases it when the holder exits, killed or not.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crmsync.errors import StateError, StateLockedError
from crmsync.state.store import real_state_path

__all__ = ["state_lock"]


@contextmanager
def state_lock(state_path: Path) -> Iterator[None]:
    """Hold ``<real path of the state>.lock`` for the run; another holder means another run is busy."""
    lock_path = Path(f"{real_state_path(state_path)}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(
            f"cannot create the state store's lock file {lock_path}: {exc.strerror}; "
            "make the folder writable or use another state store"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise StateLockedError(
                f"another crmsync run is using the state store {state_path} ({holder}); "
                "it exits when it is done, so try again later"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the kernel releases it too if we are killed
