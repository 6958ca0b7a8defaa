# -*- test-case-name: tests.standin.test_app -*-
"""
Helpers for tests that drive the stand-in Forgejo in memory (``StubTreq``).

Shared by the stand-in's own tests and the Forgejo client's tests; other
components' tests may use them to get real Forgejo tokens from a stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.standin.app import StandinClient, StandinConfig, StandinForgejo, StandinUser

T = TypeVar("T")

ISSUER = "http://forgejo.test"
REDIRECT_URI = "http://127.0.0.1:8080/oauth/callback"
CLIENT_ID = "broker-client"
CLIENT_SECRET = "broker-secret-value"  # noqa: S105 (a test value)
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_REDIRECT_URI = "http://127.0.0.1:9999/cb?keep=1"
ALICE = StandinUser("alice", "alice-password", full_name="Alice A.")
BOB = StandinUser("bob", "bob-password")


def standin_config(**overrides: Any) -> StandinConfig:
    """A stand-in with alice and bob, one confidential and one public client."""
    values: dict[str, Any] = {
        "users": (ALICE, BOB),
        "clients": (
            StandinClient(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,)),
            StandinClient(PUBLIC_CLIENT_ID, None, (PUBLIC_REDIRECT_URI,)),
        ),
    }
    values.update(overrides)
    return StandinConfig(**values)


def make_standin(clock: Clock | None = None, **overrides: Any) -> StandinForgejo:
    """A stand-in on ``clock`` (a fresh `Clock` by default)."""
    return StandinForgejo(
        standin_config(**overrides), clock=clock or Clock(), base_url=ISSUER
    )


def result_of(d: Deferred[T]) -> T:
    """The result of an already-fired Deferred (failures are raised)."""
    results: list[T | Failure] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE (verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_params(
    challenge: str,
    *,
    client_id: str = CLIENT_ID,
    redirect_uri: str = REDIRECT_URI,
    state: str = "state-1",
) -> dict[str, str]:
    """The query of a well-formed authorize request."""
    return {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def csrf_of(page: str) -> str:
    """The login form's ``_csrf`` value."""
    match = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert match, "no _csrf field in the login form"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect ``Location`` (one value each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def log_in(
    stub: Any,
    params: dict[str, str],
    user: StandinUser = ALICE,
    password: str | None = None,
) -> Any:
    """GET the form, POST the credentials; returns the POST's response."""
    page = result_of(stub.get(f"{ISSUER}/login/oauth/authorize", params=params))
    assert page.code == 200
    csrf = csrf_of(result_of(page.text()))
    form = {
        **params,
        "_csrf": csrf,
        "user_name": user.login,
        "password": user.password if password is None else password,
    }
    return result_of(
        stub.post(f"{ISSUER}/login/oauth/authorize", data=form, allow_redirects=False)
    )


def get_code(
    stub: Any, user: StandinUser = ALICE, **param_overrides: str
) -> tuple[str, str]:
    """Log ``user`` in through the form; returns (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    params = {**authorize_params(challenge), **param_overrides}
    response = log_in(stub, params, user)
    assert response.code == 303, response.code
    location = response.headers.getRawHeaders("location")[0]
    return query_of(location)["code"], verifier


def token_request(stub: Any, form: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
    """POST to the token endpoint; returns (status, decoded JSON)."""
    response = result_of(
        stub.post(f"{ISSUER}/login/oauth/access_token", data=form, **kwargs)
    )
    return response.code, result_of(response.json())


def exchange(stub: Any, code: str, verifier: str, **extra: str) -> tuple[int, Any]:
    """Exchange ``code`` as the confidential client (secret in the body)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return token_request(stub, form)


def refresh(stub: Any, refresh_token: str, **extra: str) -> tuple[int, Any]:
    """Refresh as the confidential client (secret in the body)."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return token_request(stub, form)


def api_user(stub: Any, authorization: str | None) -> tuple[int, Any]:
    """GET /api/v1/user with the given Authorization header value."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = result_of(stub.get(f"{ISSUER}/api/v1/user", headers=headers))
    return response.code, result_of(response.json())
