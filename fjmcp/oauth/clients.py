# -*- test-case-name: tests.oauth.test_clients -*-
"""
Where the OAuth objects find, add and touch clients.

One seam in front of the store's client table: every endpoint asks it for
a client by id, so a second source of clients answers beside the
registered ones without any endpoint changing: a ``client_id`` that is an
https URL names a metadata document, resolved by
`fjmcp.oauth.document_clients.DocumentClients` (operator records first,
then a guarded fetch). When that fails, `find` raises `ClientDocumentError`
with a message for the person or client developer: the endpoints show it
as an error page or answer ``invalid_client``.
"""

from __future__ import annotations

from typing import Protocol

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.oauth.client_documents import is_document_client_id
from fjmcp.store.clients import (
    ClientRecord,
    get_client_txn,
    insert_client_txn,
    touch_client_txn,
)
from fjmcp.store.runner import TxnRunner

__all__ = ["ClientDirectory", "DocumentResolver"]


class DocumentResolver(Protocol):
    """`fjmcp.oauth.document_clients.DocumentClients`, as the directory uses it."""

    async def resolve(self, client_id: str) -> ClientRecord:
        """The client a document URL names; raises `ClientDocumentError`."""


@frozen
class ClientDirectory:
    """
    The clients of the broker: registered ones in the store, and those
    named by a metadata document URL (when ``documents`` is given).
    """

    _store: TxnRunner
    _clock: IReactorTime
    _documents: DocumentResolver | None = None

    async def find(self, client_id: str) -> ClientRecord | None:
        """
        The client ``client_id`` names, if any. Raises `ClientDocumentError`
        when it names a metadata document that cannot be used.
        """
        if self._documents is not None and is_document_client_id(client_id):
            return await self._documents.resolve(client_id)
        client: ClientRecord | None = await self._store.run(get_client_txn, client_id)
        return client

    async def add(self, record: ClientRecord) -> None:
        """Store a newly registered client."""
        await self._store.run(insert_client_txn, record)

    async def touch(self, client_id: str) -> None:
        """Note that the client used the token endpoint now."""
        await self._store.run(touch_client_txn, client_id, self._clock.seconds())
