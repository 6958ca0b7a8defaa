# -*- test-case-name: tests.oauth.test_login -*-
"""
The user's round trip through Forgejo: start a login for an approved
authorization request, and finish it at Forgejo's callback with a broker
code for the client.

The state sent to Forgejo is created only after consent, kept in the store
(a restart does not break a login in progress) with the PKCE verifier
sealed, bound to this browser by a cookie, and good for one callback. At
the callback the code is exchanged, the user fetched, their Forgejo tokens
stored, the consent recorded for them, and a broker code sent to the
client with ``state`` and ``iss`` (RFC 9207).

The login asks Forgejo for the upstream grant of the chosen consent mode
(`fjmcp.interfaces.UpstreamGrants`): a read-only consent, when read-only
grants have scopes of their own, logs in through the read-only OAuth2
application with ``forgejo_scopes_read_only``, and its tokens are stored as
that grant's; the consent mode rides in the pending login's scope, so the
callback exchanges the code with the same application.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.interfaces import FULL_CONSENT
from fjmcp.oauth import pkce
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.challenge import READ_ONLY_SCOPE
from fjmcp.oauth.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)
from fjmcp.oauth.keys import SealError, SealingKeys
from fjmcp.oauth.outcomes import (
    Cookie,
    Page,
    Redirect,
    error_page,
    redirect_error,
    with_query,
)
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.tokens import hash_secret, new_family_id, new_secret
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.store.grants import (
    CodeGrant,
    PendingAuthorization,
    find_pending_txn,
    insert_code_txn,
    insert_pending_txn,
    record_consent_txn,
    take_pending_txn,
    upsert_user_txn,
)
from fjmcp.store.runner import TxnRunner
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoUnavailable

if TYPE_CHECKING:  # the types only: no treq on this import path
    from fjmcp.upstream.forgejo import ForgejoTokens, ForgejoUser

__all__ = [
    "LOGIN_TTL",
    "AuthRequest",
    "ForgejoLike",
    "ForgejoLogin",
    "app_for_consent",
    "check_apps",
    "pending_aad",
]

#: How long a login at Forgejo may take.
LOGIN_TTL: Final = 600.0


class ForgejoLike(Protocol):
    """What the login needs of `fjmcp.upstream.forgejo.ForgejoClient`."""

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

    async def get_orgs(self, access_token: str) -> frozenset[str]:
        """The organizations the token's owner is a member of."""


def consent_of_scope(scope: str) -> str:
    """The consent mode a broker scope string carries."""
    return "read-only" if READ_ONLY_SCOPE in scope.split() else FULL_CONSENT


def app_for_consent(
    settings: OAuthSettings,
    consent: str,
    full: ForgejoLike,
    read_only: ForgejoLike | None,
) -> ForgejoLike:
    """The OAuth2 application at Forgejo the grant of ``consent`` is made with."""
    if consent != FULL_CONSENT and settings.grants.separate:
        if read_only is None:  # pragma: no cover - refused at construction
            raise ValueError("read-only grants have no application of their own")
        return read_only
    return full


def check_apps(settings: OAuthSettings, read_only: ForgejoLike | None) -> None:
    """Refuse read-only grants of their own without their own application."""
    if settings.grants.separate and read_only is None:
        raise ValueError(
            "read-only grants have scopes of their own but no OAuth2 "
            "application at Forgejo to be made through"
        )


@frozen
class AuthRequest:
    """A validated authorization request (what the consent form carries)."""

    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str
    resource: str

    def as_dict(self) -> dict[str, Any]:
        """The request as a signable payload."""
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "scope": self.scope,
            "resource": self.resource,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthRequest | None:
        """The request `as_dict` gave, or ``None`` if ``data`` is not one."""
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


def pending_aad(state_hash: str) -> bytes:
    """
    The associated data of a pending login's sealed PKCE verifier: bound to
    its state, so a blob moved to another login does not open.
    """
    return b"fjmcp/pending/" + state_hash.encode("ascii")


