# -*- test-case-name: tests.web.test_oauth_routes -*-
"""
The OAuth and discovery endpoints over HTTP (Klein).

`OAuthRoutes` holds its dependencies; the HTTP work here is only parsing
(`fjmcp.oauth.forms`), rendering and headers, the logic lives in
objects of `fjmcp.oauth.server.AuthorizationServer`. One ``handle_errors`` renders
every `OAuthError` as RFC 6749 JSON with ``Cache-Control: no-store``.
The browser-facing endpoints (authorize, consent, callback) answer HTML
pages or redirects, never JSON, and forbid framing (``X-Frame-Options:
DENY``, ``frame-ancestors 'none'``). Metadata URLs come from
``public_url`` only; no handler reads ``Host`` or ``X-Forwarded-*``.

The endpoints a client calls with ``fetch`` (the metadata documents,
register, token, revoke) answer CORS for any origin, preflight included:
browser-based clients such as MCP Inspector run the OAuth flow from their
own page's origin, and the MCP TypeScript SDK sends ``MCP-Protocol-Version``
on discovery, which needs a preflight. ``*`` without credentials is safe
here: none of these endpoints reads a cookie, a caller proves itself only
with what it sends (client secret, code and verifier, token). The browser
endpoints (authorize, consent, callback) are navigations and get no CORS.

``/authorize``, ``/token`` and ``/register`` are aliases of the ``/oauth/``
endpoints, answered by the same handlers (so with the same CORS and
limits), for clients that build those paths from the origin instead of
reading the metadata; the metadata names only the ``/oauth/`` ones.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files
from string import Template
from typing import Any, Final

from attrs import define, field
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from fjmcp.interfaces import IOAuthObserver
from fjmcp.oauth.account import ACCOUNT_STATE_PREFIX
from fjmcp.oauth.errors import (
    InvalidClientMetadataError,
    InvalidRequestError,
    OAuthError,
    RateLimitedError,
    TemporarilyUnavailableError,
)
from fjmcp.oauth.forms import parse_params, query_of
from fjmcp.oauth.metadata import (
    authorization_server_metadata,
    protected_resource_metadata,
)
from fjmcp.oauth.outcomes import Cookie, Page, Redirect
from fjmcp.oauth.server import AuthorizationServer
from fjmcp.observers import NO_OBSERVER
from fjmcp.store.errors import StoreError
from fjmcp.web.account_page import render_account
from fjmcp.web.ratelimit import RateLimits, token_client_key

__all__ = [
    "OAuthRoutes",
    "answer_browser",
    "read_form",
    "render_page",
    "request_cookies",
]

MAX_JSON_BYTES: Final = 64 * 1024
MAX_FORM_BYTES: Final = 64 * 1024
_JSON: Final = b"application/json"
_HTML: Final = b"text/html; charset=utf-8"
_CORS_ALLOW_HEADERS: Final = b"Authorization, Content-Type, MCP-Protocol-Version"
#: How long clients may cache the metadata documents: they change only when
#: ``public_url`` does, i.e. on a restart.
_METADATA_MAX_AGE_SECONDS: Final = 300
_METADATA_CACHE_CONTROL: Final = f"public, max-age={_METADATA_MAX_AGE_SECONDS}".encode()
_PAGE_CSP: Final = (
    b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
    b"base-uri 'none'"
)


def _template(name: str) -> Template:
    return Template(
        files("fjmcp.web").joinpath("templates", name).read_text(encoding="utf-8")
    )


_TEMPLATES: Final = {
    "consent.html": _template("consent.html"),
    "error.html": _template("error.html"),
    "account.html": _template("account.html"),
}

_NATIVE_WARNING: Final = (
    '<div class="box warn"><strong>Warning:</strong> this answer goes to a '
    "program on this computer (a loopback address or an app link). Any program "
    "on your machine can claim to be this application. Allow only if you just "
    "started this connection from an app you trust.</div>"
)


def render_page(page: Page) -> bytes:
    """Fill a page's template; every field is HTML-escaped."""
    if page.template == "account.html":
        return render_account(_TEMPLATES["account.html"], page.fields)
    fields = {k: html.escape(str(v), quote=True) for k, v in page.fields.items()}
    if page.template == "consent.html":
        fields["warning"] = _NATIVE_WARNING if page.fields.get("native") else ""
    return _TEMPLATES[page.template].safe_substitute(fields).encode("utf-8")


