# -*- test-case-name: tests.standin.test_app -*-
"""
The stand-in Forgejo: the few Forgejo endpoints fjmcp talks to, with Forgejo's
real request and response shapes, for tests and the demo.

It is a fake and says so on every page. It only ever listens on a loopback
address (`start_standin` refuses anything else) and production code never
imports it. What it models, because the broker must cope with it:

- ``/login/oauth/authorize``: registered client id and exact redirect URI
  (otherwise an error page, never a redirect), PKCE (S256 and plain;
  required for public clients), a login form with configured users, or
  auto-approval of one configured user;
- ``/login/oauth/access_token``: the ``authorization_code`` and
  ``refresh_token`` grants, client authentication in the body or with HTTP
  Basic, Forgejo's JSON answers and its errors (400 with ``error`` and
  ``error_description``);
- access tokens that expire (configurable lifetime, injected clock), one
  grant per user and application whose counter grows with every issued pair,
  as in Forgejo, and both refresh modes: reusable refresh tokens (Forgejo's
  default) and ``INVALIDATE_REFRESH_TOKENS``, where reusing a spent refresh
  token gets 400 ``unauthorized_client``;
- the grant's scope, as Forgejo 9.0 and later keep and enforce it: the
  scope of the first consent stays the grant's (a confidential client with
  a grant is sent back at once with a code of that grant, whatever it asks
  for; a public client asking for another scope gets ``server_error`` "a
  grant exists with different scope"), and its tokens are limited to the
  grant's token scopes (``read:repository``, ``write:issue``, ...: ``read:``
  allows GET, ``write:`` every method; OpenID Connect scopes and unknown
  names are ignored, and a grant with no token scope left may do
  everything), refused with Forgejo's 403 "token does not have at least one
  of required scope(s): [...]" (`token_scopes`, `token_allows`);
- ``/api/v1/user`` (``Authorization: token X`` or ``Bearer X``, else 401),
  ``/api/v1/user/orgs`` (paginated), the user's repositories (list, get,
  delete) and their issues (list, create), and the public
  ``/api/v1/version``;
- test hooks, as Python methods and as loopback-only HTTP endpoints under
  ``/_standin/``: expire a user's access tokens now, revoke all of a user's
  grants, count refreshes, change the token lifetime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import ipaddress
import json
import secrets
import zlib
from collections import Counter
from collections.abc import Mapping
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from attrs import define, field, frozen
from klein import Klein
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.server import Request, Site

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort, IReactorTime
    from twisted.python.failure import Failure

__all__ = [
    "DEFAULT_VERSION",
    "StandinClient",
    "StandinConfig",
    "StandinForgejo",
    "StandinUser",
    "loopback_bind_address",
    "start_standin",
    "token_allows",
    "token_scopes",
]

DEFAULT_VERSION: Final = "11.0.0+standin"
#: Forgejo's defaults: ACCESS_TOKEN_EXPIRATION_TIME and REFRESH_TOKEN_EXPIRATION_TIME.
DEFAULT_TOKEN_LIFETIME: Final = 3600
DEFAULT_REFRESH_TOKEN_LIFETIME: Final = 730 * 3600
CODE_LIFETIME: Final = 600
#: Forgejo's ``[api]`` DEFAULT_PAGING_NUM and MAX_RESPONSE_ITEMS.
ORG_PAGE_DEFAULT: Final = 30
ORG_PAGE_MAX: Final = 50
#: How long a rendered login form may be submitted, and how many may be pending.
FORM_LIFETIME: Final = 3600.0
MAX_PENDING_FORMS: Final = 10_000
#: Longest value accepted for any one parameter (Forgejo has similar limits).
MAX_PARAM_CHARS: Final = 4096

_JSON_TYPE: Final = b"application/json;charset=utf-8"
_HTML_TYPE: Final = b"text/html;charset=utf-8"


def _template(name: str) -> Template:
    return Template(
        files("fjmcp.standin").joinpath("templates", name).read_text(encoding="utf-8")
    )


_LOGIN_PAGE: Final = _template("login.html")
_ERROR_PAGE: Final = _template("error.html")


# --- configuration ------------------------------------------------------------------


@frozen
class StandinUser:
    """A Forgejo account of the stand-in, with its password."""

    login: str
    password: str = field(repr=False)
    full_name: str = ""
    email: str = ""
    is_admin: bool = False
    orgs: tuple[str, ...] = ()
    """The organizations the account is a member of (``/api/v1/user/orgs``)."""
    repos: tuple[str, ...] = ()
    """The account's (private) repositories, by name."""


@frozen
class StandinClient:
    """
    An OAuth2 application registered at the stand-in.

    ``client_secret=None`` makes it a public client (PKCE required), as
    Forgejo's "confidential client" checkbox unticked does.
    """

    client_id: str
    client_secret: str | None = field(repr=False)
    redirect_uris: tuple[str, ...]

    @property
    def confidential(self) -> bool:
        """Whether the client authenticates with a secret."""
        return self.client_secret is not None


