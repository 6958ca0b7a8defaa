# -*- test-case-name: tests.store.test_pool -*-
"""Tests for the connection set-up shared by the pool and offline commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import cast

import pytest
from twisted.internet.testing import MemoryReactorClock

from fjmcp.store.pool import IStoreReactor, configure_connection, make_pool


def test_connections_get_wal_foreign_keys_busy_timeout_autocommit(
    tmp_path: Path,
) -> None:
    """A configured file connection is in WAL mode, enforces foreign keys,
    waits for locks and leaves transactions to fjmcp."""
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        configure_connection(conn, busy_timeout=1.5)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (1500,)
        assert conn.isolation_level is None
    finally:
        conn.close()


def test_memory_connections_are_accepted() -> None:
    """An in-memory database (journal mode ``memory``) is configured too."""
    conn = sqlite3.connect(":memory:")
    try:
        configure_connection(conn)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    finally:
        conn.close()


def test_a_file_that_is_no_database_fails_and_closes_the_connection(
    tmp_path: Path,
) -> None:
    """Set-up fails on a non-database file and closes the connection it got."""
    path = tmp_path / "junk"
    path.write_bytes(b"junk" * 1024)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        configure_connection(conn)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")


def test_pool_has_one_connection_usable_from_any_thread(tmp_path: Path) -> None:
    """The pool holds exactly one sqlite3 connection, shareable across threads."""
    # The pool only asks the reactor to start its thread when it runs.
    reactor = cast(IStoreReactor, MemoryReactorClock())
    pool = make_pool(reactor, str(tmp_path / "s.db"), busy_timeout=2.0)
    try:
        assert (pool.min, pool.max) == (1, 1)
        assert pool.dbapiName == "sqlite3"
        assert pool.connkw == {"check_same_thread": False, "timeout": 2.0}
        assert pool.openfun is not None
    finally:
        pool.close()
