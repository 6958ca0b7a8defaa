# -*- test-case-name: tests.oauth.test_authorize -*-
"""
The authorization endpoint and the consent page.

fjmcp is a proxy with one static client id at Forgejo and dynamically
registered clients of its own, the "confused deputy" setting of the MCP
security best practices, so it asks for the user's consent per client id
*before* sending them to Forgejo, and only skips that page when a signed
cookie of this browser names a user who already approved that client (never
for a loopback or private-use redirect, which any local program can
present; never with ``prompt=consent``). Until the client and its redirect
URI are known, errors are pages (no open redirector); after that they go to
the client by redirect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol
from urllib.parse import urlsplit

from attrs import evolve, field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import IOAuthObserver
from fjmcp.oauth import pkce
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.challenge import MCP_SCOPE, READ_ONLY_SCOPE
from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    InvalidRequestError,
    InvalidTargetError,
    LoginRequiredError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from fjmcp.oauth.login import AuthRequest
from fjmcp.oauth.metadata import same_resource
from fjmcp.oauth.outcomes import Cookie, Page, Redirect, error_page, redirect_error
from fjmcp.oauth.registration import (
    display_name,
    is_native_redirect,
    redirect_matches,
)
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.tokens import new_secret
from fjmcp.observers import NO_OBSERVER
from fjmcp.policy.rules import Mode
from fjmcp.store.clients import ClientRecord
from fjmcp.store.grants import consent_mode_txn
from fjmcp.store.runner import TxnRunner

__all__ = [
    "CONSENT_TTL",
    "MAX_STATE",
    "AuthorizeEndpoint",
    "ClientLookup",
    "LoginStarter",
]

#: How long a consent page may be submitted.
CONSENT_TTL: Final = 600.0
MAX_STATE: Final = 2048
_PROMPTS: Final = frozenset({"none", "consent", "login", "select_account"})


class ClientLookup(Protocol):
    """Where clients are found (`fjmcp.oauth.clients.ClientDirectory`)."""

    async def find(self, client_id: str) -> ClientRecord | None:
        """The client ``client_id`` names, if any."""


class LoginStarter(Protocol):
    """What the endpoint needs of `fjmcp.oauth.login.ForgejoLogin`."""

    async def start(
        self,
        request: AuthRequest,
        *,
        consent_user: str | None,
        seed: str | None = None,
    ) -> Redirect | Page:
        """Send the browser to Forgejo for ``request``."""


def _registered(client: ClientRecord, redirect_uri: str) -> bool:
    """Whether ``redirect_uri`` is one of the client's (loopback ports aside)."""
    return any(redirect_matches(r, redirect_uri) for r in client.redirect_uris)


