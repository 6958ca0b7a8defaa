# -*- test-case-name: tests.oauth.test_token_endpoint -*-
"""
The token endpoint's grants: ``authorization_code`` (with PKCE) and
``refresh_token`` (rotated on every use).

The store decides each redemption in one transaction, so two requests with
one code or one refresh token cannot both win; a replayed code or a reused
refresh token revokes the whole grant (RFC 9700), and the fan-out tells the
bearer cache and the sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import IOAuthObserver
from fjmcp.oauth import pkce
from fjmcp.oauth.challenge import MCP_SCOPE, READ_ONLY_SCOPE
from fjmcp.oauth.client_auth import ClientAuthentication
from fjmcp.oauth.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from fjmcp.oauth.fanout import RevocationListener
from fjmcp.oauth.metadata import same_resource
from fjmcp.oauth.refresh_replay import RefreshAnswers
from fjmcp.oauth.registration import redirect_matches
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.tokens import hash_secret, new_secret, remaining, token_id
from fjmcp.observers import NO_OBSERVER
from fjmcp.store.clients import ClientRecord
from fjmcp.store.grants import (
    CodeGrant,
    GrantOutcome,
    Mint,
    redeem_code_txn,
    refresh_txn,
)
from fjmcp.store.runner import TxnRunner

__all__ = ["ClientToucher", "TokenEndpoint"]

_KNOWN_SCOPES: Final = frozenset({MCP_SCOPE, READ_ONLY_SCOPE, "offline_access"})
_GRANT_TYPES: Final = ("authorization_code", "refresh_token")


class ClientToucher(Protocol):
    """`fjmcp.oauth.clients.ClientDirectory`, as the token endpoint uses it."""

    async def touch(self, client_id: str) -> None:
        """Note that the client used the token endpoint now."""


@frozen
class TokenEndpoint:
    """``POST /oauth/token``."""

    _settings: OAuthSettings
    _store: TxnRunner
    _clock: IReactorTime
    _authentication: ClientAuthentication
    _clients: ClientToucher
    _fanout: RevocationListener
    _answers: RefreshAnswers | None = None
    """Keeps refresh answers for the reuse grace (``None``: no grace)."""
    _events: IOAuthObserver = field(default=NO_OBSERVER, kw_only=True)

    log = Logger()

    async def token(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> dict[str, Any]:
        """The token endpoint: ``authorization_code`` and ``refresh_token``."""
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("grant_type is required")
        if grant_type not in _GRANT_TYPES:
            raise UnsupportedGrantTypeError(f"grant_type {grant_type[:40]!r}")
        client = await self._authentication.authenticate(form, authorization)
        if grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"this client may not use {grant_type}")
        await self._clients.touch(client.client_id)
        if grant_type == "authorization_code":
            return await self._code_grant(client, form)
        return await self._refresh_grant(client, form)

    def _mint(self, client: ClientRecord) -> tuple[Mint, str, str | None]:
        now = self._clock.seconds()
        access = new_secret()
        refresh = new_secret() if client.refresh_allowed else None
        mint = Mint(
            access_hash=hash_secret(access),
            access_expires_at=now + self._settings.access_token_ttl,
            refresh_hash=hash_secret(refresh) if refresh else None,
            refresh_expires_at=now + self._settings.refresh_token_ttl
            if refresh
            else None,
            now=now,
        )
        return mint, access, refresh

    def _answer(
        self, mint: Mint, access: str, refresh: str | None, scope: str
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": remaining(mint.now, mint.access_expires_at),
            "scope": scope,
        }
        if refresh is not None:
            answer["refresh_token"] = refresh
        return answer

    async def _code_grant(
        self, client: ClientRecord, form: Mapping[str, str]
    ) -> dict[str, Any]:
        code = form.get("code")
        verifier = form.get("code_verifier")
        redirect_uri = form.get("redirect_uri")
        if code is None:
            raise InvalidRequestError("code is required")
        if verifier is None:
            raise InvalidRequestError("code_verifier is required (PKCE)")
        if redirect_uri is None:
            raise InvalidRequestError("redirect_uri is required")
        problems: list[OAuthError] = []
        resource = form.get("resource")

        def check(stored: CodeGrant) -> str | None:
            if stored.client_id != client.client_id:
                problems.append(InvalidGrantError("code was issued to another client"))
            elif not redirect_matches(stored.redirect_uri, redirect_uri):
                problems.append(InvalidGrantError("redirect_uri does not match"))
            elif not pkce.verify(verifier, stored.code_challenge):
                problems.append(InvalidGrantError("code_verifier does not match"))
            elif resource is not None and not same_resource(resource, stored.resource):
                problems.append(InvalidTargetError("resource does not match the code"))
            return problems[0].description if problems else None

        mint, access, refresh = self._mint(client)
        outcome: GrantOutcome = await self._store.run(
            redeem_code_txn, hash_secret(code), check, mint
        )
        if outcome.status == "ok" and outcome.grant is not None:
            self.log.info(
                "code redeemed: {user} via {client_id}, token {token_id}",
                user=outcome.grant.user,
                client_id=client.client_id,
                token_id=token_id(mint.access_hash),
            )
            self._events.oauth_event(
                "grant", outcome.grant.user, client.client_id, "ok"
            )
            return self._answer(mint, access, refresh, outcome.grant.scope)
        self._events.oauth_event("grant", None, client.client_id, outcome.status)
        if outcome.status == "replayed":
            self._fanout.revoked(
                outcome.grant, outcome.revoked, "authorization code replayed"
            )
            raise InvalidGrantError("authorization code already used")
        if outcome.status == "rejected" and problems:
            raise problems[0]
        if outcome.status == "expired":
            raise InvalidGrantError("authorization code expired")
        raise InvalidGrantError("unknown authorization code")

    async def _refresh_grant(
        self, client: ClientRecord, form: Mapping[str, str]
    ) -> dict[str, Any]:
        refresh_token = form.get("refresh_token")
        if refresh_token is None:
            raise InvalidRequestError("refresh_token is required")
        requested = set(form.get("scope", MCP_SCOPE).split())
        if not requested <= _KNOWN_SCOPES:
            raise InvalidScopeError("only the mcp scope can be granted")
        resource = form.get("resource")
        if resource is not None and not same_resource(
            resource, self._settings.resource
        ):
            raise InvalidTargetError("resource must be this broker's /mcp")
        mint, access, refresh = self._mint(client)
        if refresh is None:  # pragma: no cover - refresh_token grant implies it
            raise UnauthorizedClientError("this client may not use refresh_token")
        spent = hash_secret(refresh_token)
        # The family's scope is read in the transaction; a retry's answer takes
        # it from there too, so both answers are the same.
        answer = self._answer(mint, access, refresh, MCP_SCOPE)
        keep = None
        if self._answers is not None:
            keep = self._answers.seal(spent, answer, mint.now)
        outcome: GrantOutcome = await self._store.run(
            refresh_txn, spent, client.client_id, mint, keep
        )
        grant_user = outcome.grant.user if outcome.grant is not None else None
        self._events.oauth_event(
            "refresh", grant_user, client.client_id, outcome.status
        )
        if outcome.status == "ok" and outcome.grant is not None:
            return self._answer(mint, access, refresh, outcome.grant.scope)
        if outcome.status == "retried" and outcome.answer and self._answers:
            again = self._answers.open(spent, outcome.answer)
            if again is not None and outcome.grant is not None:
                again["scope"] = outcome.grant.scope
                self.log.info(
                    "refresh retried within its grace by {client_id}",
                    client_id=client.client_id,
                )
                return again
            raise InvalidGrantError("refresh token already used")
        if outcome.status == "reused":
            self._fanout.revoked(outcome.grant, outcome.revoked, "refresh token reused")
            raise InvalidGrantError("refresh token already used; the grant is revoked")
        if outcome.status == "expired":
            raise InvalidGrantError("refresh token expired")
        if outcome.status == "revoked":
            raise InvalidGrantError("refresh token revoked")
        raise InvalidGrantError("unknown refresh token")
