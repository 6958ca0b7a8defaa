# -*- test-case-name: tests.oauth.test_registrar -*-
"""Tests for `fjmcp.oauth.registrar`: registrations become stored clients."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.errors import InvalidRedirectUriError
from fjmcp.oauth.registrar import Registrar
from fjmcp.oauth.tokens import hash_secret
from fjmcp.store.clients import ClientRecord
from tests.oauth.support import settle


class _Clients:
    def __init__(self) -> None:
        self.added: list[ClientRecord] = []

    async def add(self, record: ClientRecord) -> None:
        self.added.append(record)


def _registrar(clients: _Clients) -> Registrar:
    clock = Clock()
    clock.advance(1000.5)
    return Registrar(clients, clock)


def _register(registrar: Registrar, document: object) -> object:
    return settle(registrar.register(document))


def test_confidential_client_gets_a_secret_stored_as_digest() -> None:
    """A confidential client's answer holds its secret; the record only its digest."""
    clients = _Clients()
    answer = _register(
        _registrar(clients),
        {"redirect_uris": ["https://app.example/cb"], "client_name": "App"},
    )
    assert isinstance(answer, dict)
    (record,) = clients.added
    assert record.client_id == answer["client_id"]
    assert record.auth_method == "client_secret_basic"
    assert record.secret_hash == hash_secret(answer["client_secret"])
    assert answer["client_secret_expires_at"] == 0
    assert answer["client_id_issued_at"] == 1000
    assert (record.kind, record.created_at, record.client_name) == (
        "dcr",
        1000.5,
        "App",
    )


def test_public_client_gets_no_secret() -> None:
    """A client registering method none gets no secret and none is stored."""
    clients = _Clients()
    answer = _register(
        _registrar(clients),
        {
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert isinstance(answer, dict) and "client_secret" not in answer
    assert clients.added[0].secret_hash is None


def test_an_invalid_document_stores_nothing() -> None:
    """A refused registration raises its RFC 7591 error and adds no client."""
    clients = _Clients()
    result = _register(_registrar(clients), {"redirect_uris": ["http://x.example/"]})
    assert isinstance(result, Failure) and result.check(InvalidRedirectUriError)
    assert clients.added == []