@frozen
class StandinConfig:
    """Everything the stand-in is set up with."""

    users: tuple[StandinUser, ...]
    clients: tuple[StandinClient, ...]
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    """``expires_in`` of every access token, in seconds."""
    refresh_token_lifetime: int = DEFAULT_REFRESH_TOKEN_LIFETIME
    invalidate_refresh_tokens: bool = False
    """Forgejo's ``[oauth2] INVALIDATE_REFRESH_TOKENS``."""
    auto_approve: str | None = None
    """Log this user in without showing the form."""
    version: str = DEFAULT_VERSION

    def __attrs_post_init__(self) -> None:
        logins = [u.login for u in self.users]
        if len(set(logins)) != len(logins):
            raise ValueError("stand-in users must have distinct logins")
        ids = [c.client_id for c in self.clients]
        if len(set(ids)) != len(ids):
            raise ValueError("stand-in clients must have distinct client ids")
        if self.auto_approve is not None and self.auto_approve not in logins:
            raise ValueError(
                f"auto-approve user {self.auto_approve!r} is not configured"
            )
        for client in self.clients:
            if not client.redirect_uris:
                raise ValueError(f"client {client.client_id!r} has no redirect URI")
        if self.token_lifetime < 0 or self.refresh_token_lifetime < 0:
            raise ValueError("token lifetimes must not be negative")


# --- state --------------------------------------------------------------------------


@define
class _Code:
    client_id: str
    redirect_uri: str
    login: str
    challenge: str
    challenge_method: str
    scope: str
    expires_at: float
    grant_id: int = 0


@define
class _Grant:
    """Forgejo's ``oauth2_grant``: one per user and application, with its scope."""

    grant_id: int
    login: str
    client_id: str
    counter: int = 0
    scope: str = ""
    """The scope of the first consent: the grant keeps it."""


@define
class _AccessToken:
    grant_id: int
    login: str
    expires_at: float


@define
class _RefreshToken:
    grant_id: int
    counter: int
    expires_at: float


# --- errors, each rendered in one place ---------------------------------------------


class _TokenError(Exception):
    """An error answer of the token endpoint (Forgejo's ``AccessTokenError``)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


class _PageError(Exception):
    """An error shown as a page (never redirected: the redirect is not trusted)."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(title)
        self.title = title
        self.message = message
        self.status = status


class _RedirectError(Exception):
    """An authorize error sent back to the (validated) redirect URI."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str):
        super().__init__(error)
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description
        self.state = state


class _BadParameterError(Exception):
    """A parameter is repeated, not UTF-8 or too long."""


class _HookRefusedError(Exception):
    """A test hook was called from a non-loopback peer."""


# --- small helpers ------------------------------------------------------------------


def _param(request: IRequest, name: str) -> str:
    """One form or query parameter as text ("" when absent)."""
    values = (request.args or {}).get(name.encode("ascii"), [])
    if not values:
        return ""
    if len(values) > 1:
        raise _BadParameterError(f"parameter {name} is repeated")
    try:
        value: str = bytes(values[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise _BadParameterError(f"parameter {name} is not UTF-8") from None
    if len(value) > MAX_PARAM_CHARS:
        raise _BadParameterError(f"parameter {name} is too long")
    return value


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` added to its query (its own query is kept)."""
    parts = urlsplit(uri)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_B64URL: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
_PKCE_CHARS: Final = _B64URL | frozenset(".~")


def _status(request: IRequest, code: int) -> None:
    request.setResponseCode(code)  # type: ignore[no-untyped-call, unused-ignore]


def _header(request: IRequest, name: bytes, value: bytes) -> None:
    request.setHeader(name, value)  # type: ignore[no-untyped-call, unused-ignore]


def _request_header(request: IRequest, name: bytes) -> bytes:
    value = request.getHeader(name)  # type: ignore[no-untyped-call, unused-ignore]
    return value if isinstance(value, bytes) else b""


