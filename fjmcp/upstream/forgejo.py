# -*- test-case-name: tests.upstream.test_forgejo -*-
"""
A stateless client for Forgejo's OAuth2 provider and the two API calls the
broker needs.

The broker is a confidential OAuth client of Forgejo: it sends users to
Forgejo's ``/login/oauth/authorize`` (with PKCE S256 and ``state``), trades
the returned code at ``/login/oauth/access_token``, refreshes the tokens there
(sending the client secret, as a confidential client must), and asks
``/api/v1/user`` who the token belongs to. Every call has a timeout and every
failure is one of two types (`fjmcp.upstream.errors`): the user must log in
again, or Forgejo is unavailable for now.

The HTTP client is injected (treq's ``HTTPClient``; ``StubTreq`` in tests);
`ForgejoClient.from_reactor` gives it a `LazyHTTPClient`, so treq is
imported at the broker's first call to Forgejo, not at its start. No token,
code or secret is ever logged or put into an exception message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlencode

from attrs import define, field, frozen
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import (
    IReactorPluggableNameResolver,
    IReactorSSL,
    IReactorTCP,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from zope.interface import Interface

from fjmcp.upstream.errors import ForgejoAuthError, ForgejoError, ForgejoUnavailable
from fjmcp.upstream.lazy_http import LazyHTTPClient

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from treq.response import _Response
    from twisted.web.client import HTTPConnectionPool

__all__ = [
    "DEFAULT_TIMEOUT",
    "ForgejoAuthError",
    "ForgejoClient",
    "ForgejoError",
    "ForgejoSettings",
    "ForgejoTokens",
    "ForgejoUnavailable",
    "ForgejoUser",
    "IHTTPReactor",
    "parse_token_response",
    "parse_user_response",
    "parse_version_response",
]

#: Seconds a Forgejo call may take before it fails as unavailable.
DEFAULT_TIMEOUT: Final = 10.0
#: Forgejo's answers are a few hundred bytes; anything far larger is not Forgejo.
MAX_ANSWER_BYTES: Final = 1024 * 1024
#: Longest OAuth error code / description carried into an exception.
_MAX_ERROR_CODE: Final = 64
_MAX_ERROR_DESCRIPTION: Final = 200

_FORM: Final = b"application/x-www-form-urlencoded"
_JSON: Final = b"application/json"
_USER_AGENT: Final = b"fjmcp"


class IHTTPReactor(
    IReactorTime, IReactorTCP, IReactorSSL, IReactorPluggableNameResolver, Interface
):
    """What an HTTP client's agent and connection pool need of the reactor."""


@frozen(kw_only=True)
class ForgejoSettings:
    """Which Forgejo, as which OAuth application(s), with what patience."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    """Seconds each call (connect, send, read the answer) may take."""
    read_only_client_id: str = ""
    """The application read-only grants are made through ("": none of their own)."""
    read_only_client_secret: str = field(default="", repr=False)

    @property
    def read_only(self) -> ForgejoSettings | None:
        """The read-only grants' application, if they have one of their own."""
        if not self.read_only_client_id:
            return None
        return ForgejoSettings(
            base_url=self.base_url,
            client_id=self.read_only_client_id,
            client_secret=self.read_only_client_secret,
            timeout=self.timeout,
        )


@frozen
class ForgejoTokens:
    """
    What Forgejo's token endpoint answers (code exchange or refresh).

    The repr hides both tokens, so a value logged by mistake leaks nothing.
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    """Seconds the access token lives from the moment it was issued."""
    refresh_token: str | None = field(default=None, repr=False)

    def expires_at(self, now: float) -> float:
        """The absolute expiry, counted from ``now`` (the time of the answer)."""
        return now + self.expires_in


@frozen
class ForgejoUser:
    """The Forgejo account a token belongs to (``/api/v1/user``)."""

    id: int
    login: str
    full_name: str = ""
    email: str = ""
    avatar_url: str = ""
    is_admin: bool = False


# --- parsing answers (pure, so hypothesis can hit them) -----------------------------


def _json_object(body: bytes, what: str, status: int) -> dict[str, Any]:
    """Decode a JSON object or raise `ForgejoUnavailable` (malformed answer)."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ForgejoUnavailable(
            f"Forgejo {what} answer is not JSON", status=status
        ) from None
    if not isinstance(value, dict):
        raise ForgejoUnavailable(
            f"Forgejo {what} answer is not a JSON object", status=status
        )
    return value


