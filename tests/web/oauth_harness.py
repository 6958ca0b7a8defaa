# -*- test-case-name: tests.web.test_oauth_routes -*-
"""
An in-memory broker for the OAuth route tests: the Klein routes over a
memory store and a fake clock, logging in at the stand-in Forgejo through
``StubTreq``, with a small browser (cookie jar, one request at a time).
"""

from __future__ import annotations

import base64
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from fjmcp.interfaces import UpstreamGrant, UpstreamToken
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.document_clients import DocumentClients
from fjmcp.oauth.document_fetch import GuardedFetcher
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.known_clients import KnownClients
from fjmcp.oauth.server import build_authorization_server
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.settings import oauth_settings
from fjmcp.upstream.forgejo import ForgejoClient
from fjmcp.web.oauth_routes import OAuthRoutes
from fjmcp.web.ratelimit import RateLimits, RateLimitSettings
from tests.oauth.support import PUBLIC_URL, MemoryStore, make_config
from tests.oauth.vendor_web import VendorWeb
from tests.standin.support import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    csrf_of,
    make_standin,
    pkce_pair,
    result_of,
)

__all__ = ["Broker", "query_of"]


def _stub(resource: Any) -> Any:
    """A fresh in-memory HTTP client (untyped, like treq's testing module)."""
    return StubTreq(resource)


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a URL (one value each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class RecordingSessions:
    """An `ISessionControl` that records what it was asked to end."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, str]] = []
        self.rotated: list[UpstreamToken] = []
        self.live: dict[tuple[str, str], int] = {}

    def live_users(self) -> frozenset[str]:
        return frozenset()

    def live_grants(self) -> frozenset[UpstreamGrant]:
        return frozenset()

    def end_user(self, user: str, reason: str) -> Deferred[None]:
        self.ended.append((user, "*", reason))
        return succeed(None)

    def end_user_client(self, user: str, client_id: str, reason: str) -> Deferred[None]:
        self.ended.append((user, client_id, reason))
        return succeed(None)

    def token_rotated(self, token: UpstreamToken) -> None:
        self.rotated.append(token)

    def owners_of_grant(self, user: str, client_id: str) -> list[Any]:
        """Sessions of one grant: ``live[(user, client_id)]`` of them."""
        return [object()] * self.live.get((user, client_id), 0)


class Broker:
    """The OAuth routes in memory, with a browser talking to them."""

    def __init__(
        self,
        store: MemoryStore | None = None,
        limits: RateLimitSettings | None = None,
        vendors: VendorWeb | None = None,
        **config: Any,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.config = make_config(**config)
        self.store = store or MemoryStore()
        self.keys = KeyRing.generate()
        self.standin = make_standin(self.clock)
        forgejo_http: Any = StubTreq(self.standin.app.resource())
        self.forgejo = ForgejoClient(
            forgejo_http,
            ISSUER,
            CLIENT_ID,
            CLIENT_SECRET,
            clock=self.clock,
        )
        self.upstream = UpstreamTokens(self.store, self.keys, self.clock)
        self.bearer = BearerAuthenticator(self.store, self.clock, self.config.mcp_url)
        self.sessions = RecordingSessions()
        self.memberships: dict[str, frozenset[str]] = {}
        self.settings = oauth_settings(self.config)
        # The vendors' web, where client metadata documents and JWKS live.
        self.vendors = vendors or VendorWeb()
        self.documents = DocumentClients(
            self.store,
            self.clock,
            KnownClients.build(self.config.known_clients),
            GuardedFetcher(self.vendors.client(), self.clock),
        )
        self.server = build_authorization_server(
            self.settings,
            self.store,
            self.clock,
            self.keys,
            self.forgejo,
            self.upstream,
            self.bearer,
            self.sessions,
            documents=self.documents,
            memberships=self.memberships.__setitem__,
        )
        self.limits = None if limits is None else RateLimits(limits, self.clock)
        self.routes = OAuthRoutes(self.server, limits=self.limits)
        self.resource: Any = self.routes.app.resource()
        self.cookies: dict[str, str] = {}

    # --- raw HTTP ---------------------------------------------------------------

    def _keep_cookies(self, response: Any) -> None:
        for header in response.headers.getRawHeaders(b"set-cookie", []):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header.decode("ascii"))
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request to the broker; cookies kept like a browser."""
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("cookies", dict(self.cookies))
        # A fresh client each time: treq's own cookie jar must not act as a
        # second browser memory; self.cookies is the only one.
        response = result_of(
            _stub(self.resource).request(
                method, PUBLIC_URL + path if path.startswith("/") else path, **kwargs
            )
        )
        self._keep_cookies(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET on the broker."""
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: Any, **kwargs: Any) -> Any:
        """POST a form to the broker."""
        return self.request("POST", path, data=data, **kwargs)

    def json_of(self, response: Any) -> Any:
        """A response's JSON body."""
        return result_of(response.json())

    def text_of(self, response: Any) -> str:
        """A response's text body."""
        return str(result_of(response.text()))

    # --- flows ----------------------------------------------------------------------

    def register(self, **metadata: Any) -> dict[str, Any]:
        """Register a client (public loopback by default); its registration."""
        body = {
            "redirect_uris": ["https://app.example/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Example App",
        }
        body.update(metadata)
        body = {k: v for k, v in body.items() if v is not None}
        response = self.request("POST", "/oauth/register", json=body)
        assert response.code == 201, self.text_of(response)
        answer: dict[str, Any] = self.json_of(response)
        return answer

    def authorize_params(
        self, client: dict[str, Any], challenge: str, **overrides: str
    ) -> dict[str, str]:
        """A well-formed authorization request for ``client``."""
        params = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": client["redirect_uris"][0],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "client-state-1",
            "scope": "mcp",
            "resource": self.config.mcp_url,
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(
        self, client: dict[str, Any], challenge: str, **overrides: str
    ) -> Any:
        """GET /oauth/authorize."""
        return self.get(
            "/oauth/authorize",
            params=self.authorize_params(client, challenge, **overrides),
        )

    def consent_form(self, page: Any) -> dict[str, str]:
        """The hidden fields of a consent page."""
        import re

        text = self.text_of(page)
        fields = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', text))
        assert set(fields) == {"request", "csrf"}, text
        return fields

    def forgejo_login(self, location: str, user: Any = ALICE) -> str:
        """Log in at the stand-in (form); the broker's callback URL it sends to."""
        forgejo = _stub(self.standin.app.resource())
        params = query_of(location)
        page = result_of(forgejo.get(f"{ISSUER}/login/oauth/authorize", params=params))
        assert page.code == 200
        form = {
            **params,
            "_csrf": csrf_of(result_of(page.text())),
            "user_name": user.login,
            "password": user.password,
        }
        answer = result_of(
            forgejo.post(
                f"{ISSUER}/login/oauth/authorize", data=form, allow_redirects=False
            )
        )
        assert answer.code in (302, 303), answer.code
        callback: str = answer.headers.getRawHeaders("location")[0]
        return callback

    def login(
        self, client: dict[str, Any], user: Any = ALICE, **overrides: str
    ) -> tuple[str, str, Any]:
        """
        Authorize -> consent (if shown) -> Forgejo login -> callback; returns
        (code, verifier, the callback's response).
        """
        verifier, challenge = pkce_pair()
        response = self.authorize(client, challenge, **overrides)
        if response.code == 200:
            fields = self.consent_form(response)
            response = self.post_form("/oauth/consent", {**fields, "decision": "allow"})
            assert response.code == 303, self.text_of(response)
        assert response.code in (302, 303), self.text_of(response)
        location = response.headers.getRawHeaders("location")[0]
        assert location.startswith(ISSUER), location
        callback = self.forgejo_login(location, user)
        answer = self.get(callback)
        assert answer.code == 302, self.text_of(answer)
        redirect = answer.headers.getRawHeaders("location")[0]
        return query_of(redirect).get("code", ""), verifier, answer

    def token(
        self, form: dict[str, str], client: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """POST /oauth/token, authenticating as ``client`` per its method."""
        form = dict(form)
        headers = kwargs.pop("headers", {})
        if client is not None:
            method = client.get("token_endpoint_auth_method")
            if method == "client_secret_basic":
                raw = f"{client['client_id']}:{client['client_secret']}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            elif method == "client_secret_post":
                form.setdefault("client_id", client["client_id"])
                form.setdefault("client_secret", client["client_secret"])
            else:
                form.setdefault("client_id", client["client_id"])
        return self.post_form("/oauth/token", form, headers=headers, **kwargs)

    def exchange(
        self, client: dict[str, Any], code: str, verifier: str, **extra: str
    ) -> Any:
        """Redeem a code."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": client["redirect_uris"][0],
            "resource": self.config.mcp_url,
            **extra,
        }
        return self.token(form, client)

    def tokens_for(self, client: dict[str, Any]) -> dict[str, Any]:
        """A full login and code exchange; the token answer."""
        code, verifier, _ = self.login(client)
        response = self.exchange(client, code, verifier)
        assert response.code == 200, self.text_of(response)
        answer: dict[str, Any] = self.json_of(response)
        return answer

    def bearer_ok(self, access_token: str) -> bool:
        """Whether the bearer check accepts ``access_token`` now."""
        results: list[Any] = []
        self.bearer.authenticate(b"Bearer " + access_token.encode()).addBoth(
            results.append
        )
        from fjmcp.interfaces import Identity

        return bool(results) and isinstance(results[0], Identity)