@frozen
class ForgejoLogin:
    """Logins at Forgejo on behalf of an approved authorization request."""

    _settings: OAuthSettings
    _store: TxnRunner
    _clock: IReactorTime
    _keys: SealingKeys
    _forgejo: ForgejoLike
    _upstream: UpstreamTokens
    _cookies: BrowserCookies
    _memberships: Callable[[str, frozenset[str]], None]
    """Told each user's Forgejo organizations at login (the policy's rules)."""
    _read_only_forgejo: ForgejoLike | None = field(default=None, kw_only=True)
    """The application read-only grants are made through, if they have one."""

    log = Logger()

    def __attrs_post_init__(self) -> None:
        check_apps(self._settings, self._read_only_forgejo)

    def _app(self, consent: str) -> ForgejoLike:
        return app_for_consent(
            self._settings, consent, self._forgejo, self._read_only_forgejo
        )

    async def start(
        self,
        request: AuthRequest,
        *,
        consent_user: str | None,
        seed: str | None = None,
    ) -> Redirect | Page:
        """
        Send the browser to Forgejo for ``request``; ``consent_user`` is the
        user whose earlier consent let the consent page be skipped.

        ``seed`` (a secret of one submitted consent form in one browser)
        makes the login's state, browser cookie and verifier derived instead
        of random, so a second Approve of the same form (a double click)
        finds the same login: the same redirect while it is in progress, a
        clear page once its callback took it, never a second login.
        """
        now = self._clock.seconds()
        if seed is None:
            state, browser, verifier = new_secret(), new_secret(), pkce.new_verifier()
        else:
            state, browser, verifier = (
                self._cookies.mac("flow", part, seed)
                for part in ("state", "browser", "verifier")
            )
        state_hash = hash_secret(state)
        key_id, sealed = self._keys.seal(
            verifier.encode("ascii"), pending_aad(state_hash)
        )
        status: str = await self._store.run(
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
        if status == "taken":
            return error_page(
                "This approval was already used and the login has finished. "
                "Return to your application.",
                409,
            )
        consent = consent_of_scope(request.scope)
        location = self._app(consent).authorize_url(
            self._settings.callback_url,
            state,
            pkce.s256(verifier),
            self._settings.grants.scopes(consent),
        )
        flow = Cookie(self._cookies.flow_name(state_hash), browser, int(LOGIN_TTL))
        return Redirect(location, (flow,))

    async def callback(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        ``GET /oauth/callback``: Forgejo sends the browser back. The state
        must name a login in progress started in this browser (single use).
        """
        state = params.get("state")
        if state is None:
            return error_page("Forgejo's answer has no state.")
        now = self._clock.seconds()
        state_hash = hash_secret(state)
        found: tuple[PendingAuthorization | None, bool] = await self._store.run(
            find_pending_txn, state_hash, now
        )
        pending, taken = found
        if taken:
            return error_page(
                "This login has already finished: its answer went to your "
                "application. You can close this page.",
                409,
            )
        if pending is None:
            return error_page(
                "This login is unknown or expired. Start again from your application."
            )
        flow_name = self._cookies.flow_name(state_hash)
        clear = (Cookie(flow_name, "", 0),)
        browser = cookies.get(flow_name, "")
        # The browser is checked before the login is taken: someone who
        # learns a state value cannot cancel another person's login.
        if not browser or not hmac.compare_digest(
            hash_secret(browser).encode(), pending.browser_hash.encode()
        ):
            page = error_page("This login was started in another browser.")
            return Page(page.status, page.template, page.fields, clear)
        if await self._store.run(take_pending_txn, state_hash, now) is None:
            return error_page(
                "This login has already finished: its answer went to your "
                "application. You can close this page.",
                409,
            )

        def fail(error: OAuthError) -> Redirect:
            return redirect_error(
                self._settings.issuer,
                pending.redirect_uri,
                pending.client_state,
                error,
                clear,
            )

        if "error" in params:
            return fail(AccessDeniedError("the login at Forgejo was not completed"))
        code = params.get("code")
        if code is None:
            return fail(AccessDeniedError("Forgejo returned no code"))
        try:
            verifier = self._keys.open(
                pending.key_id, pending.verifier_sealed, pending_aad(state_hash)
            ).decode("ascii")
        except SealError:
            self.log.failure("a pending login's verifier does not open")
            return fail(ServerError("the login could not be completed"))
        consent = consent_of_scope(pending.scope)
        app = self._app(consent)
        try:
            tokens = await app.exchange_code(
                code, self._settings.callback_url, verifier
            )
            user = await app.get_user(tokens.access_token)
            orgs = await app.get_orgs(tokens.access_token)
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
        self._memberships(user.login, orgs)
        code_value = await self._issue_code(pending, user, tokens)
        self.log.info(
            "{user} logged in for client {client_id}",
            user=user.login,
            client_id=pending.client_id,
        )
        location = with_query(
            pending.redirect_uri,
            {
                "code": code_value,
                "state": pending.client_state,
                "iss": self._settings.issuer,
            },
        )
        return Redirect(location, (*clear, self._cookies.user_cookie(user.login)))

    async def _issue_code(
        self, pending: PendingAuthorization, user: ForgejoUser, tokens: ForgejoTokens
    ) -> str:
        """Keep the user, their Forgejo tokens and consent; a new broker code."""
        now = self._clock.seconds()
        user_id: int = await self._store.run(upsert_user_txn, user.login, user.id, now)
        mode = consent_of_scope(pending.scope)
        await self._upstream.replace(
            self._settings.grants.of(user.login, mode),
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at(now),
            forgejo_id=user.id,
        )
        await self._store.run(record_consent_txn, user_id, pending.client_id, now, mode)
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
                expires_at=now + self._settings.auth_code_ttl,
            ),
        )
        return code_value