def _clean_text(value: object, limit: int) -> str:
    """A short, printable rendering of a text Forgejo sent, safe for a log line."""
    if not isinstance(value, str):
        return ""
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def _is_transient(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


def parse_token_response(status: int, body: bytes) -> ForgejoTokens:
    """
    Turn the token endpoint's answer into `ForgejoTokens` or a typed error.

    200 with the expected shape gives tokens; a 4xx carrying an OAuth
    ``error`` gives `ForgejoAuthError`; everything else (5xx, 408, 429, a
    4xx without an OAuth error, a malformed 200) gives `ForgejoUnavailable`.
    """
    if status == 200:
        obj = _json_object(body, "token", status)
        access = obj.get("access_token")
        token_type = obj.get("token_type")
        expires_in = obj.get("expires_in")
        refresh = obj.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise ForgejoUnavailable(
                "Forgejo token answer has no access_token", status=status
            )
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ForgejoUnavailable(
                "Forgejo token answer has no bearer token_type", status=status
            )
        if isinstance(expires_in, float) and math.isfinite(expires_in):
            if expires_in.is_integer():
                expires_in = int(expires_in)
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or expires_in < 0
        ):
            raise ForgejoUnavailable(
                "Forgejo token answer has no valid expires_in", status=status
            )
        if refresh is not None and not isinstance(refresh, str):
            raise ForgejoUnavailable(
                "Forgejo token answer has a malformed refresh_token", status=status
            )
        return ForgejoTokens(
            access_token=access,
            token_type=token_type,
            expires_in=expires_in,
            refresh_token=refresh or None,
        )
    if 400 <= status < 500 and not _is_transient(status):
        try:
            obj = _json_object(body, "token error", status)
        except ForgejoUnavailable:
            raise ForgejoUnavailable(
                f"Forgejo token endpoint answered {status} without an OAuth error",
                status=status,
            ) from None
        error = obj.get("error")
        if not isinstance(error, str) or not error:
            raise ForgejoUnavailable(
                f"Forgejo token endpoint answered {status} without an OAuth error",
                status=status,
            )
        raise ForgejoAuthError(
            _clean_text(error, _MAX_ERROR_CODE),
            _clean_text(obj.get("error_description"), _MAX_ERROR_DESCRIPTION),
            status=status,
        )
    raise ForgejoUnavailable(f"Forgejo token endpoint answered {status}", status=status)


def parse_user_response(status: int, body: bytes) -> ForgejoUser:
    """
    Turn ``/api/v1/user``'s answer into a `ForgejoUser` or a typed error.

    401 (token unknown, expired or revoked) and 403 (token not allowed to
    read the user) are `ForgejoAuthError`; anything else unusable is
    `ForgejoUnavailable`.
    """
    if status == 200:
        obj = _json_object(body, "user", status)
        uid = obj.get("id")
        login = obj.get("login")
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise ForgejoUnavailable("Forgejo user answer has no id", status=status)
        if not isinstance(login, str) or not login:
            raise ForgejoUnavailable("Forgejo user answer has no login", status=status)

        def text(name: str) -> str:
            value = obj.get(name)
            return value if isinstance(value, str) else ""

        is_admin = obj.get("is_admin")
        return ForgejoUser(
            id=uid,
            login=login,
            full_name=text("full_name"),
            email=text("email"),
            avatar_url=text("avatar_url"),
            is_admin=is_admin is True,
        )
    if status == 401:
        raise ForgejoAuthError(
            "invalid_token", "Forgejo rejected the token", status=status
        )
    if status == 403:
        raise ForgejoAuthError(
            "access_denied",
            "Forgejo forbids this token to read the user",
            status=status,
        )
    raise ForgejoUnavailable(f"Forgejo /api/v1/user answered {status}", status=status)


#: Organizations asked per page (Forgejo's MAX_RESPONSE_ITEMS default) and
#: pages read at most: a user in more organizations than this is cut short.
ORGS_PAGE_SIZE: Final = 50
ORGS_MAX_PAGES: Final = 20


