# -*- test-case-name: tests.oauth.test_token_endpoint -*-
"""
Tests for `fjmcp.oauth.token_endpoint` and `fjmcp.oauth.revocation` at
their seams: what they report to their `RevocationListener`. Codes and
tokens come from a full login on the in-memory broker.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field
from twisted.python.failure import Failure

from fjmcp.oauth.client_auth import default_client_authentication
from fjmcp.oauth.clients import ClientDirectory
from fjmcp.oauth.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnsupportedGrantTypeError,
)
from fjmcp.oauth.revocation import RevocationEndpoint
from fjmcp.oauth.token_endpoint import TokenEndpoint
from fjmcp.store.grants import Grant
from tests.oauth.support import settle
from tests.web.oauth_harness import Broker


@define
class _Listener:
    """Records the revocations reported."""

    heard: list[tuple[Grant | None, tuple[str, ...], str]] = field(factory=list)

    def revoked(
        self, grant: Grant | None, hashes: tuple[str, ...], reason: str
    ) -> None:
        self.heard.append((grant, hashes, reason))


def _endpoints(broker: Broker) -> tuple[TokenEndpoint, RevocationEndpoint, _Listener]:
    listener = _Listener()
    clients = ClientDirectory(broker.store, broker.clock)
    authentication = default_client_authentication(clients)
    tokens = TokenEndpoint(
        broker.settings, broker.store, broker.clock, authentication, clients, listener
    )
    revocation = RevocationEndpoint(
        broker.store, broker.clock, authentication, listener
    )
    return tokens, revocation, listener


def _code_form(client: dict[str, Any], code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": client["redirect_uris"][0],
        "client_id": client["client_id"],
    }


def test_code_grant_answers_tokens_and_reports_nothing() -> None:
    """A first redemption answers a bearer pair; no revocation is reported."""
    broker = Broker()
    tokens, _, listener = _endpoints(broker)
    client = broker.register()
    code, verifier, _ = broker.login(client)
    answer = settle(tokens.token(_code_form(client, code, verifier), None))
    assert isinstance(answer, dict)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert "refresh_token" in answer and answer["scope"] == "mcp"
    assert listener.heard == []


def test_a_replayed_code_is_reported_with_the_tokens_it_minted() -> None:
    """A second redemption fails and reports the revoked grant and its tokens."""
    broker = Broker()
    tokens, _, listener = _endpoints(broker)
    client = broker.register()
    code, verifier, _ = broker.login(client)
    form = _code_form(client, code, verifier)
    settle(tokens.token(form, None))
    again = settle(tokens.token(form, None))
    assert isinstance(again, Failure) and again.check(InvalidGrantError)
    ((grant, hashes, reason),) = listener.heard
    assert grant is not None and grant.client_id == client["client_id"]
    assert grant.user == "alice" and len(hashes) == 2
    assert reason == "authorization code replayed"


def test_a_reused_refresh_token_is_reported() -> None:
    """Refreshing twice with one token reports the family's revocation."""
    broker = Broker()
    tokens, _, listener = _endpoints(broker)
    client = broker.register()
    pair = broker.tokens_for(client)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": pair["refresh_token"],
        "client_id": client["client_id"],
    }
    assert isinstance(settle(tokens.token(form, None)), dict)
    assert isinstance(settle(tokens.token(form, None)), Failure)
    assert [reason for _, _, reason in listener.heard] == ["refresh token reused"]


def test_grant_type_is_checked_before_the_client() -> None:
    """A missing or unknown grant_type is refused before any client lookup."""
    broker = Broker()
    tokens, _, _ = _endpoints(broker)
    runs = broker.store.runs
    missing = settle(tokens.token({}, None))
    assert isinstance(missing, Failure) and missing.check(InvalidRequestError)
    unknown = settle(tokens.token({"grant_type": "password"}, None))
    assert isinstance(unknown, Failure) and unknown.check(UnsupportedGrantTypeError)
    assert broker.store.runs == runs


def test_revocation_reports_the_grant_and_its_tokens() -> None:
    """Revoking a token reports its grant and live tokens; again, no tokens left."""
    broker = Broker()
    _, revocation, listener = _endpoints(broker)
    client = broker.register()
    pair = broker.tokens_for(client)
    form = {"token": pair["access_token"], "client_id": client["client_id"]}
    assert settle(revocation.revoke(form, None)) is None
    assert settle(revocation.revoke(form, None)) is None
    (grant, hashes, reason), (again, none_left, _) = listener.heard
    assert grant is not None and grant.user == "alice" and again == grant
    assert reason == "revoked by the client" and len(hashes) == 2
    assert none_left == ()


def test_revocation_of_another_clients_token_changes_nothing() -> None:
    """Another client's token is answered the same, with nothing reported."""
    broker = Broker()
    _, revocation, listener = _endpoints(broker)
    owner, other = broker.register(), broker.register()
    pair = broker.tokens_for(owner)
    form = {"token": pair["access_token"], "client_id": other["client_id"]}
    assert settle(revocation.revoke(form, None)) is None
    assert listener.heard == []
    assert broker.bearer_ok(pair["access_token"])


def test_revocation_needs_a_token() -> None:
    """A revocation without token is invalid_request."""
    broker = Broker()
    _, revocation, _ = _endpoints(broker)
    client = broker.register()
    result = settle(revocation.revoke({"client_id": client["client_id"]}, None))
    assert isinstance(result, Failure) and result.check(InvalidRequestError)
