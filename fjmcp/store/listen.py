# -*- test-case-name: tests.store.test_listen -*-
"""
Hearing the other nodes: PostgreSQL ``LISTEN`` on one dedicated connection.

The connection is outside the adbapi pool (a pooled connection belongs to
a thread and runs one transaction at a time; this one only waits), in
autocommit mode, and its socket is watched by the reactor: when the server
writes, `PostgresListener` reads what arrived without blocking and hands each
`StoreEvent` to ``on_event``. If the connection breaks (server restart,
network) it connects again after a growing delay, and then calls
``on_reconnect``: notifications sent while it was away are lost for good,
so the caches that depend on them must be dropped (see
`fjmcp.maintenance.cluster`). Connecting runs in a thread: a server that
does not answer never blocks the reactor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

import psycopg
from attrs import define, field
from psycopg import sql
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReadDescriptor
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fjmcp.store.events import CHANNEL_PREFIX, StoreEvent
from fjmcp.store.postgres import connect_kwargs
from fjmcp.store.target import describe_location

__all__ = ["PostgresListener"]

#: Delays before reconnecting: doubled from the first up to the last.
FIRST_RETRY: Final = 0.5
MAX_RETRY: Final = 30.0


@implementer(IReadDescriptor)
@define(eq=False)
class _Socket:
    """The listening connection's socket as the reactor sees it."""

    _fd: int
    _readable: Callable[[], None]
    _lost: Callable[[Failure], None]

    def fileno(self) -> int:
        """
        A duplicate of the connection's socket, owned here: libpq closes its
        own descriptor when it finds the connection broken, and the reactor
        must still be able to let go of this one (see `close`).
        """
        return self._fd

    def close(self) -> None:
        """Close the duplicate (after the reactor stopped watching it)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def doRead(self) -> None:  # noqa: N802 - twisted's name
        """The server wrote: read it all without blocking."""
        self._readable()

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        """The reactor gave up on the socket."""
        self._lost(reason)

    def logPrefix(self) -> str:  # noqa: N802
        """How the reactor names it in logs."""
        return "PostgresListener"


@define(slots=False, eq=False)
class PostgresListener(Service):
    """
    A service holding the ``LISTEN`` connection for as long as it runs.

    :param on_event: called with every event another node (or this one)
        published on this store's channel.
    :param on_reconnect: called after every reconnection (not the first
        connection): events may have been missed meanwhile.
    """

    _reactor: Any
    _conninfo: str
    _password: str | None = field(repr=False)
    _on_event: Callable[[StoreEvent], None]
    _on_reconnect: Callable[[], None]
    _conn: Any = field(default=None, init=False)
    _socket: _Socket | None = field(default=None, init=False)
    _retry: IDelayedCall | None = field(default=None, init=False)
    _delay: float = field(default=FIRST_RETRY, init=False)
    _connected_once: bool = field(default=False, init=False)
    _connecting: Deferred[Any] | None = field(default=None, init=False)
    _waiters: list[Deferred[None]] = field(factory=list, init=False)
    heard: int = field(default=0, init=False)
    """Events received (tests and metrics)."""

    log = Logger()

    def __attrs_post_init__(self) -> None:
        Service.__init__(self)

    # --- life -----------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 - twisted's name
        """Connect (in a thread) and start listening."""
        super().startService()  # type: ignore[no-untyped-call]
        self._connect()

    def stopService(self) -> Deferred[None] | None:  # noqa: N802
        """Stop listening and close the connection."""
        super().stopService()  # type: ignore[no-untyped-call]
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._close()
        return None

    @property
    def listening(self) -> bool:
        """Whether the connection is up and listening."""
        return self._socket is not None

    def when_listening(self) -> Deferred[None]:
        """Fires once the connection listens (at once if it does now)."""
        d: Deferred[None] = Deferred()
        if self.listening:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    # --- connecting -----------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        pool = self._reactor.getThreadPool()
        d: Deferred[Any] = deferToThreadPool(self._reactor, pool, self._open)
        self._connecting = d
        d.addCallbacks(self._opened, self._failed_to_open)

    def _open(self) -> Any:
        conn = psycopg.connect(self._conninfo, **connect_kwargs(self._password))
        try:
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = str(row[0]) if row else "public"
            channel = sql.Identifier(f"{CHANNEL_PREFIX}{schema}")
            conn.execute(sql.SQL("LISTEN {}").format(channel))
            conn.pgconn.nonblocking = 1
        except BaseException:
            conn.close()
            raise
        return conn

    def _opened(self, conn: Any) -> None:
        self._connecting = None
        if not self.running:
            conn.close()
            return
        self._conn = conn
        self._socket = _Socket(
            os.dup(int(conn.pgconn.socket)), self._readable, self._lost
        )
        self._reactor.addReader(self._socket)
        self._delay = FIRST_RETRY
        again = self._connected_once
        self._connected_once = True
        self.log.info(
            "listening for other nodes on {store}",
            store=describe_location(self._conninfo),
        )
        if again:
            self._on_reconnect()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._readable()  # anything that arrived with the LISTEN

    def _failed_to_open(self, failure: Failure) -> None:
        self._connecting = None
        self.log.warn(
            "cannot listen for other nodes on {store} ({error}); "
            "retrying in {delay:g}s",
            store=describe_location(self._conninfo),
            error=str(failure.value).strip().splitlines()[0]
            if str(failure.value).strip()
            else type(failure.value).__name__,
            delay=self._delay,
        )
        self._schedule()

    def _schedule(self) -> None:
        if not self.running:
            return
        self._retry = self._reactor.callLater(self._delay, self._connect)
        self._delay = min(self._delay * 2, MAX_RETRY)
        # The next connection will be a reconnection: events may be lost.
        self._connected_once = True

    # --- reading --------------------------------------------------------------

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as e:
            self._lost(Failure(e))
            return
        while True:
            note = pgconn.notifies()
            if note is None:
                break
            self.heard += 1
            event = StoreEvent.decode(note.extra.decode("utf-8", "replace"))
            if event is None:
                self.log.warn("ignored an unreadable notification")
                continue
            try:
                self._on_event(event)
            except Exception:
                self.log.failure("handling a notification failed")
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            self._lost(Failure(ConnectionError("connection to PostgreSQL lost")))

    def _lost(self, reason: Failure) -> None:
        if self._conn is None:
            return
        self.log.warn(
            "lost the connection listening for other nodes ({reason}); reconnecting",
            reason=reason.getErrorMessage(),
        )
        self._close()
        self._schedule()

    def _close(self) -> None:
        if self._socket is not None:
            self._reactor.removeReader(self._socket)
            self._socket.close()
            self._socket = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:  # already broken
                pass