def parse_orgs_response(status: int, body: bytes) -> list[str]:
    """
    One page of ``/api/v1/user/orgs`` as organization names; 401/403 are
    `ForgejoAuthError` (a token without ``read:organization`` where Forgejo
    enforces scopes), anything else unusable `ForgejoUnavailable`.
    """
    if status in (401, 403):
        raise ForgejoAuthError(
            "access_denied",
            f"Forgejo refused to list the user's organizations ({status})",
            status=status,
        )
    if status != 200:
        raise ForgejoUnavailable(
            f"Forgejo /api/v1/user/orgs answered {status}", status=status
        )
    try:
        page = json.loads(body)
    except ValueError:
        raise ForgejoUnavailable(
            "Forgejo organizations answer is not JSON", status=status
        ) from None
    if not isinstance(page, list):
        raise ForgejoUnavailable(
            "Forgejo organizations answer is not a list", status=status
        )
    names = []
    for org in page:
        name = org.get("name") if isinstance(org, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def parse_version_response(status: int, body: bytes) -> str:
    """Forgejo's version string from ``/api/v1/version``, or `ForgejoUnavailable`."""
    if status != 200:
        raise ForgejoUnavailable(
            f"Forgejo /api/v1/version answered {status}", status=status
        )
    version = _json_object(body, "version", status).get("version")
    if not isinstance(version, str) or not version:
        raise ForgejoUnavailable("Forgejo version answer has no version", status=status)
    return _clean_text(version, 200)


# --- the client ---------------------------------------------------------------------


class _AnswerTooLargeError(Exception):
    pass


def _pooled_treq(reactor: Any, pool: HTTPConnectionPool, timeout: float) -> HTTPClient:
    """
    treq on an agent over ``pool`` (up to 4 open connections kept).

    The cookie jar refuses every cookie: the client speaks for many users
    and must never carry one answer's cookie into another user's call.
    """
    from http.cookiejar import DefaultCookiePolicy

    from treq.client import HTTPClient
    from treq.cookies import IndexableCookieJar
    from twisted.web.client import Agent

    pool.maxPersistentPerHost = 4
    agent = Agent(reactor, connectTimeout=timeout, pool=pool)  # type: ignore[no-untyped-call, unused-ignore]
    jar = IndexableCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return HTTPClient(agent, cookiejar=jar)


def _strip_slash(url: str) -> str:
    return url.rstrip("/")


@define
class ForgejoClient:
    """
    Calls to one Forgejo instance as one OAuth application.

    Stateless: every call stands alone, so it may be shared by every part of
    the broker. Each call (connect, send, read the whole answer) is bounded
    by ``timeout`` seconds on the injected ``clock``.
    """

    log: ClassVar[Logger] = Logger()

    _http: HTTPClient | LazyHTTPClient
    _base_url: str = field(converter=_strip_slash)
    _client_id: str
    _client_secret: str = field(repr=False)
    _clock: IReactorTime = field(kw_only=True)
    _timeout: float = field(default=DEFAULT_TIMEOUT, kw_only=True)

    @classmethod
    def from_reactor(
        cls, reactor: IHTTPReactor, settings: ForgejoSettings
    ) -> ForgejoClient:
        """
        Build a client for ``settings`` with its own persistent connection
        pool on ``reactor``, made at the first call (`LazyHTTPClient`).
        """
        timeout = settings.timeout

        def make(reactor: Any, pool: HTTPConnectionPool) -> HTTPClient:
            return _pooled_treq(reactor, pool, timeout)

        return cls(
            LazyHTTPClient(reactor, make, persistent=True),
            settings.base_url,
            settings.client_id,
            settings.client_secret,
            clock=reactor,
            timeout=timeout,
        )

    @property
    def base_url(self) -> str:
        """The Forgejo instance, without a trailing slash."""
        return self._base_url

    @property
    def client_id(self) -> str:
        """The OAuth application's client id at Forgejo."""
        return self._client_id

    def close(self) -> Deferred[None]:
        """Close the pooled connections (shutdown); a no-op without a pool."""
        if isinstance(self._http, LazyHTTPClient):
            return self._http.close()
        return succeed(None)

    # --- OAuth ---------------------------------------------------------------

    def authorize_url(
        self,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        scopes: tuple[str, ...] | list[str] = (),
    ) -> str:
        """
        Where to send the user's browser to log in at Forgejo.

        Always PKCE S256 and ``state``; ``scope`` only when scopes are asked
        for (Forgejo's default otherwise).
        """
        query = {
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if scopes:
            query["scope"] = " ".join(scopes)
        return f"{self._base_url}/login/oauth/authorize?{urlencode(query)}"

    async def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str
    ) -> ForgejoTokens:
        """Trade an authorization code (and its PKCE verifier) for tokens."""
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> ForgejoTokens:
        """
        Trade a refresh token for a new pair (the client secret is sent).

        `ForgejoAuthError` means the grant is gone (revoked, reused in
        Forgejo's invalidate-on-use mode, expired): the user must log in.
        """
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def _token_request(self, form: Mapping[str, str]) -> ForgejoTokens:
        body = urlencode(
            {
                **form,
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            }
        ).encode("ascii")
        grant = form["grant_type"]
        status, answer = await self._call(
            "POST",
            "/login/oauth/access_token",
            what=grant,
            headers={b"Content-Type": [_FORM], b"Accept": [_JSON]},
            body=body,
        )
        try:
            return parse_token_response(status, answer)
        except ForgejoAuthError as e:
            self.log.info(
                "Forgejo refused the {grant} grant: {error}", grant=grant, error=e.error
            )
            raise
        except ForgejoUnavailable as e:
            self.log.warn(
                "Forgejo {grant} grant failed: {reason}", grant=grant, reason=e.reason
            )
            raise

    # --- API ---------------------------------------------------------------------

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Who ``access_token`` belongs to; 401/403 raise `ForgejoAuthError`."""
        status, answer = await self._call(
            "GET",
            "/api/v1/user",
            what="user",
            headers={
                b"Authorization": [b"Bearer " + access_token.encode("utf-8")],
                b"Accept": [_JSON],
            },
        )
        return parse_user_response(status, answer)

    async def get_orgs(self, access_token: str) -> frozenset[str]:
        """
        The organizations the token's owner is a member of, every page
        (each page full of `ORGS_PAGE_SIZE` means there may be another).
        """
        names: set[str] = set()
        for page in range(1, ORGS_MAX_PAGES + 1):
            status, answer = await self._call(
                "GET",
                f"/api/v1/user/orgs?limit={ORGS_PAGE_SIZE}&page={page}",
                what="organizations",
                headers={
                    b"Authorization": [b"Bearer " + access_token.encode("utf-8")],
                    b"Accept": [_JSON],
                },
            )
            found = parse_orgs_response(status, answer)
            names.update(found)
            if len(found) < ORGS_PAGE_SIZE:
                break
        return frozenset(names)

    async def version(self) -> str:
        """Forgejo's version (public; a cheap reachability check)."""
        status, answer = await self._call(
            "GET", "/api/v1/version", what="version", headers={b"Accept": [_JSON]}
        )
        return parse_version_response(status, answer)

    # --- transport -------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: dict[bytes, list[bytes]],
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        """
        One request and its whole answer within the timeout.

        Everything that is not an answer (timeout, refused connection, a
        dropped connection, an oversized body) becomes `ForgejoUnavailable`.
        """
        headers = {**headers, b"User-Agent": [_USER_AGENT]}
        d: Deferred[tuple[int, bytes]] = Deferred.fromCoroutine(
            self._send(method, self._base_url + path, headers, body)
        )
        # Not Deferred.addTimeout: cancelling the request makes the agent fail
        # with ResponseNeverReceived rather than CancelledError, so whether the
        # timeout fired is remembered here.
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        timer = self._clock.callLater(self._timeout, on_timeout)
        try:
            return await d
        except _AnswerTooLargeError:
            reason = f"Forgejo {what} answer exceeds {MAX_ANSWER_BYTES} bytes"
        except ForgejoError:
            raise
        except Exception as e:  # timeout, connection refused, DNS, TLS, dropped...
            if not timed_out and isinstance(e, CancelledError):
                raise  # our caller cancelled us
            if timed_out:
                reason = f"Forgejo {what} call timed out after {self._timeout:g}s"
            else:
                reason = f"Forgejo {what} call failed: {type(e).__name__}"
        finally:
            if timer.active():
                timer.cancel()
        self.log.warn("{reason}", reason=reason)
        raise ForgejoUnavailable(reason)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[bytes, list[bytes]],
        body: bytes | None,
    ) -> tuple[int, bytes]:
        response: _Response = await self._http.request(
            method, url, headers=Headers(headers), data=body, allow_redirects=False
        )
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > MAX_ANSWER_BYTES:
                raise _AnswerTooLargeError()
            chunks.append(data)

        await response.collect(collect)
        return response.code, b"".join(chunks)
