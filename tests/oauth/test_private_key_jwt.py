# -*- test-case-name: tests.oauth.test_private_key_jwt -*-
"""
Tests for `fjmcp.oauth.private_key_jwt`: RFC 7523 client assertions, within
the client authentication registry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.client_auth import default_client_authentication
from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.errors import InvalidClientError
from fjmcp.oauth.private_key_jwt import ASSERTION_TYPE, PrivateKeyJwt
from fjmcp.store.clients import ClientRecord
from tests.oauth.support import MemoryStore, settle
from tests.oauth.vendor_web import SigningKey

ISSUER = "https://mcp.example.org"
TOKEN = ISSUER + "/oauth/token"
CLIENT = "https://app.example/oauth/client.json"
KEY = SigningKey()
RECORD = ClientRecord(
    CLIENT,
    "cimd",
    "private_key_jwt",
    ("authorization_code",),
    ("https://app.example/cb",),
    metadata={"jwks": KEY.jwks},
)


class _Keys:
    def __init__(self, jwks: Mapping[str, Any] | None) -> None:
        self.jwks = jwks

    async def keys_for(self, client: ClientRecord) -> Mapping[str, Any]:
        if self.jwks is None:
            raise ClientDocumentError("the JWKS could not be fetched")
        return self.jwks


class _Clients:
    async def find(self, client_id: str) -> ClientRecord | None:
        return RECORD if client_id == CLIENT else None


class _Setup:
    def __init__(self, jwks: Mapping[str, Any] | None = KEY.jwks) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.store = MemoryStore()
        self.registry = default_client_authentication(
            _Clients(),
            PrivateKeyJwt(ISSUER, TOKEN, self.clock, _Keys(jwks), self.store),
        )

    def form(self, assertion: str, **extra: str) -> dict[str, str]:
        return {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **extra,
        }

    def authenticate(self, form: Mapping[str, str]) -> ClientRecord | Failure:
        return settle(self.registry.authenticate(form, None))

    def assertion(self, **claims: Any) -> str:
        return KEY.assertion(CLIENT, TOKEN, self.clock.seconds(), **claims)


def _refused(result: Any, words: str) -> None:
    assert isinstance(result, Failure), result
    assert result.check(InvalidClientError), result
    assert words in str(result.value), result.value


def test_a_valid_assertion_authenticates_the_client_once() -> None:
    """The signed assertion proves the client; its jti cannot be replayed."""
    s = _Setup()
    assertion = s.assertion()
    assert s.authenticate(s.form(assertion)) == RECORD
    _refused(s.authenticate(s.form(assertion)), "already used")


@pytest.mark.parametrize("aud", [ISSUER, TOKEN, [TOKEN, "https://x.example"]])
def test_the_audience_may_be_the_issuer_or_the_token_endpoint(aud: Any) -> None:
    """aud names the issuer or the token endpoint (string or list)."""
    s = _Setup()
    assert s.authenticate(s.form(s.assertion(aud=aud), client_id=CLIENT)) == RECORD


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "https://other.example/token"}, "refused"),
        ({"iss": "https://evil.example/c"}, "refused"),
        ({"sub": "https://evil.example/c"}, "unknown client"),
        ({"exp": None}, "refused"),
        ({"jti": None}, "refused"),
        ({"exp": 999_000}, "expired"),
        ({"exp": 1_000_000 + 3600}, "expire within"),
        ({"nbf": 1_000_000 + 600}, "future"),
        ({"iat": 1_000_000 + 600}, "future"),
        ({"jti": "x" * 600}, "jti"),
    ],
)
def test_bad_claims_are_refused(claims: dict[str, Any], words: str) -> None:
    """Audience, issuer, subject, times and jti are all checked."""
    s = _Setup()
    _refused(s.authenticate(s.form(s.assertion(**claims))), words)


def test_a_foreign_key_or_unknown_kid_is_refused() -> None:
    """An assertion signed by another key does not verify."""
    s = _Setup()
    other = SigningKey(kid="k1")
    forged = other.assertion(CLIENT, TOKEN, s.clock.seconds())
    _refused(s.authenticate(s.form(forged)), "signature")
    stranger = SigningKey(kid="zz").assertion(CLIENT, TOKEN, s.clock.seconds())
    _refused(s.authenticate(s.form(stranger)), "no key")


def test_unsigned_and_symmetric_assertions_are_refused() -> None:
    """alg none and HS256 (keyed with public material) never pass."""
    s = _Setup()
    now = s.clock.seconds()
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN, "exp": now + 60, "jti": "j"}
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(s.authenticate(s.form(f"{header}.{body}.")), "signed with one of")
    hs = jwt.encode(claims, "k" * 32, algorithm="HS256")
    _refused(s.authenticate(s.form(hs)), "signed with one of")


def test_private_key_material_in_a_jwks_is_never_used() -> None:
    """A JWKS entry carrying a private part is ignored."""
    private = {**KEY.jwk, "d": "secret"}
    s = _Setup(jwks={"keys": [private]})
    _refused(s.authenticate(s.form(s.assertion())), "no key")


def test_unavailable_keys_are_an_invalid_client() -> None:
    """When the JWKS cannot be fetched, the client is not authenticated."""
    s = _Setup(jwks=None)
    _refused(s.authenticate(s.form(s.assertion())), "keys are unavailable")


@pytest.mark.parametrize(
    "form",
    [
        {"client_assertion_type": "urn:other", "client_assertion": "a.b.c"},
        {"client_assertion_type": ASSERTION_TYPE},
        {"client_assertion": "a.b.c"},
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "x" * 20000},
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "garbage"},
    ],
)
def test_malformed_assertions_are_refused(form: dict[str, str]) -> None:
    """Malformed assertion parameters are invalid_client, never a crash."""
    s = _Setup()
    result = s.authenticate({**form, "client_id": CLIENT})
    assert isinstance(result, Failure) and result.check(InvalidClientError)


def test_the_registry_advertises_the_signing_algorithms() -> None:
    """private_key_jwt adds its method and algorithms; DCR may not choose it."""
    s = _Setup()
    assert "private_key_jwt" in s.registry.methods
    assert "private_key_jwt" not in s.registry.registrable_methods
    assert "ES256" in s.registry.signing_algs and "HS256" not in s.registry.signing_algs


def test_a_public_client_may_not_present_an_assertion() -> None:
    """A client registered as none that sends an assertion is refused."""

    class _Public:
        async def find(self, client_id: str) -> ClientRecord | None:
            return ClientRecord(CLIENT, "cimd", "none", ("authorization_code",), ())

    clock = Clock()
    registry = default_client_authentication(
        _Public(), PrivateKeyJwt(ISSUER, TOKEN, clock, _Keys(KEY.jwks), MemoryStore())
    )
    form = {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": KEY.assertion(CLIENT, TOKEN, clock.seconds()),
    }
    _refused(settle(registry.authenticate(form, None)), "authenticates with none")
