# -*- test-case-name: tests.store.test_lock -*-
"""Tests for the one-daemon-per-store lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fjmcp.store.errors import StoreError, StoreInUseError
from fjmcp.store.lock import StoreLock, lock_path_for
from tests.store.support import open_fds

_HOLDER = """
import sys
from fjmcp.store.lock import StoreLock
lock = StoreLock.acquire(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def test_lock_file_sits_beside_the_store() -> None:
    """The lock of ``x.db`` is ``x.db.lock``."""
    assert lock_path_for("/var/lib/fjmcp/fjmcp.db") == "/var/lib/fjmcp/fjmcp.db.lock"


def test_second_holder_is_refused_clearly(tmp_path: Path) -> None:
    """
    While one holder has the lock, another gets `StoreInUseError` naming the
    store, the lock file and the holder's pid; after release it succeeds.
    """
    store = str(tmp_path / "fjmcp.db")
    first = StoreLock.acquire(store)
    try:
        with pytest.raises(StoreInUseError) as caught:
            StoreLock.acquire(store)
        message = str(caught.value)
        assert f"store {store} is in use" in message
        assert "another fjmcp daemon" in message
        assert f"(pid {os.getpid()})" in message
        assert store + ".lock" in message
        assert caught.value.path == store + ".lock"
    finally:
        first.release()
    assert not first.held
    StoreLock.acquire(store).release()


def test_release_closes_the_file_and_is_idempotent(tmp_path: Path) -> None:
    """Releasing closes the lock's descriptor; a second release does nothing."""
    before = open_fds()
    lock = StoreLock.acquire(str(tmp_path / "s.db"))
    assert lock.held
    assert len(open_fds() - before) == 1
    lock.release()
    lock.release()
    assert open_fds() == before


def test_refusal_leaks_no_descriptor(tmp_path: Path) -> None:
    """A refused acquire closes the descriptor it opened."""
    store = str(tmp_path / "s.db")
    lock = StoreLock.acquire(store)
    try:
        before = open_fds()
        with pytest.raises(StoreInUseError):
            StoreLock.acquire(store)
        assert open_fds() == before
    finally:
        lock.release()


def test_lock_file_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    """A lock file in a non-directory gives `StoreError` naming the lock file."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = str(blocker / "fjmcp.db")
    with pytest.raises(
        StoreError, match=r"cannot create the lock file .*not-a-dir/fjmcp\.db\.lock"
    ):
        StoreLock.acquire(store)


def test_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    """
    A daemon killed with SIGKILL leaves nothing to clean up: its lock file
    stays, but the kernel dropped the lock, so the next daemon starts.
    """
    store = str(tmp_path / "fjmcp.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreInUseError, match=rf"\(pid {holder.pid}\)"):
            StoreLock.acquire(store)
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()
    assert os.path.exists(store + ".lock")
    StoreLock.acquire(store).release()