def _no_store(request: IRequest) -> None:
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Pragma", b"no-cache")


def _cors(request: IRequest) -> None:
    """Let any origin read this answer (no credentials: see the module doc)."""
    request.setHeader(b"Access-Control-Allow-Origin", b"*")
    request.setHeader(b"Access-Control-Expose-Headers", b"WWW-Authenticate")


def _preflight(request: IRequest, methods: bytes) -> bytes:
    """The answer to a CORS preflight (``OPTIONS``) of a fetch endpoint."""
    _cors(request)
    request.setResponseCode(204)
    request.setHeader(b"Access-Control-Allow-Methods", methods)
    request.setHeader(b"Access-Control-Allow-Headers", _CORS_ALLOW_HEADERS)
    request.setHeader(b"Access-Control-Max-Age", b"600")
    return b""


def _json(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", _JSON)
    return json.dumps(body).encode("utf-8")


def _browser_headers(request: IRequest) -> None:
    _no_store(request)
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Content-Security-Policy", _PAGE_CSP)
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")


def _media_type(request: IRequest) -> bytes:
    value = request.getHeader(b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower()


def request_cookies(request: IRequest) -> dict[str, str]:
    """The request's cookies (names and values that are not ASCII are skipped)."""
    out: dict[str, str] = {}
    raw: Mapping[bytes, bytes] = getattr(request, "received_cookies", {}) or {}
    for name, value in raw.items():
        try:
            out[name.decode("ascii")] = value.decode("ascii")
        except UnicodeDecodeError:
            continue
    return out


def read_form(request: IRequest) -> dict[str, str]:
    """A POST's form body; `InvalidRequestError` for anything else."""
    if _media_type(request) != b"application/x-www-form-urlencoded":
        raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
    if query_of(request.uri or b""):
        raise InvalidRequestError("parameters belong in the body, not the URL")
    body = request.content.read(MAX_FORM_BYTES + 1) if request.content else b""
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequestError("the request body is too large")
    return parse_params(body)


def _set_cookie(request: IRequest, cookie: Cookie, secure: bool) -> None:
    add_cookie: Any = request.addCookie  # IRequest lacks httpOnly/sameSite
    add_cookie(
        cookie.name.encode("ascii"),
        cookie.value.encode("ascii"),
        path=b"/",
        max_age=str(cookie.max_age).encode("ascii"),
        secure=secure,
        httpOnly=True,
        sameSite="lax",
    )


def answer_browser(
    request: IRequest, outcome: Redirect | Page, *, post: bool, secure: bool
) -> bytes:
    """
    A browser step's redirect (303 after a POST) or page, with its cookies
    and the headers of every page (no store, no framing, strict CSP).
    """
    _browser_headers(request)
    for cookie in outcome.cookies:
        _set_cookie(request, cookie, secure)
    if isinstance(outcome, Redirect):
        request.setResponseCode(303 if post else 302)
        request.setHeader(b"Location", outcome.location.encode("utf-8"))
        return b""
    request.setResponseCode(outcome.status)
    request.setHeader(b"Content-Type", _HTML)
    return render_page(outcome)


RouteMethod = Callable[["OAuthRoutes", IRequest], Awaitable[bytes]]


def _counted(endpoint: str) -> Callable[[RouteMethod], RouteMethod]:
    """
    Tell the observer how ``endpoint`` answered: ``ok``, the OAuth error
    code, ``error_page`` (a browser step's error page) or ``unavailable``.
    Applied to the route function, so every path routed to it (aliases
    included) counts under one name.
    """

    def wrap(route: RouteMethod) -> RouteMethod:
        @functools.wraps(route)
        async def counted(self: OAuthRoutes, request: IRequest) -> bytes:
            observer = self._observer
            try:
                body = await route(self, request)
            except RateLimitedError:
                observer.endpoint_outcome(endpoint, "rate_limited")
                raise
            except OAuthError as e:
                observer.endpoint_outcome(endpoint, e.error)
                raise
            except StoreError:
                observer.endpoint_outcome(endpoint, "unavailable")
                raise
            code = getattr(request, "code", 200)
            if code < 400:
                outcome = "ok"
            else:
                outcome = "rate_limited" if code == 429 else "error_page"
            observer.endpoint_outcome(endpoint, outcome)
            return body

        return counted

    return wrap


@define
class OAuthRoutes:
    """The Klein app of the authorization server and the metadata."""

    _server: AuthorizationServer
    _observer: IOAuthObserver = field(default=NO_OBSERVER, kw_only=True)
    _limits: RateLimits | None = field(default=None, kw_only=True)
    """The composition root always gives one; tests of other matters may not."""

    app = Klein()
    log = Logger()

    # --- errors ------------------------------------------------------------------

    @app.handle_errors(OAuthError)
    def _oauth_error(self, request: IRequest, failure: Failure) -> bytes:
        error: OAuthError = failure.value  # type: ignore[assignment]
        _no_store(request)
        for name, value in error.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        return _json(request, error.status, error.body())

    @app.handle_errors(StoreError)
    def _store_error(self, request: IRequest, failure: Failure) -> bytes:
        self.log.failure("store failure in an OAuth request", failure)
        _no_store(request)
        error = TemporarilyUnavailableError("the broker's store is unavailable")
        return _json(request, error.status, error.body())

    # --- discovery -----------------------------------------------------------------

    @app.route("/.well-known/oauth-authorization-server", methods=["GET"])
    def as_metadata(self, request: IRequest) -> bytes:
        """RFC 8414 metadata, from public_url only."""
        _cors(request)
        request.setHeader(b"Cache-Control", _METADATA_CACHE_CONTROL)
        return _json(
            request,
            200,
            authorization_server_metadata(
                self._server.settings.public_url,
                self._server.authentication.methods,
                signing_algs=self._server.authentication.signing_algs,
                client_documents=self._server.client_documents,
            ),
        )

    @app.route("/.well-known/oauth-protected-resource", methods=["GET"])
    @app.route("/.well-known/oauth-protected-resource/mcp", methods=["GET"])
    def resource_metadata(self, request: IRequest) -> bytes:
        """RFC 9728 metadata of /mcp, from public_url only."""
        _cors(request)
        request.setHeader(b"Cache-Control", _METADATA_CACHE_CONTROL)
        return _json(
            request, 200, protected_resource_metadata(self._server.settings.public_url)
        )

    @app.route("/.well-known/oauth-authorization-server", methods=["OPTIONS"])
    @app.route("/.well-known/oauth-protected-resource", methods=["OPTIONS"])
    @app.route("/.well-known/oauth-protected-resource/mcp", methods=["OPTIONS"])
    def metadata_preflight(self, request: IRequest) -> bytes:
        """CORS preflight of the metadata documents."""
        return _preflight(request, b"GET")

    @app.route("/oauth/register", methods=["OPTIONS"])
    @app.route("/oauth/token", methods=["OPTIONS"])
    @app.route("/oauth/revoke", methods=["OPTIONS"])
    @app.route("/register", methods=["OPTIONS"])
    @app.route("/token", methods=["OPTIONS"])
    def fetch_preflight(self, request: IRequest) -> bytes:
        """CORS preflight of register, token and revoke."""
        return _preflight(request, b"POST")

    # --- JSON endpoints --------------------------------------------------------------

    @app.route("/oauth/register", methods=["POST"])
    @app.route("/register", methods=["POST"])
    @_counted("register")
    async def register(self, request: IRequest) -> bytes:
        """RFC 7591 dynamic client registration (201 with the client)."""
        _cors(request)
        _no_store(request)
        if self._limits is not None:
            wait = self._limits.register.take(self._limits.client_ip(request))
            if wait:
                raise RateLimitedError(wait)
        if _media_type(request) != _JSON:
            raise InvalidClientMetadataError(
                "the registration must be application/json"
            )
        body = request.content.read(MAX_JSON_BYTES + 1) if request.content else b""
        if len(body) > MAX_JSON_BYTES:
            raise InvalidClientMetadataError("the registration is too large")
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise InvalidClientMetadataError(
                "the registration is not valid JSON"
            ) from None
        answer = await self._server.registrar.register(document)
        return _json(request, 201, answer)

    def _form(self, request: IRequest) -> dict[str, str]:
        return read_form(request)

    @app.route("/oauth/token", methods=["POST"])
    @app.route("/token", methods=["POST"])
    @_counted("token")
    async def token(self, request: IRequest) -> bytes:
        """The token endpoint (authorization_code, refresh_token)."""
        _cors(request)
        _no_store(request)
        limits = self._limits
        if limits is None:
            form = self._form(request)
            answer = await self._server.tokens.token(
                form, request.getHeader(b"authorization")
            )
            return _json(request, 200, answer)
        ip = limits.client_ip(request)
        form = self._form(request)
        authorization = request.getHeader(b"authorization")
        key = token_client_key(form, authorization, ip)
        wait = limits.before_token(ip, key)
        if wait:
            raise RateLimitedError(wait)
        try:
            answer = await self._server.tokens.token(form, authorization)
        except OAuthError:
            limits.after_token(ip, key, ok=False)
            raise
        limits.after_token(ip, key, ok=True)
        return _json(request, 200, answer)

    @app.route("/oauth/revoke", methods=["POST"])
    @_counted("revoke")
    async def revoke(self, request: IRequest) -> bytes:
        """RFC 7009 revocation: 200 whether or not the token was known."""
        _cors(request)
        _no_store(request)
        form = self._form(request)
        await self._server.revocation.revoke(form, request.getHeader(b"authorization"))
        request.setResponseCode(200)
        return b""

    # --- browser endpoints ---------------------------------------------------------

    def _answer(
        self, request: IRequest, outcome: Redirect | Page, *, post: bool
    ) -> bytes:
        return answer_browser(
            request, outcome, post=post, secure=self._server.cookies.secure
        )

    def _page_error(self, request: IRequest, error: OAuthError) -> bytes:
        page = Page(
            400,
            "error.html",
            {"title": "Authorization failed", "message": error.description},
        )
        return self._answer(request, page, post=False)

    async def _browser_step(
        self,
        request: IRequest,
        step: Callable[
            [Mapping[str, str], Mapping[str, str]], Awaitable[Redirect | Page]
        ],
        *,
        post: bool,
    ) -> bytes:
        """
        One browser step of the flow: its parameters (the form of a POST, the
        query otherwise) and cookies go to ``step``; parameters that cannot be
        read get an error page.
        """
        try:
            if post:
                params = self._form(request)
            else:
                params = parse_params(query_of(request.uri or b""))
        except OAuthError as e:
            return self._page_error(request, e)
        outcome = await step(params, request_cookies(request))
        return self._answer(request, outcome, post=post)

    @app.route("/oauth/authorize", methods=["GET"])
    @app.route("/authorize", methods=["GET"])
    @_counted("authorize")
    async def authorize(self, request: IRequest) -> bytes:
        """The authorization endpoint: consent page, redirect or error page."""
        if self._limits is not None:
            wait = self._limits.authorize.take(self._limits.client_ip(request))
            if wait:
                request.setHeader(b"Retry-After", str(wait).encode("ascii"))
                page = Page(
                    429,
                    "error.html",
                    {
                        "title": "Too many requests",
                        "message": f"Too many sign-ins from this address; try "
                        f"again in {wait} seconds.",
                    },
                )
                return self._answer(request, page, post=False)
        return await self._browser_step(
            request, self._server.authorize.authorize, post=False
        )

    @app.route("/oauth/consent", methods=["POST"])
    @_counted("consent")
    async def consent(self, request: IRequest) -> bytes:
        """The consent form's Allow / Deny."""
        return await self._browser_step(
            request, self._server.authorize.consent, post=True
        )

    @app.route("/oauth/callback", methods=["GET"])
    @_counted("callback")
    async def callback(self, request: IRequest) -> bytes:
        """
        Forgejo's redirect back after the user logged in: for a client's
        authorization, or for the account page (its state says which).
        """
        return await self._browser_step(request, self._callback, post=False)

    async def _callback(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        if params.get("state", "").startswith(ACCOUNT_STATE_PREFIX):
            return await self._server.account.callback(params, cookies)
        return await self._server.login.callback(params, cookies)
