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

from twisted.enterprise import adbapi
from twisted.internet.interfaces import IReactorCore, IReactorThreads, IReactorTime
from zope.interface import Interface

from fjmcp.store.dialect import BUSY_TIMEOUT_SECONDS, SQLITE

__all__ = [
    "IStoreReactor",
    "BUSY_TIMEOUT_SECONDS",
    "configure_connection",
    "make_pool",
]


def configure_connection(
    conn: sqlite3.Connection, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS
) -> None:
    """SQLite's connection set-up (see `SqliteDialect.configure`)."""
    SQLITE.configure(conn, busy_timeout=busy_timeout)


class IStoreReactor(IReactorCore, IReactorThreads, IReactorTime, Interface):
    """
    What the store needs of the reactor: its run state (the pool's thread
    starts when it runs), threads, and its clock (migration timestamps).
    """


def make_pool(
    reactor: IStoreReactor,
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
