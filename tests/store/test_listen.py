# -*- test-case-name: tests.store.test_listen -*-
"""
Tests for `fjmcp.store.listen` on a real PostgreSQL and the real reactor:
an event committed by one node is heard by another's listener; a dropped
listening connection comes back and says so (caches must be flushed).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest_twisted
from twisted.internet.defer import Deferred

from fjmcp.store.events import StoreEvent, publish_txn
from fjmcp.store.listen import PostgresListener
from fjmcp.store.store import open_postgres_store_sync
from tests.store.support import ScratchSchema

#: Longest a test waits for a notification or a reconnection.
WAIT = 10.0


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Heard:
    """Records events and reconnections; `next` waits for the next one."""

    def __init__(self) -> None:
        self.events: list[StoreEvent] = []
        self.reconnects = 0
        self._waiting: list[Deferred[None]] = []

    def event(self, event: StoreEvent) -> None:
        """Record an event."""
        self.events.append(event)
        self._wake()

    def reconnected(self) -> None:
        """Record a reconnection."""
        self.reconnects += 1
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def next(self) -> Deferred[None]:
        """Fires at the next event or reconnection (or times out)."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        d.addTimeout(WAIT, _reactor())
        return d


async def _until(heard: Heard, ready: Any) -> None:
    """Wait (bounded, per step) until ``ready()`` holds."""
    for _ in range(20):
        if ready():
            return
        await heard.next()
    assert ready()


def _publish(scratch: ScratchSchema, *events: StoreEvent) -> None:
    with open_postgres_store_sync(scratch.conninfo) as node:
        for event in events:
            node.run(publish_txn, event)


@pytest_twisted.ensureDeferred
async def test_an_event_committed_on_one_node_is_heard_on_another(
    scratch_schema: ScratchSchema,
) -> None:
    """What one node publishes in a committed transaction reaches the listener."""
    heard = Heard()
    listener = PostgresListener(
        _reactor(), scratch_schema.conninfo, None, heard.event, heard.reconnected
    )
    listener.startService()
    try:
        await listener.when_listening().addTimeout(WAIT, _reactor())
        revoked = StoreEvent("revoked", "alice", "client-1")
        rotated = StoreEvent("upstream", "bob", None, 7)
        _publish(scratch_schema, revoked, rotated)
        await _until(heard, lambda: len(heard.events) == 2)
        assert heard.events == [revoked, rotated]
        assert heard.reconnects == 0
    finally:
        listener.stopService()


@pytest_twisted.ensureDeferred
async def test_a_dropped_listener_reconnects_and_says_events_were_missed(
    scratch_schema: ScratchSchema,
) -> None:
    """
    When the server ends the listening connection, the listener connects
    again after a short delay, reports the reconnection (so the caches are
    dropped) and hears new events again.
    """
    heard = Heard()
    listener = PostgresListener(
        _reactor(), scratch_schema.conninfo, None, heard.event, heard.reconnected
    )
    listener.startService()
    try:
        await listener.when_listening().addTimeout(WAIT, _reactor())
        pid = listener._conn.info.backend_pid
        with psycopg.connect(scratch_schema.base, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await _until(heard, lambda: heard.reconnects == 1)
        await listener.when_listening().addTimeout(WAIT, _reactor())
        event = StoreEvent("revoked", "carol")
        _publish(scratch_schema, event)
        await _until(heard, lambda: heard.events == [event])
    finally:
        listener.stopService()


def test_a_rolled_back_transaction_publishes_nothing(
    scratch_schema: ScratchSchema,
) -> None:
    """Events leave with the commit: a failed transaction tells nobody."""
    with psycopg.connect(scratch_schema.conninfo, autocommit=True) as watcher:
        watcher.execute(f'LISTEN "fjmcp_{scratch_schema.name}"')
        with open_postgres_store_sync(scratch_schema.conninfo) as node:

            def fail_after_publishing(txn: Any) -> None:
                publish_txn(txn, StoreEvent("revoked", "dave"))
                raise RuntimeError("rolled back")

            try:
                node.run(fail_after_publishing)
            except RuntimeError:
                pass
            node.run(publish_txn, StoreEvent("revoked", "erin"))
        got = [n.payload for n in watcher.notifies(timeout=5, stop_after=1)]
    assert [StoreEvent.decode(p) for p in got] == [StoreEvent("revoked", "erin")]
