# -*- test-case-name: tests.oauth.test_registrar -*-
"""
Dynamic client registration (RFC 7591): a validated document becomes a
stored client with a fresh id, and a secret for confidential clients.

The secret is shown once, in the answer; only its digest is stored.
"""

from __future__ import annotations

from typing import Any, Protocol

from attrs import frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.oauth.registration import REGISTRABLE_METHODS, validate_registration
from fjmcp.oauth.tokens import hash_secret, new_client_id, new_secret
from fjmcp.store.clients import ClientRecord

__all__ = ["ClientAdder", "Registrar"]


class ClientAdder(Protocol):
    """Where new clients go (`fjmcp.oauth.clients.ClientDirectory`)."""

    async def add(self, record: ClientRecord) -> None:
        """Store a newly registered client."""


@frozen
class Registrar:
    """Registers clients that ask at ``/oauth/register``."""

    _clients: ClientAdder
    _clock: IReactorTime
    _auth_methods: tuple[str, ...] = REGISTRABLE_METHODS

    log = Logger()

    async def register(self, document: Any) -> dict[str, Any]:
        """Store a new client; the answer holds its id (and secret)."""
        registration = validate_registration(document, self._auth_methods)
        now = self._clock.seconds()
        client_id = new_client_id()
        secret = new_secret() if registration.auth_method != "none" else None
        await self._clients.add(
            ClientRecord(
                client_id=client_id,
                kind="dcr",
                auth_method=registration.auth_method,
                grant_types=registration.grant_types,
                redirect_uris=registration.redirect_uris,
                client_name=registration.client_name,
                metadata=registration.metadata,
                secret_hash=hash_secret(secret) if secret else None,
                created_at=now,
            )
        )
        self.log.info(
            "registered client {client_id} ({name}, {method})",
            client_id=client_id,
            name=registration.client_name or "unnamed",
            method=registration.auth_method,
        )
        answer = dict(registration.metadata)
        answer["client_id"] = client_id
        answer["client_id_issued_at"] = int(now)
        if secret is not None:
            answer["client_secret"] = secret
            answer["client_secret_expires_at"] = 0
        return answer
