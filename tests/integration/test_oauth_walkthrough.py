# -*- test-case-name: tests.integration.test_oauth_walkthrough -*-
"""
The OAuth walk-through over real loopback sockets: the broker's OAuth
routes (real store on disk, real key ring, real Forgejo client) and the
stand-in Forgejo, each on its own 127.0.0.1 port, driven by a real HTTP
client acting as browser and MCP client:

register -> authorize -> consent -> stand-in login -> callback -> token ->
bearer accepted (the Identity the authenticator returns) -> refresh ->
revoke -> rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_twisted
from attrs import define, field
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from fjmcp.config import Config
from fjmcp.interfaces import Identity, InvalidToken, UpstreamGrant
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.pkce import new_verifier, s256
from fjmcp.oauth.server import build_authorization_server
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.settings import oauth_settings
from fjmcp.standin.app import (
    StandinClient,
    StandinConfig,
    StandinUser,
    start_standin,
)
from fjmcp.store.store import Store, open_store
from fjmcp.upstream.forgejo import ForgejoClient, ForgejoSettings
from fjmcp.web.oauth_routes import OAuthRoutes
from fjmcp.web.root import build_root

pytestmark = pytest.mark.integration

reactor: Any = _reactor
FORGEJO_CLIENT = "fjmcp-broker"
FORGEJO_SECRET = "walkthrough-forgejo-secret"  # noqa: S105 - a test value
ALICE = StandinUser("alice", "alice-password", full_name="Alice")
REDIRECT = "http://127.0.0.1:45999/callback"


class _NoSessions:
    """No session layer in this walk-through: nothing to end."""

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        """Nothing runs for anyone."""
        return succeed(None)

    def owners_of_grant(self, user: str, client_id: str) -> list[object]:
        """No sessions."""
        return []


class _Swap(Resource):
    """A root whose real resource is set once the ports are known."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.target: Any = None

    def render(self, request: Any) -> Any:
        return self.target.render(request)


@define
class Browser:
    """A real HTTP client that keeps cookies per origin, like a browser."""

    agent: Agent
    pool: HTTPConnectionPool
    cookies: dict[str, dict[str, str]] = field(factory=dict)

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """One request, no redirect following; (response, body)."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        jar = self.cookies.setdefault(origin, {})
        # A fresh client per request: its cookie jar only carries what this
        # browser holds for the origin (treq would otherwise remember more).
        response = await HTTPClient(self.agent).request(
            method, url, allow_redirects=False, cookies=dict(jar), **kwargs
        )
        for header in response.headers.getRawHeaders(b"set-cookie", []):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header.decode("ascii"))
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0":
                    jar.pop(name, None)
                else:
                    jar[name] = morsel.value
        body = await response.content()
        return response, body


def _location(response: Any) -> str:
    value: str = response.headers.getRawHeaders("location")[0]
    return value


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _field(html: bytes, name: str) -> str:
    match = re.search(rb'name="' + name.encode() + rb'" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1).decode()


@define
class Deployment:
    """The broker's OAuth side and the stand-in, both listening."""

    public_url: str
    standin_url: str
    store: Store
    bearer: BearerAuthenticator
    upstream: UpstreamTokens
    standin: Any


async def _stopped(port: Any) -> None:
    result = port.stopListening()
    if isinstance(result, Deferred):
        await result


@pytest_twisted.async_yield_fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    root = _Swap()
    broker_port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    public_url = f"http://127.0.0.1:{broker_port.getHost().port}"
    standin, standin_port = await start_standin(
        reactor,
        StandinConfig(
            users=(ALICE,),
            clients=(
                StandinClient(
                    FORGEJO_CLIENT, FORGEJO_SECRET, (public_url + "/oauth/callback",)
                ),
            ),
        ),
    )
    config = Config(
        public_url=public_url,
        forgejo_url=standin.base_url,
        forgejo_client_id=FORGEJO_CLIENT,
        forgejo_client_secret=FORGEJO_SECRET,
        child_command=("/bin/true",),
        store_path=str(tmp_path / "fjmcp.sqlite3"),
    )
    store = await open_store(reactor, config.store_path)
    keys = KeyRing.generate()
    forgejo = ForgejoClient.from_reactor(
        reactor,
        ForgejoSettings(
            base_url=config.forgejo_url,
            client_id=FORGEJO_CLIENT,
            client_secret=FORGEJO_SECRET,
            timeout=5.0,
        ),
    )
    upstream = UpstreamTokens(store, keys, reactor)
    bearer = BearerAuthenticator(store, reactor, config.mcp_url)
    server = build_authorization_server(
        oauth_settings(config),
        store,
        reactor,
        keys,
        forgejo,
        upstream,
        bearer,
        _NoSessions(),
        memberships=lambda user, orgs: None,
    )
    root.target = build_root([OAuthRoutes(server).app])
    try:
        yield Deployment(public_url, standin.base_url, store, bearer, upstream, standin)
    finally:
        await forgejo.close()
        await _stopped(broker_port)
        await _stopped(standin_port)
        await store.close()


