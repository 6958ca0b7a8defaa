# -*- test-case-name: tests.store.test_pool -*-
"""
The adbapi connection pool over one sqlite3 connection.

SQLite serialises writers anyway, so one connection on one thread is both
the simplest and the fastest arrangement (synapse does the same):
``cp_min = cp_max = 1`` and ``check_same_thread=False`` so that the pool can
close the connection from the reactor thread. Every connection, pooled or
opened by an offline admin command, gets the same PRAGMAs through
`configure_connection`: WAL (readers never block the writer), foreign keys
enforced, and a busy timeout so that a short lock by another process (a
backup tool, ``sqlite3`` on the command line) waits instead of failing.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Any, Final

from twisted.enterprise import adbapi
from twisted.internet.interfaces import IReactorCore, IReactorThreads

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "configure_connection",
    "make_pool",
]

#: How long a statement waits for another process's lock before failing.
BUSY_TIMEOUT_SECONDS: Final = 5.0


def configure_connection(
    conn: sqlite3.Connection, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS
) -> None:
    """
    Set fjmcp's PRAGMAs on a new connection: busy timeout, foreign keys, WAL,
    and put it in autocommit mode (``isolation_level = None``).

    The busy timeout comes first so that switching to WAL waits for a lock
    held elsewhere. A file that cannot be used fails here (for instance
    ``file is not a database``); the connection is then closed before the
    error propagates, so a failed open leaks no file handle.
    """
    try:
        # Autocommit: fjmcp issues BEGIN/COMMIT itself (see
        # fjmcp.store.store.run_txn), so reads and writes of one transaction
        # function share one transaction, and migrations can run DDL in one.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        mode = str(row[0]).lower() if row else ""
        # An in-memory database reports "memory"; it has no journal to share.
        if mode not in ("wal", "memory"):
            raise sqlite3.OperationalError(
                f"cannot switch to WAL journal mode (journal_mode is {mode!r})"
            )
    except BaseException:
        conn.close()
        raise


def make_pool(
    reactor: IReactorCore | IReactorThreads | Any,
    path: str,
    *,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> adbapi.ConnectionPool:
    """
    A pool with exactly one sqlite3 connection to ``path``, set up by
    `configure_connection` when the pool's thread first connects.

    The pool's thread starts when ``reactor`` runs (at once if it already
    does); work queued earlier waits for it.
    """
    return adbapi.ConnectionPool(
        "sqlite3",
        path,
        cp_reactor=reactor,
        cp_min=1,
        cp_max=1,
        check_same_thread=False,
        timeout=busy_timeout,
        cp_openfun=partial(configure_connection, busy_timeout=busy_timeout),
    )
