# -*- test-case-name: tests.store.test_lock -*-
"""
One daemon per store: an ``flock`` on ``<store_path>.lock``.

SQLite's own locking lets two daemons share a file, and two brokers on one
store would each believe they own every session, rotate the same refresh
tokens and race each other. So the store takes an exclusive, non-blocking
``flock`` on a lock file beside it and holds it for the life of the process.
The kernel drops the lock when the process dies, however it dies: after a
SIGKILL there is nothing stale to clean up (unlike a pid file). The holder's
pid is written into the file only to make the refusal message helpful.
"""

from __future__ import annotations

import fcntl
import os

from attrs import define

from fjmcp.store.errors import StoreInUseError, wrap_os_error

__all__ = ["StoreLock", "lock_path_for"]


def lock_path_for(store_path: str) -> str:
    """The lock file of a store: ``<store_path>.lock``."""
    return f"{store_path}.lock"


@define
class StoreLock:
    """An exclusive ``flock`` held on a store's lock file until `release`."""

    path: str
    _fd: int | None

    @classmethod
    def acquire(cls, store_path: str) -> StoreLock:
        """
        Take the lock of ``store_path`` now, or fail at once.

        Raises `StoreInUseError` (naming the lock file and, when known, the
        holder's pid) if another process holds it, and `StoreError` if the
        lock file cannot be created.
        """
        path = lock_path_for(store_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise wrap_os_error(
                path, e, doing="create the lock file", store=store_path
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StoreInUseError(
                f"store {store_path} is in use: another fjmcp daemon{who} holds "
                f"its lock {path}; run one daemon per store, or give this one "
                "another store_path",
                path=path,
            ) from None
        except OSError as e:
            os.close(fd)
            raise wrap_os_error(path, e, doing="lock", store=store_path) from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # the pid is only a courtesy for the message above
            pass
        return cls(path, fd)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock and close the file; harmless when already released."""
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor releases the flock; the file stays, so
            # that a waiting opener never races an unlink.
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