@pytest_twisted.async_yield_fixture
async def browser() -> AsyncIterator[Browser]:
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, connectTimeout=5, pool=pool)
    yield Browser(agent, pool)
    await pool.closeCachedConnections()


async def _check(bearer: BearerAuthenticator, token: str) -> Identity | InvalidToken:
    d: Deferred[Identity] = bearer.authenticate(b"Bearer " + token.encode())
    try:
        return await d
    except InvalidToken as e:
        return e


@pytest_twisted.ensureDeferred
async def test_walkthrough(deployment: Deployment, browser: Browser) -> None:
    """register -> consent -> Forgejo login -> token -> bearer -> refresh -> revoke."""
    base = deployment.public_url

    # Discovery.
    response, body = await browser.request(
        "GET", base + "/.well-known/oauth-protected-resource/mcp"
    )
    assert response.code == 200 and base.encode() in body

    # Dynamic registration (a public client with refresh tokens).
    response, body = await browser.request(
        "POST",
        base + "/oauth/register",
        json={
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Walkthrough client",
        },
    )
    assert response.code == 201, body
    client_id = json.loads(body)["client_id"]

    # Authorize: the consent page.
    verifier = new_verifier()
    response, body = await browser.request(
        "GET",
        base + "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "state": "walk-state",
            "scope": "mcp offline_access",
            "resource": base + "/mcp",
        },
    )
    assert response.code == 200, body
    assert b"Walkthrough client" in body and b"127.0.0.1" in body
    assert response.headers.getRawHeaders(b"x-frame-options") == [b"DENY"]

    # Allow: off to the stand-in Forgejo.
    response, body = await browser.request(
        "POST",
        base + "/oauth/consent",
        data={
            "request": _field(body, "request"),
            "csrf": _field(body, "csrf"),
            "decision": "allow",
        },
    )
    assert response.code == 303, body
    forgejo_login = _location(response)
    assert forgejo_login.startswith(deployment.standin_url)

    # Log in at the stand-in's form.
    response, body = await browser.request("GET", forgejo_login)
    assert response.code == 200
    form = {
        **_query(forgejo_login),
        "_csrf": _field(body, "_csrf"),
        "user_name": ALICE.login,
        "password": ALICE.password,
    }
    response, body = await browser.request(
        "POST", deployment.standin_url + "/login/oauth/authorize", data=form
    )
    assert response.code in (302, 303), body
    callback = _location(response)
    assert callback.startswith(base + "/oauth/callback")

    # The callback: code, state and iss for the client.
    response, body = await browser.request("GET", callback)
    assert response.code == 302, body
    answer = _query(_location(response))
    assert _location(response).startswith(REDIRECT)
    assert answer["state"] == "walk-state" and answer["iss"] == base

    # Token.
    token_url = base + "/oauth/token"
    response, body = await browser.request(
        "POST",
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "resource": base + "/mcp",
        },
    )
    assert response.code == 200, body
    tokens = json.loads(body)
    assert response.headers.getRawHeaders(b"cache-control") == [b"no-store"]

    # The bearer check accepts it and names the user and client.
    identity = await _check(deployment.bearer, tokens["access_token"])
    assert isinstance(identity, Identity)
    assert (identity.user, identity.client_id, identity.scopes) == (
        "alice",
        client_id,
        ("mcp",),
    )
    # ... and the user's Forgejo token is stored, current and accepted by Forgejo.
    upstream = await deployment.upstream.current(UpstreamGrant("alice"))
    assert upstream.generation == 1
    user = deployment.standin._user_of_token(upstream.access_token)
    assert user is not None and user.login == "alice"

    # Refresh (rotation).
    response, body = await browser.request(
        "POST",
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert response.code == 200, body
    refreshed = json.loads(body)
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert isinstance(
        await _check(deployment.bearer, refreshed["access_token"]), Identity
    )

    # Revoke: the grant ends, the bearer check refuses at once.
    response, body = await browser.request(
        "POST",
        base + "/oauth/revoke",
        data={"token": refreshed["refresh_token"], "client_id": client_id},
    )
    assert response.code == 200, body
    refused = await _check(deployment.bearer, refreshed["access_token"])
    assert isinstance(refused, InvalidToken) and refused.token_sent
    refused = await _check(deployment.bearer, tokens["access_token"])
    assert isinstance(refused, InvalidToken)
    response, body = await browser.request(
        "POST",
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": client_id,
        },
    )
    assert response.code == 400 and b"invalid_grant" in body
