# -*- test-case-name: tests.oauth.test_clients -*-
"""Tests for `fjmcp.oauth.clients`: the client directory over the store."""

from __future__ import annotations

from twisted.internet.task import Clock

from fjmcp.oauth.clients import ClientDirectory
from fjmcp.store.clients import ClientRecord
from tests.oauth.support import MemoryStore, settle

RECORD = ClientRecord(
    client_id="c1",
    kind="dcr",
    auth_method="none",
    grant_types=("authorization_code",),
    redirect_uris=("https://app.example/cb",),
    client_name="App",
    created_at=5.0,
)


def test_added_clients_are_found() -> None:
    """A client added is found by its id; an unknown id finds nothing."""
    clients = ClientDirectory(MemoryStore(), Clock())
    assert settle(clients.add(RECORD)) is None
    assert settle(clients.find("c1")) == RECORD
    assert settle(clients.find("c2")) is None


def test_touch_records_the_clock_time() -> None:
    """Touching a client stores the clock's time as its last use."""
    clock = Clock()
    clock.advance(1234)
    clients = ClientDirectory(MemoryStore(), clock)
    settle(clients.add(RECORD))
    settle(clients.touch("c1"))
    found = settle(clients.find("c1"))
    assert isinstance(found, ClientRecord) and found.last_used_at == 1234
