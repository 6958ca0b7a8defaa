# -*- test-case-name: tests.oauth.test_token_endpoint -*-
"""
The revocation endpoint (RFC 7009): a client ends one of its grants.

Unknown tokens and other clients' tokens are answered the same way, with
nothing changed, so this endpoint is no oracle for token validity.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.interfaces import IOAuthObserver
from fjmcp.oauth.client_auth import ClientAuthentication
from fjmcp.oauth.errors import InvalidRequestError
from fjmcp.oauth.fanout import RevocationListener
from fjmcp.oauth.tokens import hash_secret
from fjmcp.observers import NO_OBSERVER
from fjmcp.store.grants import GrantOutcome, revoke_token_txn
from fjmcp.store.runner import TxnRunner

__all__ = ["RevocationEndpoint"]


@frozen
class RevocationEndpoint:
    """``POST /oauth/revoke``."""

    _store: TxnRunner
    _clock: IReactorTime
    _authentication: ClientAuthentication
    _fanout: RevocationListener
    _events: IOAuthObserver = field(default=NO_OBSERVER, kw_only=True)

    async def revoke(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> None:
        """Revoke an access or refresh token of the calling client (its whole grant)."""
        client = await self._authentication.authenticate(form, authorization)
        token = form.get("token")
        if token is None:
            raise InvalidRequestError("token is required")
        outcome: GrantOutcome = await self._store.run(
            revoke_token_txn,
            hash_secret(token),
            client.client_id,
            self._clock.seconds(),
        )
        user = outcome.grant.user if outcome.grant is not None else None
        self._events.oauth_event("revocation", user, client.client_id, outcome.status)
        if outcome.status == "ok":
            self._fanout.revoked(
                outcome.grant, outcome.revoked, "revoked by the client"
            )
