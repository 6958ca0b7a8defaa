# -*- test-case-name: tests.oauth.test_server -*-
"""
The authorization server: registration, authorize + consent, Forgejo's
callback, the token endpoint and revocation.

fjmcp is an OAuth 2.1 authorization server whose users log in at Forgejo.
It is a proxy with one static client id at Forgejo and dynamically
registered clients of its own, the "confused deputy" setting of the MCP
security best practices, so it asks for the user's consent per client id
*before* sending them to Forgejo, and only skips that page when a signed
cookie of this browser names a user who already approved that client (never
for a loopback or private-use redirect, which any local program can
present; never with ``prompt=consent``). The state sent to Forgejo is
created only after consent, kept in the store (a restart does not break a
login in progress), bound to this browser by a cookie, and good for one
callback.

This module is HTTP-free: it takes parsed parameters and cookies and
returns outcomes (`Redirect`, `Page`, a JSON document) that
`fjmcp.web.oauth_routes` renders. Errors are `fjmcp.oauth.errors` types.
Revocations (``/oauth/revoke``, a replayed code, a reused refresh token)
are reported to the bearer cache at once, and to the session layer
(`ISessionControl.end_user_client`) when one is attached.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote, urlencode, urlsplit

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.config import Config
from fjmcp.interfaces import ISessionControl
from fjmcp.oauth import pkce
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.challenge import MCP_SCOPE
from fjmcp.oauth.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    LoginRequiredError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from fjmcp.oauth.keys import KeyRing, SealError
from fjmcp.oauth.metadata import endpoint, resource_url, same_resource
from fjmcp.oauth.registration import is_native_redirect, validate_registration
from fjmcp.oauth.signing import mac, sign, unsign
from fjmcp.oauth.tokens import (
    hash_secret,
    new_client_id,
    new_family_id,
    new_secret,
    remaining,
    token_id,
)
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.store.clients import (
    ClientRecord,
    get_client_txn,
    insert_client_txn,
    touch_client_txn,
)
from fjmcp.store.grants import (
    CodeGrant,
    Grant,
    GrantOutcome,
    Mint,
    PendingAuthorization,
    has_consent_txn,
    insert_code_txn,
    insert_pending_txn,
    record_consent_txn,
    redeem_code_txn,
    refresh_txn,
    revoke_token_txn,
    take_pending_txn,
    upsert_user_txn,
)
from fjmcp.store.runner import TxnRunner
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoUnavailable

if TYPE_CHECKING:  # the types only: no treq on this import path
    from fjmcp.upstream.forgejo import ForgejoTokens, ForgejoUser

__all__ = [
    "AuthorizationServer",
    "Cookie",
    "ForgejoLike",
    "Page",
    "Redirect",
]

#: How long a consent page may be submitted, and a login at Forgejo take.
CONSENT_TTL: Final = 600.0
LOGIN_TTL: Final = 600.0
#: How long the "this browser logged in as ..." cookie is trusted.
USER_COOKIE_TTL: Final = 30 * 24 * 3600.0
MAX_STATE: Final = 2048
_KNOWN_SCOPES: Final = frozenset({MCP_SCOPE, "offline_access"})
_PROMPTS: Final = frozenset({"none", "consent", "login", "select_account"})


class ForgejoLike(Protocol):
    """What the server needs of `fjmcp.upstream.forgejo.ForgejoClient`."""

    def authorize_url(
        self,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        scopes: tuple[str, ...] | list[str] = (),
    ) -> str:
        """Where to send the browser to log in at Forgejo."""

    async def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str
    ) -> ForgejoTokens:
        """Trade Forgejo's code for tokens."""

    async def get_user(self, access_token: str) -> ForgejoUser:
        """Who the token belongs to."""


# --- outcomes -------------------------------------------------------------------


@frozen
class Cookie:
    """A cookie to set (``max_age=0`` deletes it)."""

    name: str
    value: str = field(repr=False)
    max_age: int


@frozen
class Redirect:
    """Send the browser to ``location``."""

    location: str = field(repr=False)
    cookies: tuple[Cookie, ...] = ()


@frozen
class Page:
    """An HTML page: ``template`` filled with (unescaped) ``fields``."""

    status: int
    template: str
    fields: Mapping[str, Any]
    cookies: tuple[Cookie, ...] = ()