class _RedirectError(Exception):
    """An authorize error answered by redirecting to the client."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.error)
        self.error = error


@frozen
class AuthorizeEndpoint:
    """``GET /oauth/authorize`` and ``POST /oauth/consent``."""

    _settings: OAuthSettings
    _store: TxnRunner
    _clock: IReactorTime
    _clients: ClientLookup
    _cookies: BrowserCookies
    _login: LoginStarter
    _events: IOAuthObserver = field(default=NO_OBSERVER, kw_only=True)

    log = Logger()

    def _redirect_error(
        self, redirect_uri: str, state: str | None, error: OAuthError
    ) -> Redirect:
        return redirect_error(self._settings.issuer, redirect_uri, state, error)

    async def authorize(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        An error page until the client and its redirect URI are known, then
        errors by redirect; the consent page, or straight to Forgejo when
        this browser's user already approved this client.
        """
        client_id = params.get("client_id")
        if client_id is None:
            return error_page("The request names no client (client_id is missing).")
        try:
            client = await self._clients.find(client_id)
        except ClientDocumentError as e:
            return error_page(str(e))
        if client is None:
            return error_page("The application is not registered with this broker.")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            return error_page("The request has no redirect_uri.")
        if not _registered(client, redirect_uri):
            return error_page(
                "The redirect URI is not one this application registered."
            )
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE:
            return error_page("The state parameter is too long.")
        try:
            request, prompts = self._validate(client, params)
        except _RedirectError as e:
            return self._redirect_error(redirect_uri, state, e.error)
        user = self._cookies.logged_in_user(cookies)
        native = is_native_redirect(redirect_uri)
        stored: str | None = None
        if user is not None:
            stored = await self._store.run(consent_mode_txn, user, client.client_id)
        # A loopback or private-use redirect never skips the page (any local
        # program can present one); the stored mode is still preselected.
        known = stored is not None and not native
        if "none" in prompts:
            if user is None:
                error: OAuthError = LoginRequiredError("the user must log in")
                return self._redirect_error(redirect_uri, state, error)
            if not known:
                error = ConsentRequiredError("the user must approve this application")
                return self._redirect_error(redirect_uri, state, error)
        if known and stored is not None and "consent" not in prompts:
            request = self._with_mode(client, request, stored)
            return await self._login.start(request, consent_user=user)
        return self._consent_page(client, request, cookies, native, stored)

    def _validate(
        self, client: ClientRecord, params: Mapping[str, str]
    ) -> tuple[AuthRequest, frozenset[str]]:
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
        canonical = self._settings.resource
        if not same_resource(params.get("resource", canonical), canonical):
            raise _RedirectError(
                InvalidTargetError("resource must be this broker's /mcp")
            )
        prompts = frozenset(params.get("prompt", "").split())
        if not prompts <= _PROMPTS or ("none" in prompts and len(prompts) > 1):
            raise _RedirectError(InvalidRequestError("unsupported prompt value"))
        # Unknown scopes are dropped; mcp is always granted (offline_access
        # changes nothing: refresh tokens follow the client's grant_types).
        request = AuthRequest(
            client_id=client.client_id,
            redirect_uri=params["redirect_uri"],
            state=params.get("state"),
            code_challenge=challenge,
            scope=MCP_SCOPE,
            resource=canonical,  # the canonical form: the token's audience
        )
        return request, prompts

    def _full_allowed(self, client: ClientRecord) -> bool:
        return self._settings.full_access_allowed(client.client_id)

    def _with_mode(
        self, client: ClientRecord, request: AuthRequest, mode: str
    ) -> AuthRequest:
        """The request with the consent mode in its scope (full only if allowed)."""
        if mode == Mode.FULL.value and self._full_allowed(client):
            return evolve(request, scope=MCP_SCOPE)
        return evolve(request, scope=f"{MCP_SCOPE} {READ_ONLY_SCOPE}")

    def _consent_page(
        self,
        client: ClientRecord,
        request: AuthRequest,
        cookies: Mapping[str, str],
        native: bool,
        stored: str | None = None,
    ) -> Page:
        """
        The page, preselecting the mode this browser's user chose for the
        client before (``stored``), else the operator's default; never full
        access where the operator forbids it.
        """
        now = self._clock.seconds()
        blob = self._cookies.sign("consent", request.as_dict(), now + CONSENT_TTL)
        csrf_name = self._cookies.name("fjmcp-csrf")
        nonce = cookies.get(csrf_name)
        set_cookies: tuple[Cookie, ...] = ()
        if nonce is None or not 20 <= len(nonce) <= 100:
            nonce = new_secret()
            set_cookies = (Cookie(csrf_name, nonce, int(CONSENT_TTL * 6)),)
        parts = urlsplit(request.redirect_uri)
        full_allowed = self._full_allowed(client)
        preselected = stored or self._settings.policy.default_mode.value
        read_only = not full_allowed or preselected == Mode.READ_ONLY.value
        return Page(
            200,
            "consent.html",
            {
                "client_name": display_name(client.client_name)
                or "An unnamed application",
                "client_id": client.client_id,
                "redirect_host": parts.netloc or parts.scheme,
                "broker_name": self._settings.display_name,
                "broker_host": self._settings.broker_host,
                "redirect_uri": request.redirect_uri,
                "native": native,
                "forgejo_host": self._settings.forgejo_host,
                "request": blob,
                "csrf": self._cookies.csrf_token(nonce, blob),
                "read_only_checked": "checked" if read_only else "",
                "full_checked": "" if read_only else "checked",
                "full_disabled": "" if full_allowed else "disabled",
                "full_note": ""
                if full_allowed
                else "The operator allows this application read-only access only.",
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
        blob = form.get("request", "")
        payload = self._cookies.unsign("consent", blob)
        request = None if payload is None else AuthRequest.from_dict(payload)
        if request is None:
            return error_page(
                "This approval form has expired or was altered. Start again "
                "from your application."
            )
        nonce = cookies.get(self._cookies.name("fjmcp-csrf"), "")
        token = form.get("csrf", "")
        if not nonce or not self._cookies.csrf_matches(token, nonce, blob):
            return error_page("The approval could not be verified (CSRF check).", 403)
        try:
            client = await self._clients.find(request.client_id)
        except ClientDocumentError as e:
            return error_page(str(e))
        if client is None or not _registered(client, request.redirect_uri):
            return error_page("The application's registration has changed.")
        decision = form.get("decision")
        if decision in ("allow", "deny"):
            self._events.oauth_event("consent", None, client.client_id, decision)
        if decision == "deny":
            self.log.info(
                "consent denied for client {client_id}", client_id=client.client_id
            )
            return self._redirect_error(
                request.redirect_uri,
                request.state,
                AccessDeniedError("the user denied the request"),
            )
        if decision != "allow":
            return error_page("Choose Allow or Deny.")
        mode = form.get("mode", self._settings.policy.default_mode.value)
        if mode not in (Mode.FULL.value, Mode.READ_ONLY.value):
            return error_page("Choose read-only or full access.")
        if mode == Mode.FULL.value and not self._full_allowed(client):
            return error_page(
                "The operator allows this application read-only access only.", 403
            )
        request = self._with_mode(client, request, mode)
        # One form in one browser is one login, however often it is sent.
        seed = self._cookies.mac("consent-flow", nonce, blob)
        return await self._login.start(request, consent_user=None, seed=seed)
