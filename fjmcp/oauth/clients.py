# -*- test-case-name: tests.oauth.test_clients -*-
"""
Where the OAuth objects find, add and touch clients.

One seam in front of the store's client table: every endpoint asks it for
a client by id, so a second source of clients (metadata documents fetched
by URL, operator-controlled records) can answer beside the registered ones
without any endpoint changing.
"""

from __future__ import annotations

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.store.clients import (
    ClientRecord,
    get_client_txn,
    insert_client_txn,
    touch_client_txn,
)
from fjmcp.store.runner import TxnRunner

__all__ = ["ClientDirectory"]


@frozen
class ClientDirectory:
    """The clients registered with the broker, in the store."""

    _store: TxnRunner
    _clock: IReactorTime

    async def find(self, client_id: str) -> ClientRecord | None:
        """The client ``client_id`` names, if any."""
        client: ClientRecord | None = await self._store.run(get_client_txn, client_id)
        return client

    async def add(self, record: ClientRecord) -> None:
        """Store a newly registered client."""
        await self._store.run(insert_client_txn, record)

    async def touch(self, client_id: str) -> None:
        """Note that the client used the token endpoint now."""
        await self._store.run(touch_client_txn, client_id, self._clock.seconds())