def _is_loopback_peer(request: IRequest) -> bool:
    peer = request.getClientAddress()  # type: ignore[no-untyped-call, unused-ignore]
    if not isinstance(peer, IPv4Address | IPv6Address):
        return False
    try:
        return ipaddress.ip_address(peer.host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _json(request: IRequest, status: int, body: object) -> bytes:
    _status(request, status)
    _header(request, b"Content-Type", _JSON_TYPE)
    _header(request, b"Cache-Control", b"no-store")
    return json.dumps(body).encode("utf-8")


def _page_headers(request: IRequest) -> None:
    _header(request, b"Content-Type", _HTML_TYPE)
    _header(request, b"Cache-Control", b"no-store")
    _header(request, b"X-Frame-Options", b"DENY")
    _header(
        request,
        b"Content-Security-Policy",
        # No form-action: Chromium applies it to the redirect that answers
        # the login form too, and that redirect goes to the client (the
        # broker's callback) on another origin, so the login would never end.
        b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    )


def _esc(value: str) -> str:
    return html.escape(value, quote=True)


#: Parameters of the authorize request carried through the login form.
_AUTHORIZE_PARAMS: Final = (
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
)


# --- token scopes (Forgejo 9.0+) ---------------------------------------------------

#: Forgejo's token scope groups; ``read:G`` allows a group's GET routes,
#: ``write:G`` every method (models/auth/access_token_scope.go).
SCOPE_GROUPS: Final = (
    "activitypub",
    "admin",
    "issue",
    "misc",
    "notification",
    "organization",
    "package",
    "repository",
    "user",
)
_TOKEN_SCOPES: Final = frozenset(
    {"all", "public-only"}
    | {f"{level}:{group}" for level in ("read", "write") for group in SCOPE_GROUPS}
)
#: Scopes Forgejo reads as OpenID Connect ones, never as limits.
_OIDC_SCOPES: Final = frozenset({"openid", "profile", "email", "groups"})


def token_scopes(grant_scope: str) -> frozenset[str]:
    """
    What a token of a grant made with ``grant_scope`` may do, as Forgejo
    reads it (services/auth/oauth2.go, ``grantAdditionalScopes``): the
    space-separated names less the OpenID Connect ones, those Forgejo knows
    as token scopes kept; none left means ``all``.
    """
    names = {n for n in grant_scope.split(" ") if n and n not in _OIDC_SCOPES}
    kept = frozenset(names & _TOKEN_SCOPES)
    return kept or frozenset({"all"})


def token_allows(scopes: frozenset[str], required: tuple[str, ...]) -> bool:
    """Whether ``scopes`` hold all of ``required`` (``write:`` implies ``read:``)."""
    if "all" in scopes:
        return True
    for need in required:
        group = need.partition(":")[2]
        if need not in scopes and not (
            need.startswith("read:") and f"write:{group}" in scopes
        ):
            return False
    return True


def _required(method: bytes, groups: tuple[str, ...]) -> tuple[str, ...]:
    """Forgejo's ``GetRequiredScopes``: the level by the request's method."""
    write = method.upper() in (b"POST", b"PUT", b"PATCH", b"DELETE")
    level = "write" if write else "read"
    return tuple(f"{level}:{group}" for group in groups)


# --- the application ----------------------------------------------------------------


@define
class StandinForgejo:
    """
    A fake Forgejo's state and its Klein routes (``app.resource()`` to serve).

    ``clock`` gives token expiry; ``base_url`` is where the stand-in is
    reached (set by `start_standin` once the port is known) and only appears
    in URLs inside answers.
    """

    app: ClassVar[Klein] = Klein()
    log: ClassVar[Logger] = Logger()

    _config: StandinConfig
    _clock: IReactorTime = field(kw_only=True)
    base_url: str = field(default="http://127.0.0.1", kw_only=True)
    token_lifetime: int = field(kw_only=True, default=-1)
    """Current lifetime of new access tokens (a test hook may change it)."""

    _users: dict[str, StandinUser] = field(init=False, factory=dict)
    _clients: dict[str, StandinClient] = field(init=False, factory=dict)
    _codes: dict[str, _Code] = field(init=False, factory=dict)
    _grants: dict[tuple[str, str], _Grant] = field(init=False, factory=dict)
    _access: dict[str, _AccessToken] = field(init=False, factory=dict)
    _refresh: dict[str, _RefreshToken] = field(init=False, factory=dict)
    _forms: dict[str, float] = field(init=False, factory=dict)
    _refreshes: Counter[str] = field(init=False, factory=Counter)
    _exchanges: Counter[str] = field(init=False, factory=Counter)
    _next_grant: int = field(init=False, default=1)
    _repos: dict[tuple[str, str], dict[str, Any]] = field(init=False, factory=dict)
    _issues: dict[tuple[str, str], list[dict[str, Any]]] = field(
        init=False, factory=dict
    )
    refusals: Counter[str] = field(init=False, factory=Counter)
    """Requests refused for a token's scope, by the scope they lacked."""

    def __attrs_post_init__(self) -> None:
        self._users = {u.login: u for u in self._config.users}
        self._clients = {c.client_id: c for c in self._config.clients}
        for user in self._config.users:
            for name in user.repos:
                self._repos[(user.login, name)] = {"name": name}
        if self.token_lifetime < 0:
            self.token_lifetime = self._config.token_lifetime

    def __repr__(self) -> str:  # log events carry it as log_source: no tokens
        return f"StandinForgejo(base_url={self.base_url!r})"

    @property
    def config(self) -> StandinConfig:
        """What the stand-in was set up with."""
        return self._config

    def _now(self) -> float:
        return self._clock.seconds()

    # --- test hooks (Python) -------------------------------------------------

    def expire_user_tokens(self, login: str) -> int:
        """
        Make every access token of ``login`` expired now; refresh tokens stay
        valid. Returns how many tokens were expired.
        """
        now = self._now()
        count = 0
        for token in self._access.values():
            if token.login == login and token.expires_at > now:
                token.expires_at = now
                count += 1
        return count

    def revoke_user(self, login: str) -> int:
        """
        Delete every grant of ``login`` (as revoking the application in
        Forgejo's settings does): its access tokens get 401 and its refresh
        tokens ``invalid_grant``. Returns how many grants were deleted.
        """
        gone = [key for key, grant in self._grants.items() if grant.login == login]
        for key in gone:
            del self._grants[key]
        self._access = {t: a for t, a in self._access.items() if a.login != login}
        return len(gone)

    def refresh_count(self, login: str | None = None) -> int:
        """Successful refresh grants, of one user or of all users."""
        if login is None:
            return sum(self._refreshes.values())
        return self._refreshes[login]

    def exchange_count(self, login: str | None = None) -> int:
        """Successful code exchanges, of one user or of all users."""
        if login is None:
            return sum(self._exchanges.values())
        return self._exchanges[login]

    def set_token_lifetime(self, seconds: int) -> None:
        """Lifetime of access tokens issued from now on."""
        if seconds < 0:
            raise ValueError("token lifetime must not be negative")
        self.token_lifetime = seconds

    def live_access_tokens(self, login: str) -> int:
        """How many unexpired, unrevoked access tokens ``login`` holds."""
        now = self._now()
        return sum(
            1
            for a in self._access.values()
            if a.login == login and a.expires_at > now and self._grant_alive(a.grant_id)
        )

    # --- tokens ------------------------------------------------------------------

    def _grant_alive(self, grant_id: int) -> bool:
        return any(g.grant_id == grant_id for g in self._grants.values())

    def _grant_by_id(self, grant_id: int) -> _Grant | None:
        for grant in self._grants.values():
            if grant.grant_id == grant_id:
                return grant
        return None

    def _prune(self) -> None:
        now = self._now()
        self._access = {t: a for t, a in self._access.items() if a.expires_at > now}
        self._refresh = {
            t: r
            for t, r in self._refresh.items()
            if r.expires_at > now and self._grant_alive(r.grant_id)
        }
        self._codes = {c: v for c, v in self._codes.items() if v.expires_at > now}

    def _issue(self, grant: _Grant) -> dict[str, object]:
        """A new token pair for ``grant`` (Forgejo's ``newAccessTokenResponse``)."""
        self._prune()
        now = self._now()
        grant.counter += 1
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self._access[access] = _AccessToken(
            grant.grant_id, grant.login, now + self.token_lifetime
        )
        self._refresh[refresh] = _RefreshToken(
            grant.grant_id, grant.counter, now + self._config.refresh_token_lifetime
        )
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "refresh_token": refresh,
        }

    def _grant_for(self, login: str, client_id: str, scope: str) -> _Grant:
        """The user's grant to the application, made with ``scope`` if new."""
        key = (login, client_id)
        grant = self._grants.get(key)
        if grant is None:
            grant = self._grants[key] = _Grant(
                self._next_grant, login, client_id, scope=scope
            )
            self._next_grant += 1
        return grant

    def grant_scope(self, login: str, client_id: str) -> str | None:
        """The scope ``login``'s grant to ``client_id`` keeps (None: no grant)."""
        grant = self._grants.get((login, client_id))
        return None if grant is None else grant.scope

    def _token_of(self, token: str) -> tuple[StandinUser, frozenset[str]] | None:
        """The owner of a live access token and what its grant's scope allows."""
        record = self._access.get(token)
        if record is None or record.expires_at <= self._now():
            return None
        grant = self._grant_by_id(record.grant_id)
        user = self._users.get(record.login)
        if grant is None or user is None:
            return None
        return user, token_scopes(grant.scope)

    def _user_of_token(self, token: str) -> StandinUser | None:
        found = self._token_of(token)
        return None if found is None else found[0]

    # --- error rendering -----------------------------------------------------------

    @app.handle_errors(_TokenError)
    def _token_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if not isinstance(error, _TokenError):  # pragma: no cover (klein filters)
            raise TypeError(error)
        return _json(
            request, 400, {"error": error.error, "error_description": error.description}
        )

    @app.handle_errors(_PageError)
    def _page_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if not isinstance(error, _PageError):  # pragma: no cover
            raise TypeError(error)
        return self._error_page(request, error.status, error.title, error.message)

    @app.handle_errors(_RedirectError)
    def _redirect_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if not isinstance(error, _RedirectError):  # pragma: no cover
            raise TypeError(error)
        params = {"error": error.error, "error_description": error.description}
        if error.state:
            params["state"] = error.state
        return self._redirect(request, _with_query(error.redirect_uri, params))

    @app.handle_errors(_HookRefusedError)
    def _hook_refused(self, request: IRequest, failure: Failure) -> bytes:
        return _json(request, 403, {"message": "stand-in hooks are loopback only"})

    def _error_page(
        self, request: IRequest, status: int, title: str, message: str
    ) -> bytes:
        _status(request, status)
        _page_headers(request)
        return _ERROR_PAGE.substitute(title=_esc(title), message=_esc(message)).encode(
            "utf-8"
        )

    def _redirect(self, request: IRequest, location: str) -> bytes:
        # Gitea/Forgejo's ctx.Redirect answers 303 See Other.
        _status(request, 303)
        _header(request, b"Location", location.encode("utf-8"))
        _header(request, b"Cache-Control", b"no-store")
        return b""

    # --- /login/oauth/authorize ------------------------------------------------------

    def _authorize_params(self, request: IRequest) -> dict[str, str]:
        """
        The authorize parameters, checked in Forgejo's order: client and
        redirect URI problems are pages; later problems go back by redirect.
        """
        try:
            params = {name: _param(request, name) for name in _AUTHORIZE_PARAMS}
        except _BadParameterError as e:
            raise _PageError("Invalid request", str(e)) from None
        client = self._clients.get(params["client_id"])
        if client is None:
            raise _PageError("Client ID not registered", "Unknown client_id.")
        redirect_uri = params["redirect_uri"]
        if redirect_uri not in client.redirect_uris:
            raise _PageError(
                "Unregistered redirect URI",
                "The redirect_uri is not registered for this application.",
            )
        state = params["state"]

        def refuse(error: str, description: str) -> _RedirectError:
            return _RedirectError(redirect_uri, error, description, state)

        if params["response_type"] != "code":
            raise refuse(
                "unsupported_response_type", "Only code response type is supported."
            )
        challenge = params["code_challenge"]
        method = params["code_challenge_method"]
        if challenge:
            method = method or "plain"
            if method not in ("S256", "plain"):
                raise refuse("invalid_request", "unsupported code challenge method")
            if not 43 <= len(challenge) <= 128 or not set(challenge) <= _PKCE_CHARS:
                raise refuse("invalid_request", "malformed code challenge")
            if method == "S256" and (
                len(challenge) != 43 or not set(challenge) <= _B64URL
            ):
                raise refuse("invalid_request", "malformed code challenge")
        elif method:
            raise refuse(
                "invalid_request", "code_challenge_method without code_challenge"
            )
        elif not client.confidential:
            raise refuse("invalid_request", "PKCE is required for public clients")
        params["code_challenge_method"] = method
        return params

    def _new_form(self) -> str:
        now = self._now()
        if len(self._forms) >= MAX_PENDING_FORMS:
            self._forms = {n: t for n, t in self._forms.items() if t > now}
            while len(self._forms) >= MAX_PENDING_FORMS:
                del self._forms[next(iter(self._forms))]
        nonce = secrets.token_urlsafe(24)
        self._forms[nonce] = now + FORM_LIFETIME
        return nonce

    def _login_page(
        self,
        request: IRequest,
        params: Mapping[str, str],
        *,
        user_name: str = "",
        error: str = "",
        status: int = 200,
    ) -> bytes:
        _status(request, status)
        _page_headers(request)
        hidden = "\n      ".join(
            f'<input type="hidden" name="{name}" value="{_esc(value)}">'
            for name, value in [*params.items(), ("_csrf", self._new_form())]
            if value
        )
        return _LOGIN_PAGE.substitute(
            client_id=_esc(params["client_id"]),
            redirect_host=_esc(
                urlsplit(params["redirect_uri"]).netloc or params["redirect_uri"]
            ),
            hidden=hidden,
            user_name=_esc(user_name),
            error=f'<div class="error" role="alert">{_esc(error)}</div>'
            if error
            else "",
            version=_esc(self._config.version),
        ).encode("utf-8")

    def _approve(
        self, request: IRequest, params: Mapping[str, str], login: str
    ) -> bytes:
        """
        The user consented: a code of their grant to the application. The
        grant keeps the scope it was first made with, as Forgejo's does: a
        confidential client with a grant gets a code of it at once whatever
        scope it asks for now (AuthorizeOAuth); a public client's consent to
        another scope is refused (GrantApplicationOAuth).
        """
        client = self._clients[params["client_id"]]
        existing = self._grants.get((login, client.client_id))
        if (
            existing is not None
            and existing.scope != params["scope"]
            and not client.confidential
        ):
            raise _RedirectError(
                params["redirect_uri"],
                "server_error",
                "a grant exists with different scope",
                params["state"],
            )
        grant = self._grant_for(login, client.client_id, params["scope"])
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            login=login,
            challenge=params["code_challenge"],
            challenge_method=params["code_challenge_method"],
            scope=grant.scope,
            expires_at=self._now() + CODE_LIFETIME,
            grant_id=grant.grant_id,
        )
        self.log.info(
            "stand-in Forgejo: {login} authorized {client_id}",
            login=login,
            client_id=params["client_id"],
        )
        answer = {"code": code}
        if params["state"]:
            answer["state"] = params["state"]
        return self._redirect(request, _with_query(params["redirect_uri"], answer))

    @app.route("/login/oauth/authorize", methods=["GET"])
    def authorize(self, request: IRequest) -> bytes:
        """Show the login form, or log the auto-approve user in at once."""
        params = self._authorize_params(request)
        if self._config.auto_approve is not None:
            return self._approve(request, params, self._config.auto_approve)
        return self._login_page(request, params)

    @app.route("/login/oauth/authorize", methods=["POST"])
    def authorize_login(self, request: IRequest) -> bytes:
        """Check the submitted login form; on success redirect with a code."""
        params = self._authorize_params(request)
        try:
            nonce = _param(request, "_csrf")
            user_name = _param(request, "user_name")
            password = _param(request, "password")
        except _BadParameterError as e:
            raise _PageError("Invalid request", str(e)) from None
        expires = self._forms.pop(nonce, None)
        if expires is None or expires <= self._now():
            return self._login_page(
                request,
                params,
                user_name=user_name,
                error="The form has expired. Please try again.",
                status=400,
            )
        user = self._users.get(user_name)
        if user is None or not hmac.compare_digest(
            user.password.encode("utf-8"), password.encode("utf-8")
        ):
            return self._login_page(
                request,
                params,
                user_name=user_name,
                error="Username or password is incorrect.",
            )
        return self._approve(request, params, user.login)

    # --- /login/oauth/access_token ---------------------------------------------------

    def _client_credentials(self, request: IRequest) -> tuple[str, str]:
        """client_id and client_secret from the body, else from HTTP Basic."""
        client_id = _param(request, "client_id")
        secret = _param(request, "client_secret")
        if client_id and secret:
            return client_id, secret
        header = _request_header(request, b"authorization")
        scheme, _, data = header.partition(b" ")
        if scheme.lower() != b"basic":
            return client_id, secret
        try:
            decoded = base64.b64decode(data.strip(), validate=True).decode("utf-8")
            basic_id, sep, basic_secret = decoded.partition(":")
            if not sep:
                raise ValueError("no colon")
        except (binascii.Error, ValueError):
            raise _TokenError(
                "invalid_request", "cannot parse basic auth header"
            ) from None
        if client_id and client_id != basic_id:
            raise _TokenError(
                "invalid_request",
                "client_id in request body inconsistent with Authorization header",
            )
        if secret and secret != basic_secret:
            raise _TokenError(
                "invalid_request",
                "client_secret in request body inconsistent with Authorization header",
            )
        return basic_id, basic_secret

    def _authenticate_client(self, request: IRequest) -> StandinClient:
        client_id, secret = self._client_credentials(request)
        client = self._clients.get(client_id)
        if client is None:
            raise _TokenError(
                "invalid_client", f"cannot load client with client id: {client_id!r}"
            )
        if client.client_secret is not None and not hmac.compare_digest(
            client.client_secret.encode("utf-8"), secret.encode("utf-8")
        ):
            raise _TokenError(
                "unauthorized_client",
                "invalid empty client secret"
                if not secret
                else "invalid client secret",
            )
        return client

    @app.route("/login/oauth/access_token", methods=["POST"])
    def access_token(self, request: IRequest) -> bytes:
        """The token endpoint: authorization_code and refresh_token grants."""
        try:
            grant_type = _param(request, "grant_type")
            client = self._authenticate_client(request)
            if grant_type == "authorization_code":
                answer = self._grant_code(request, client)
            elif grant_type == "refresh_token":
                answer = self._grant_refresh(request, client)
            else:
                raise _TokenError(
                    "unsupported_grant_type",
                    "Only refresh_token or authorization_code grant type is supported",
                )
        except _BadParameterError as e:
            raise _TokenError("invalid_request", str(e)) from None
        return _json(request, 200, answer)

    def _grant_code(
        self, request: IRequest, client: StandinClient
    ) -> dict[str, object]:
        redirect_uri = _param(request, "redirect_uri")
        if redirect_uri and redirect_uri not in client.redirect_uris:
            raise _TokenError("unauthorized_client", "unexpected redirect URI")
        code = self._codes.pop(_param(request, "code"), None)
        if code is None or code.expires_at <= self._now():
            raise _TokenError("unauthorized_client", "client is not authorized")
        if code.client_id != client.client_id or (
            redirect_uri and redirect_uri != code.redirect_uri
        ):
            raise _TokenError("invalid_grant", "invalid grant")
        verifier = _param(request, "code_verifier")
        if code.challenge:
            if code.challenge_method == "S256":
                ok = bool(verifier) and hmac.compare_digest(
                    _s256(verifier), code.challenge
                )
            else:
                ok = hmac.compare_digest(
                    verifier.encode("utf-8"), code.challenge.encode("utf-8")
                )
            if not ok:
                raise _TokenError("unauthorized_client", "failed PKCE code challenge")
        grant = self._grant_by_id(code.grant_id)
        if grant is None:  # revoked since the consent
            raise _TokenError("unauthorized_client", "client is not authorized")
        self._exchanges[code.login] += 1
        return self._issue(grant)

    def _grant_refresh(
        self, request: IRequest, client: StandinClient
    ) -> dict[str, object]:
        record = self._refresh.get(_param(request, "refresh_token"))
        if record is None or record.expires_at <= self._now():
            raise _TokenError("unauthorized_client", "unable to parse refresh token")
        grant = self._grant_by_id(record.grant_id)
        if grant is None:
            raise _TokenError("invalid_grant", "grant does not exist")
        if grant.client_id != client.client_id:
            raise _TokenError("invalid_grant", "invalid grant")
        if self._config.invalidate_refresh_tokens and record.counter != grant.counter:
            self.log.warn(
                "stand-in Forgejo: a refresh token of grant {grant_id} was used twice",
                grant_id=grant.grant_id,
            )
            raise _TokenError("unauthorized_client", "token was already used")
        self._refreshes[grant.login] += 1
        return self._issue(grant)

    # --- API ---------------------------------------------------------------

    def _authorized(
        self, request: IRequest, *groups: str
    ) -> tuple[StandinUser | None, bytes | None]:
        """
        The token's owner, or the answer Forgejo gives: 401 without a valid
        token, 403 when its grant's scope lacks the route's scope groups at
        the request's level (routers/api/v1/api.go, ``tokenRequiresScopes``).
        """
        header = _request_header(request, b"authorization").strip()
        scheme, _, raw = header.partition(b" ")
        found = None
        if scheme.lower() in (b"token", b"bearer") and raw.strip():
            try:
                found = self._token_of(raw.strip().decode("utf-8"))
            except UnicodeDecodeError:
                found = None
        if found is None:
            return None, self._token_required(request)
        user, scopes = found
        required = _required(request.method, groups)
        if not token_allows(scopes, required):
            self.refusals.update(required)
            return None, _json(
                request,
                403,
                {
                    "message": "token does not have at least one of required "
                    f"scope(s): [{' '.join(required)}]",
                    "url": f"{self.base_url}/api/swagger",
                },
            )
        return user, None

    @app.route("/api/v1/user", methods=["GET"])
    def api_user(self, request: IRequest) -> bytes:
        """The token's owner, as Forgejo's ``User`` JSON (scope: ``read:user``)."""
        user, refused = self._authorized(request, "user")
        if user is None:
            return refused or b""
        return _json(request, 200, self._user_json(user))

    def _api_user(self, request: IRequest) -> StandinUser | None:
        header = _request_header(request, b"authorization").strip()
        scheme, _, token = header.partition(b" ")
        if scheme.lower() in (b"token", b"bearer") and token.strip():
            try:
                return self._user_of_token(token.strip().decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return None

    def _token_required(self, request: IRequest) -> bytes:
        return _json(
            request,
            401,
            {"message": "token is required", "url": f"{self.base_url}/api/swagger"},
        )

    @app.route("/api/v1/user/orgs", methods=["GET"])
    def api_user_orgs(self, request: IRequest) -> bytes:
        """
        The token owner's organizations (scopes: ``read:user`` and
        ``read:organization``), paginated as Forgejo does: ``page`` from 1,
        ``limit`` up to 50 (default 30; Forgejo's ``[api]``
        ``DEFAULT_PAGING_NUM`` and ``MAX_RESPONSE_ITEMS``), ``X-Total-Count``
        and a ``Link`` header with ``next`` and ``last``.
        """
        user, refused = self._authorized(request, "user", "organization")
        if user is None:
            return refused or b""
        try:
            page = max(1, int(_param(request, "page") or 1))
            limit = int(_param(request, "limit") or ORG_PAGE_DEFAULT)
        except (ValueError, _BadParameterError):
            return _json(request, 422, {"message": "page and limit must be numbers"})
        limit = ORG_PAGE_DEFAULT if limit <= 0 else min(limit, ORG_PAGE_MAX)
        orgs = sorted(user.orgs)
        chunk = orgs[(page - 1) * limit : page * limit]
        last = max(1, -(-len(orgs) // limit))
        _header(request, b"X-Total-Count", str(len(orgs)).encode())
        links = []
        url = f"{self.base_url}/api/v1/user/orgs"
        if page < last:
            links.append(f'<{url}?limit={limit}&page={page + 1}>; rel="next"')
            links.append(f'<{url}?limit={limit}&page={last}>; rel="last"')
        if links:
            _header(request, b"Link", ",".join(links).encode())
        return _json(request, 200, [self._org_json(name) for name in chunk])

    # --- repositories and issues (all private to their owner) ---------------------

    def _not_found(self, request: IRequest) -> bytes:
        return _json(
            request,
            404,
            {
                "errors": ["The target couldn't be found."],
                "message": "The target couldn't be found.",
                "url": f"{self.base_url}/api/swagger",
            },
        )

    def _repo_of(
        self, user: StandinUser, owner: str, name: str
    ) -> tuple[str, str] | None:
        """The repository, if ``user`` may see it (its owner, or an admin)."""
        key = (owner, name)
        if key not in self._repos or (owner != user.login and not user.is_admin):
            return None
        return key

    def _repo_json(self, owner: str, name: str) -> dict[str, object]:
        return {
            "id": zlib.crc32(f"{owner}/{name}".encode()),
            "owner": {"login": owner, "username": owner},
            "name": name,
            "full_name": f"{owner}/{name}",
            "private": True,
            "html_url": f"{self.base_url}/{owner}/{name}",
            "default_branch": "main",
        }

    @app.route("/api/v1/user/repos", methods=["GET"])
    def api_user_repos(self, request: IRequest) -> bytes:
        """The token owner's repositories (``read:user`` and ``read:repository``)."""
        user, refused = self._authorized(request, "user", "repository")
        if user is None:
            return refused or b""
        mine = sorted(name for owner, name in self._repos if owner == user.login)
        return _json(request, 200, [self._repo_json(user.login, n) for n in mine])

    @app.route("/api/v1/repos/<string:owner>/<string:name>", methods=["GET", "DELETE"])
    def api_repo(self, request: IRequest, owner: str, name: str) -> bytes:
        """
        One repository (``read:repository``), or its deletion by its owner
        (``write:repository``; 204). The scope is checked before the
        repository is looked up, as Forgejo's route group does.
        """
        user, refused = self._authorized(request, "repository")
        if user is None:
            return refused or b""
        key = self._repo_of(user, owner, name)
        if key is None:
            return self._not_found(request)
        if request.method.upper() == b"DELETE":
            del self._repos[key]
            self._issues.pop(key, None)
            _status(request, 204)
            return b""
        return _json(request, 200, self._repo_json(owner, name))

    @app.route(
        "/api/v1/repos/<string:owner>/<string:name>/issues", methods=["GET", "POST"]
    )
    def api_issues(self, request: IRequest, owner: str, name: str) -> bytes:
        """A repository's issues (``read:issue``), or a new one (``write:issue``)."""
        user, refused = self._authorized(request, "issue")
        if user is None:
            return refused or b""
        key = self._repo_of(user, owner, name)
        if key is None:
            return self._not_found(request)
        issues = self._issues.setdefault(key, [])
        if request.method.upper() == b"GET":
            return _json(request, 200, issues)
        try:
            body = json.loads(request.content.read(MAX_PARAM_CHARS + 1) or b"{}")
        except ValueError:
            body = None
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return _json(
                request,
                422,
                {"message": "[Title]: Required", "url": f"{self.base_url}/api/swagger"},
            )
        issue = {
            "id": len(issues) + 1,
            "number": len(issues) + 1,
            "title": title[:255],
            "state": "open",
            "user": {"login": user.login},
        }
        issues.append(issue)
        return _json(request, 201, issue)

    def _org_json(self, name: str) -> dict[str, object]:
        return {
            "id": zlib.crc32(name.encode()),
            "name": name,
            "username": name,
            "full_name": "",
            "email": "",
            "avatar_url": f"{self.base_url}/avatars/{name}",
            "description": "",
            "website": "",
            "location": "",
            "visibility": "public",
            "repo_admin_change_team_access": False,
        }

    def _user_json(self, user: StandinUser) -> dict[str, object]:
        uid = list(self._users).index(user.login) + 1
        avatar = hashlib.md5(user.login.encode(), usedforsecurity=False).hexdigest()
        return {
            "id": uid,
            "login": user.login,
            "login_name": "",
            "source_id": 0,
            "full_name": user.full_name,
            "email": user.email or f"{user.login}@noreply.localhost",
            "avatar_url": f"{self.base_url}/avatars/{avatar}",
            "html_url": f"{self.base_url}/{user.login}",
            "language": "en-US",
            "is_admin": user.is_admin,
            "last_login": "1970-01-01T00:00:00Z",
            "created": "1970-01-01T00:00:00Z",
            "restricted": False,
            "active": True,
            "prohibit_login": False,
            "location": "",
            "pronouns": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
            "username": user.login,
        }

    @app.route("/api/v1/version", methods=["GET"])
    def api_version(self, request: IRequest) -> bytes:
        """Forgejo's version; public, as in Forgejo."""
        return _json(request, 200, {"version": self._config.version})

    # --- test hooks (HTTP, loopback only) -------------------------------------------

    def _hook_user(self, request: IRequest, login: str) -> str:
        if not _is_loopback_peer(request):
            raise _HookRefusedError()
        if login not in self._users:
            raise _PageError("Unknown user", f"No stand-in user {login!r}.", status=404)
        return login

    @app.route("/_standin/users/<string:login>/expire", methods=["POST"])
    def hook_expire(self, request: IRequest, login: str) -> bytes:
        """Expire the user's access tokens now (see `expire_user_tokens`)."""
        login = self._hook_user(request, login)
        return _json(
            request, 200, {"login": login, "expired": self.expire_user_tokens(login)}
        )

    @app.route("/_standin/users/<string:login>/revoke", methods=["POST"])
    def hook_revoke(self, request: IRequest, login: str) -> bytes:
        """Revoke the user's grants (see `revoke_user`)."""
        login = self._hook_user(request, login)
        return _json(request, 200, {"login": login, "revoked": self.revoke_user(login)})

    @app.route("/_standin/users/<string:login>", methods=["GET"])
    def hook_user_stats(self, request: IRequest, login: str) -> bytes:
        """The user's refresh and exchange counts and live access tokens."""
        login = self._hook_user(request, login)
        return _json(
            request,
            200,
            {
                "login": login,
                "refreshes": self.refresh_count(login),
                "exchanges": self.exchange_count(login),
                "live_access_tokens": self.live_access_tokens(login),
            },
        )

    @app.route("/_standin/stats", methods=["GET"])
    def hook_stats(self, request: IRequest) -> bytes:
        """Refresh and exchange counts of every user."""
        if not _is_loopback_peer(request):
            raise _HookRefusedError()
        return _json(
            request,
            200,
            {
                "refreshes": self.refresh_count(),
                "exchanges": self.exchange_count(),
                "token_lifetime": self.token_lifetime,
                "users": {
                    login: {
                        "refreshes": self.refresh_count(login),
                        "exchanges": self.exchange_count(login),
                    }
                    for login in self._users
                },
            },
        )

    @app.route("/_standin/token-lifetime", methods=["POST"])
    def hook_token_lifetime(self, request: IRequest) -> bytes:
        """Set the lifetime of access tokens issued from now on (form ``seconds``)."""
        if not _is_loopback_peer(request):
            raise _HookRefusedError()
        try:
            seconds = int(_param(request, "seconds"))
            self.set_token_lifetime(seconds)
        except (_BadParameterError, ValueError):
            return _json(
                request, 400, {"message": "seconds must be a whole number >= 0"}
            )
        return _json(request, 200, {"token_lifetime": self.token_lifetime})


# --- serving ------------------------------------------------------------------------


class _QuietSite(Site):
    """A Site without the access log: authorize URLs are not worth a log line each."""

    def log(self, request: Request) -> None:  # type: ignore[override]
        """Log nothing."""


def loopback_bind_address(host: str) -> str:
    """
    The loopback address to bind for ``host``, or `ValueError`.

    ``localhost`` means 127.0.0.1; any other name or a non-loopback address
    is refused: the stand-in accepts any password it was given and must not
    be reachable from another machine.
    """
    candidate = host.strip("[]")
    if candidate.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        raise ValueError(
            f"the stand-in Forgejo only listens on a loopback address, not {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"the stand-in Forgejo only listens on a loopback address, not {host!r}"
        )
    return str(address)


async def start_standin(
    reactor: Any,
    config: StandinConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> tuple[StandinForgejo, IListeningPort]:
    """
    Serve a new stand-in on ``host:port`` (port 0: any free port) of
    ``reactor``; returns it and its listening port (``getHost().port``).
    Refuses a non-loopback ``host`` with `ValueError`.
    """
    from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint

    address = loopback_bind_address(host)
    standin = StandinForgejo(config, clock=reactor)
    site = _QuietSite(standin.app.resource())  # type: ignore[no-untyped-call, unused-ignore]
    if ipaddress.ip_address(address).version == 6:
        endpoint: Any = TCP6ServerEndpoint(reactor, port, interface=address)  # type: ignore[no-untyped-call, unused-ignore]
        netloc = f"[{address}]"
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=address)  # type: ignore[no-untyped-call, unused-ignore]
        netloc = address
    listening: IListeningPort = await endpoint.listen(site)
    standin.base_url = f"http://{netloc}:{listening.getHost().port}"  # type: ignore[attr-defined]
    return standin, listening