def _with_query(uri: str, params: Mapping[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(uri).query else "?"
    if uri.endswith(("?", "&")):
        separator = ""
    return uri + separator + query


def _error_page(message: str, status: int = 400) -> Page:
    return Page(
        status, "error.html", {"title": "Authorization failed", "message": message}
    )


@frozen
class _AuthRequest:
    """A validated authorization request (what the consent form carries)."""

    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str
    resource: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "scope": self.scope,
            "resource": self.resource,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _AuthRequest | None:
        names = (
            "client_id",
            "redirect_uri",
            "state",
            "code_challenge",
            "scope",
            "resource",
        )
        values: dict[str, Any] = {n: data.get(n) for n in names}
        for n in names:
            if n != "state" and not isinstance(values[n], str):
                return None
        if values["state"] is not None and not isinstance(values["state"], str):
            return None
        return cls(**values)


class _RedirectError(Exception):
    """An authorize error answered by redirecting to the client."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.error)
        self.error = error


@define
class AuthorizationServer:
    """
    The OAuth logic of the broker.

    :param forgejo: the Forgejo client (`fjmcp.upstream.forgejo.ForgejoClient`).
    :param bearer: the bearer cache told about revocations.
    """

    _config: Config
    _store: TxnRunner
    _clock: IReactorTime
    _keys: KeyRing
    _forgejo: ForgejoLike
    _upstream: UpstreamTokens
    _bearer: BearerAuthenticator | None = None
    session_control: ISessionControl | None = None
    """Set by the wiring once the session layer exists."""
    _cookie_key: bytes = field(init=False)

    log = Logger()

    def __attrs_post_init__(self) -> None:
        self._cookie_key = self._keys.derive("cookies")

    # --- names ------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer: exactly ``public_url``."""
        return self._config.public_url

    @property
    def resource(self) -> str:
        """The one protected resource and token audience."""
        return resource_url(self._config.public_url)

    @property
    def callback_url(self) -> str:
        """Where Forgejo sends the browser back."""
        return endpoint(self._config.public_url, "/oauth/callback")

    @property
    def secure_cookies(self) -> bool:
        """``Secure`` and ``__Host-`` cookies only when the broker is https."""
        return self._config.public_url.startswith("https://")

    def cookie_name(self, base: str) -> str:
        """A cookie's name, ``__Host-`` prefixed on https."""
        return ("__Host-" if self.secure_cookies else "") + base

    def _now(self) -> float:
        return self._clock.seconds()

    # --- revocation hooks -------------------------------------------------------------

    def _revoked(
        self, grant: Grant | None, hashes: tuple[str, ...], reason: str
    ) -> None:
        if self._bearer is not None and hashes:
            self._bearer.forget_tokens(hashes)
        if grant is None:
            return
        self.log.info(
            "tokens of {user} via {client_id} revoked ({reason}); {count} token(s)",
            user=grant.user,
            client_id=grant.client_id,
            reason=reason,
            count=len(hashes),
        )
        control = self.session_control
        if control is not None:
            d: Deferred[None] = Deferred.fromCoroutine(
                self._end_sessions(control, grant, reason)
            )
            d.addErrback(lambda f: self.log.failure("ending sessions failed", f))

    async def _end_sessions(
        self, control: ISessionControl, grant: Grant, reason: str
    ) -> None:
        await control.end_user_client(grant.user, grant.client_id, reason)

    # --- registration -----------------------------------------------------------------

    async def register(self, document: Any) -> dict[str, Any]:
        """RFC 7591: store a new client; the answer holds its id (and secret)."""
        registration = validate_registration(document)
        now = self._now()
        client_id = new_client_id()
        secret = new_secret() if registration.auth_method != "none" else None
        record = ClientRecord(
            client_id=client_id,
            kind="dcr",
            auth_method=registration.auth_method,
            grant_types=registration.grant_types,
            redirect_uris=registration.redirect_uris,
            client_name=registration.client_name,
            metadata=registration.metadata,
            secret_hash=hash_secret(secret) if secret else None,
            created_at=now,
        )
        await self._store.run(insert_client_txn, record)
        self.log.info(
            "registered client {client_id} ({name}, {method})",
            client_id=client_id,
            name=registration.client_name or "unnamed",
            method=registration.auth_method,
        )
        answer = dict(registration.metadata)
        answer["client_id"] = client_id
        answer["client_id_issued_at"] = int(now)
        if secret is not None:
            answer["client_secret"] = secret
            answer["client_secret_expires_at"] = 0
        return answer

    # --- client authentication -----------------------------------------------------

    async def authenticate_client(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> ClientRecord:
        """
        The client of a token or revocation request, authenticated with the
        method it registered (HTTP Basic, the form, or none for public
        clients). Raises `InvalidClientError` (401).
        """
        basic = authorization is not None and authorization[:6].lower() == b"basic "
        challenge = {"WWW-Authenticate": 'Basic realm="fjmcp"'} if basic else {}
        if authorization is not None and not basic:
            raise InvalidClientError(
                "unsupported client authentication scheme", headers=challenge
            )
        secret: str | None
        if basic and authorization is not None:
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True)
                raw_id, sep, raw_secret = decoded.decode("utf-8").partition(":")
            except (binascii.Error, ValueError):
                raise InvalidClientError(
                    "malformed Basic credentials", headers=challenge
                ) from None
            if not sep:
                raise InvalidClientError(
                    "malformed Basic credentials", headers=challenge
                )
            client_id, secret = unquote(raw_id), unquote(raw_secret)
            if "client_secret" in form:
                raise InvalidRequestError("use one client authentication method")
            if form.get("client_id", client_id) != client_id:
                raise InvalidClientError("client_id does not match", headers=challenge)
            method = "client_secret_basic"
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret")
            method = "client_secret_post" if secret is not None else "none"
        if not client_id:
            raise InvalidClientError("client authentication is required")
        client = await self._store.run(get_client_txn, client_id)
        if client is None:
            raise InvalidClientError("unknown client", headers=challenge)
        if client.auth_method != method:
            raise InvalidClientError(
                f"this client authenticates with {client.auth_method}",
                headers=challenge,
            )
        if method != "none":
            expected = client.secret_hash or ""
            if secret is None or not hmac.compare_digest(
                hash_secret(secret).encode(), expected.encode()
            ):
                raise InvalidClientError(
                    "client authentication failed", headers=challenge
                )
        return client

    # --- token endpoint ------------------------------------------------------------

    def _mint(self, client: ClientRecord) -> tuple[Mint, str, str | None]:
        now = self._now()
        access = new_secret()
        refresh = new_secret() if client.refresh_allowed else None
        mint = Mint(
            access_hash=hash_secret(access),
            access_expires_at=now + self._config.access_token_ttl,
            refresh_hash=hash_secret(refresh) if refresh else None,
            refresh_expires_at=now + self._config.refresh_token_ttl
            if refresh
            else None,
            now=now,
        )
        return mint, access, refresh

    def _token_answer(
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

    def _check_resource(self, form: Mapping[str, str], expected: str) -> None:
        resource = form.get("resource")
        if resource is not None and not same_resource(resource, expected):
            raise InvalidTargetError("resource must be this broker's /mcp")

    async def token(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> dict[str, Any]:
        """The token endpoint: ``authorization_code`` and ``refresh_token``."""
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("grant_type is required")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise UnsupportedGrantTypeError(f"grant_type {grant_type[:40]!r}")
        client = await self.authenticate_client(form, authorization)
        if grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"this client may not use {grant_type}")
        await self._store.run(touch_client_txn, client.client_id, self._now())
        if grant_type == "authorization_code":
            return await self._code_grant(client, form)
        return await self._refresh_grant(client, form)

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
            elif stored.redirect_uri != redirect_uri:
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
            return self._token_answer(mint, access, refresh, outcome.grant.scope)
        if outcome.status == "replayed":
            self._revoked(outcome.grant, outcome.revoked, "authorization code replayed")
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
        self._check_resource(form, self.resource)
        mint, access, refresh = self._mint(client)
        if refresh is None:  # pragma: no cover - refresh_token grant implies it
            raise UnauthorizedClientError("this client may not use refresh_token")
        outcome: GrantOutcome = await self._store.run(
            refresh_txn, hash_secret(refresh_token), client.client_id, mint
        )
        if outcome.status == "ok" and outcome.grant is not None:
            return self._token_answer(mint, access, refresh, outcome.grant.scope)
        if outcome.status == "reused":
            self._revoked(outcome.grant, outcome.revoked, "refresh token reused")
            raise InvalidGrantError("refresh token already used; the grant is revoked")
        if outcome.status == "expired":
            raise InvalidGrantError("refresh token expired")
        if outcome.status == "revoked":
            raise InvalidGrantError("refresh token revoked")
        raise InvalidGrantError("unknown refresh token")

    # --- revocation ------------------------------------------------------------------

    async def revoke(
        self, form: Mapping[str, str], authorization: bytes | None
    ) -> None:
        """
        RFC 7009: revoke an access or refresh token of the calling client
        (its whole grant). Unknown tokens and other clients' tokens are
        answered the same way, with nothing changed, so this endpoint is no
        oracle for token validity.
        """
        client = await self.authenticate_client(form, authorization)
        token = form.get("token")
        if token is None:
            raise InvalidRequestError("token is required")
        outcome: GrantOutcome = await self._store.run(
            revoke_token_txn, hash_secret(token), client.client_id, self._now()
        )
        if outcome.status == "ok":
            self._revoked(outcome.grant, outcome.revoked, "revoked by the client")

    # --- authorize --------------------------------------------------------------------

    def _redirect_error(
        self,
        request: _AuthRequest | None,
        redirect_uri: str,
        state: str | None,
        error: OAuthError,
    ) -> Redirect:
        return Redirect(
            _with_query(
                redirect_uri,
                {
                    "error": error.error,
                    "error_description": error.description or None,
                    "state": state,
                    "iss": self.issuer,
                },
            )
        )

    def logged_in_user(self, cookies: Mapping[str, str]) -> str | None:
        """The login this browser's signed user cookie names, if valid."""
        value = cookies.get(self.cookie_name("fjmcp-user"))
        if value is None:
            return None
        payload = unsign(self._cookie_key, "user", value, self._now())
        user = None if payload is None else payload.get("u")
        return user if isinstance(user, str) else None

    async def authorize(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        ``GET /oauth/authorize``: an error page until the client and its
        redirect URI are known (never a redirect: no open redirector), then
        errors by redirect; the consent page, or straight to Forgejo when
        this browser's user already approved this client.
        """
        client_id = params.get("client_id")
        if client_id is None:
            return _error_page("The request names no client (client_id is missing).")
        client = await self._store.run(get_client_txn, client_id)
        if client is None:
            return _error_page("The application is not registered with this broker.")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            return _error_page("The request has no redirect_uri.")
        if redirect_uri not in client.redirect_uris:
            return _error_page(
                "The redirect URI is not one this application registered."
            )
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE:
            return _error_page("The state parameter is too long.")
        try:
            request, prompts = self._validate_authorize(client, params)
        except _RedirectError as e:
            return self._redirect_error(None, redirect_uri, state, e.error)
        user = self.logged_in_user(cookies)
        native = is_native_redirect(redirect_uri)
        known = False
        if user is not None and not native:
            known = await self._store.run(has_consent_txn, user, client.client_id)
        if "none" in prompts:
            if user is None:
                error: OAuthError = LoginRequiredError("the user must log in")
                return self._redirect_error(request, redirect_uri, state, error)
            if not known:
                error = ConsentRequiredError("the user must approve this application")
                return self._redirect_error(request, redirect_uri, state, error)
        if known and "consent" not in prompts:
            return await self._start_login(request, consent_user=user)
        return self._consent_page(client, request, cookies, native)

    def _validate_authorize(
        self, client: ClientRecord, params: Mapping[str, str]
    ) -> tuple[_AuthRequest, frozenset[str]]:
        if params.get("response_type") != "code":
            raise _RedirectError(
                UnsupportedResponseTypeError("response_type must be code")
            )
        if "authorization_code" not in client.grant_types:
            raise _RedirectError(
                UnauthorizedClientError("this client may not use authorization_code")
            )
        method = params.get("code_challenge_method")
        if method is None:
            raise _RedirectError(
                InvalidRequestError("PKCE is required: code_challenge_method=S256")
            )
        if method != "S256":
            raise _RedirectError(InvalidRequestError("only S256 PKCE is supported"))
        challenge = params.get("code_challenge", "")
        if not pkce.is_valid_challenge(challenge):
            raise _RedirectError(
                InvalidRequestError("code_challenge must be 43 base64url characters")
            )
        resource = params.get("resource", self.resource)
        if not same_resource(resource, self.resource):
            raise _RedirectError(
                InvalidTargetError("resource must be this broker's /mcp")
            )
        prompts = frozenset(params.get("prompt", "").split())
        if not prompts <= _PROMPTS or ("none" in prompts and len(prompts) > 1):
            raise _RedirectError(InvalidRequestError("unsupported prompt value"))
        # Unknown scopes are dropped; mcp is always granted (offline_access
        # changes nothing: refresh tokens follow the client's grant_types).
        request = _AuthRequest(
            client_id=client.client_id,
            redirect_uri=params["redirect_uri"],
            state=params.get("state"),
            code_challenge=challenge,
            scope=MCP_SCOPE,
            resource=self.resource,  # the canonical form: the token's audience
        )
        return request, prompts

    def _csrf_token(self, nonce: str, blob: str) -> str:
        return mac(self._cookie_key, "csrf", nonce, blob)

    def _consent_page(
        self,
        client: ClientRecord,
        request: _AuthRequest,
        cookies: Mapping[str, str],
        native: bool,
    ) -> Page:
        now = self._now()
        blob = sign(self._cookie_key, "consent", request.as_dict(), now + CONSENT_TTL)
        csrf_name = self.cookie_name("fjmcp-csrf")
        nonce = cookies.get(csrf_name)
        set_cookies: tuple[Cookie, ...] = ()
        if nonce is None or not 20 <= len(nonce) <= 100:
            nonce = new_secret()
            set_cookies = (Cookie(csrf_name, nonce, int(CONSENT_TTL * 6)),)
        parts = urlsplit(request.redirect_uri)
        return Page(
            200,
            "consent.html",
            {
                "client_name": client.client_name or "An unnamed application",
                "client_id": client.client_id,
                "redirect_host": parts.hostname or parts.scheme,
                "redirect_uri": request.redirect_uri,
                "native": native,
                "forgejo_host": urlsplit(self._config.forgejo_url).hostname or "",
                "request": blob,
                "csrf": self._csrf_token(nonce, blob),
            },
            set_cookies,
        )

    async def consent(
        self, form: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        ``POST /oauth/consent``: the user's Allow or Deny. The form must carry
        an intact request and a CSRF token bound to this browser's cookie.
        """
        now = self._now()
        blob = form.get("request", "")
        payload = unsign(self._cookie_key, "consent", blob, now)
        request = None if payload is None else _AuthRequest.from_dict(payload)
        if request is None:
            return _error_page(
                "This approval form has expired or was altered. Start again "
                "from your application."
            )
        nonce = cookies.get(self.cookie_name("fjmcp-csrf"), "")
        token = form.get("csrf", "")
        if not nonce or not hmac.compare_digest(
            self._csrf_token(nonce, blob).encode(), token.encode("utf-8", "replace")
        ):
            return _error_page("The approval could not be verified (CSRF check).", 403)
        client = await self._store.run(get_client_txn, request.client_id)
        if client is None or request.redirect_uri not in client.redirect_uris:
            return _error_page("The application's registration has changed.")
        decision = form.get("decision")
        if decision == "deny":
            self.log.info(
                "consent denied for client {client_id}", client_id=client.client_id
            )
            return self._redirect_error(
                request,
                request.redirect_uri,
                request.state,
                AccessDeniedError("the user denied the request"),
            )
        if decision != "allow":
            return _error_page("Choose Allow or Deny.")
        return await self._start_login(request, consent_user=None)

    async def _start_login(
        self, request: _AuthRequest, *, consent_user: str | None
    ) -> Redirect:
        now = self._now()
        state = new_secret()
        browser = new_secret()
        verifier = pkce.new_verifier()
        state_hash = hash_secret(state)
        key_id, sealed = self._keys.seal(
            verifier.encode("ascii"), b"fjmcp/pending/" + state_hash.encode("ascii")
        )
        await self._store.run(
            insert_pending_txn,
            PendingAuthorization(
                state_hash=state_hash,
                browser_hash=hash_secret(browser),
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                client_state=request.state,
                code_challenge=request.code_challenge,
                scope=request.scope,
                resource=request.resource,
                consent_user=consent_user,
                key_id=key_id,
                verifier_sealed=sealed,
                created_at=now,
                expires_at=now + LOGIN_TTL,
            ),
        )
        location = self._forgejo.authorize_url(
            self.callback_url, state, pkce.s256(verifier), self._config.forgejo_scopes
        )
        return Redirect(
            location, (Cookie(self._flow_cookie(state_hash), browser, int(LOGIN_TTL)),)
        )

    def _flow_cookie(self, state_hash: str) -> str:
        return self.cookie_name("fjmcp-flow-" + state_hash[:16])

    # --- callback ---------------------------------------------------------------------

    async def callback(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        ``GET /oauth/callback``: Forgejo sends the browser back. The state
        must name a login in progress started in this browser (single use);
        then the code is exchanged, the user fetched, their Forgejo tokens
        sealed, the consent recorded for them, and a broker code sent to
        the client with ``state`` and ``iss``.
        """
        state = params.get("state")
        if state is None:
            return _error_page("Forgejo's answer has no state.")
        now = self._now()
        state_hash = hash_secret(state)
        pending = await self._store.run(take_pending_txn, state_hash, now)
        if pending is None:
            return _error_page(
                "This login is unknown, already used or expired. Start again "
                "from your application."
            )
        flow_name = self._flow_cookie(state_hash)
        clear = (Cookie(flow_name, "", 0),)
        browser = cookies.get(flow_name, "")
        if not browser or not hmac.compare_digest(
            hash_secret(browser).encode(), pending.browser_hash.encode()
        ):
            return Page(
                400,
                "error.html",
                {
                    "title": "Authorization failed",
                    "message": "This login was started in another browser.",
                },
                clear,
            )

        def fail(error: OAuthError) -> Redirect:
            redirect = self._redirect_error(
                None, pending.redirect_uri, pending.client_state, error
            )
            return Redirect(redirect.location, clear)

        if "error" in params:
            return fail(AccessDeniedError("the login at Forgejo was not completed"))
        code = params.get("code")
        if code is None:
            return fail(AccessDeniedError("Forgejo returned no code"))
        try:
            verifier = self._keys.open(
                pending.key_id,
                pending.verifier_sealed,
                b"fjmcp/pending/" + state_hash.encode("ascii"),
            ).decode("ascii")
        except SealError:
            self.log.failure("a pending login's verifier does not open")
            return fail(ServerError("the login could not be completed"))
        try:
            tokens = await self._forgejo.exchange_code(
                code, self.callback_url, verifier
            )
            user = await self._forgejo.get_user(tokens.access_token)
        except ForgejoAuthError:
            return fail(AccessDeniedError("Forgejo refused the login"))
        except ForgejoUnavailable:
            return fail(
                TemporarilyUnavailableError("Forgejo is unavailable; try again")
            )
        if pending.consent_user is not None and pending.consent_user != user.login:
            # Consent was skipped for another user of this browser.
            return fail(
                ConsentRequiredError("log in again to approve this application")
            )
        now = self._now()
        user_id: int = await self._store.run(upsert_user_txn, user.login, user.id, now)
        await self._upstream.replace(
            user.login,
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at(now),
            forgejo_id=user.id,
        )
        await self._store.run(record_consent_txn, user_id, pending.client_id, now)
        code_value = new_secret()
        await self._store.run(
            insert_code_txn,
            CodeGrant(
                code_hash=hash_secret(code_value),
                client_id=pending.client_id,
                user_id=user_id,
                redirect_uri=pending.redirect_uri,
                code_challenge=pending.code_challenge,
                scope=pending.scope,
                resource=pending.resource,
                family_id=new_family_id(),
                created_at=now,
                expires_at=now + self._config.auth_code_ttl,
            ),
        )
        self.log.info(
            "{user} logged in for client {client_id}",
            user=user.login,
            client_id=pending.client_id,
        )
        user_cookie = sign(
            self._cookie_key, "user", {"u": user.login}, now + USER_COOKIE_TTL
        )
        location = _with_query(
            pending.redirect_uri,
            {"code": code_value, "state": pending.client_state, "iss": self.issuer},
        )
        return Redirect(
            location,
            (
                *clear,
                Cookie(
                    self.cookie_name("fjmcp-user"), user_cookie, int(USER_COOKIE_TTL)
                ),
            ),
        )
