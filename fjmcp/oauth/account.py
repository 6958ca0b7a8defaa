# -*- test-case-name: tests.oauth.test_account -*-
"""
The ``/account`` page's logic: a user logs in through Forgejo (no broker
password), sees the clients they granted and each grant's consent mode,
changes a mode, and revokes one grant or all.

The login is the consent flow's, for no client: a login in progress in the
store, bound to this browser by a cookie, single use, its PKCE verifier
sealed; the state sent to Forgejo starts with `ACCOUNT_STATE_PREFIX` so the
one callback URL Forgejo knows can tell the two apart. It ends in a signed
session cookie that expires (`ACCOUNT_SESSION_TTL`) and carries a session
id the CSRF tokens of the page's forms are bound to. Revoking a grant
forgets the consent, revokes its tokens in one transaction, and tells the
bearer cache and the sessions at once (`RevocationListener`). Changing a
grant's consent mode goes through `ConsentModes`, which ends that grant's
tokens and live sessions the same way, so no child keeps a wider view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.oauth import pkce
from fjmcp.oauth.browser import BrowserCookies
from fjmcp.oauth.consent_modes import ConsentModeForbidden, ConsentModes
from fjmcp.oauth.fanout import RevocationListener
from fjmcp.oauth.keys import SealError, SealingKeys
from fjmcp.oauth.login import ForgejoLike, app_for_consent, check_apps
from fjmcp.oauth.outcomes import Cookie, Page, Redirect
from fjmcp.oauth.registration import display_name
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.policy.rules import Mode
from fjmcp.store.accounts import (
    AccountLogin,
    Connection,
    RevokedConnection,
    connections_txn,
    insert_account_login_txn,
    revoke_all_connections_txn,
    revoke_connection_txn,
    take_account_login_txn,
)
from fjmcp.store.grants import Grant, upsert_user_txn
from fjmcp.store.runner import TxnRunner
from fjmcp.upstream.errors import ForgejoAuthError, ForgejoUnavailable

__all__ = [
    "ACCOUNT_LOGIN_TTL",
    "ACCOUNT_SESSION_TTL",
    "ACCOUNT_STATE_PREFIX",
    "AccountPage",
    "GrantSessions",
]

#: How long an account session lasts.
ACCOUNT_SESSION_TTL: Final = 30 * 60.0
#: How long the login at Forgejo may take.
ACCOUNT_LOGIN_TTL: Final = 600.0
#: The prefix of the state of an account login (not a client's).
ACCOUNT_STATE_PREFIX: Final = "acct."


class GrantSessions(Protocol):
    """What the page needs of the sessions (`fjmcp.sessions.registry`)."""

    def owners_of_grant(self, user: str, client_id: str) -> list[Any]:
        """The live session owners of ``user`` through ``client_id``."""


def account_login_aad(state_hash: str) -> bytes:
    """The associated data of an account login's sealed verifier."""
    return b"fjmcp/account-login/" + state_hash.encode("ascii")


def _page(status: int, **fields: Any) -> Page:
    return Page(status, "account.html", fields)


@frozen
class AccountPage:
    """``/account``: log in, list the granted clients, revoke."""

    _settings: OAuthSettings
    _store: TxnRunner
    _clock: IReactorTime
    _keys: SealingKeys
    _forgejo: ForgejoLike
    _upstream: UpstreamTokens
    _cookies: BrowserCookies
    _fanout: RevocationListener
    _sessions: GrantSessions
    _modes: ConsentModes
    _read_only_forgejo: ForgejoLike | None = field(default=None, kw_only=True)
    """The application read-only grants are made through, if they have one."""

    log = Logger()

    def __attrs_post_init__(self) -> None:
        check_apps(self._settings, self._read_only_forgejo)

    # The page only needs to know who the user is: it logs in for the
    # narrowest grant there is (read-only when it has one of its own).
    _LOGIN_CONSENT = "read-only"

    def _login_app(self) -> ForgejoLike:
        return app_for_consent(
            self._settings,
            self._LOGIN_CONSENT,
            self._forgejo,
            self._read_only_forgejo,
        )

    # --- the session ------------------------------------------------------------

    @property
    def session_name(self) -> str:
        """The name of the account session cookie."""
        return self._cookies.name("fjmcp-account")

    def session(self, cookies: Mapping[str, str]) -> tuple[str, str] | None:
        """The (user, session id) of this browser's valid account session."""
        value = cookies.get(self.session_name)
        if value is None:
            return None
        payload = self._cookies.unsign("account", value)
        if payload is None:
            return None
        user, sid = payload.get("u"), payload.get("sid")
        if not isinstance(user, str) or not isinstance(sid, str):
            return None
        return user, sid

    def csrf(self, sid: str) -> str:
        """The CSRF token of the forms of session ``sid``."""
        return self._cookies.mac("account-csrf", sid)

    def _csrf_ok(self, sid: str, form: Mapping[str, str]) -> bool:
        return self._cookies.mac_matches(form.get("csrf", ""), "account-csrf", sid)

    # --- pages -------------------------------------------------------------------

    async def show(self, cookies: Mapping[str, str]) -> Page:
        """The list of granted clients, or the login page without a session."""
        session = self.session(cookies)
        if session is None:
            return _page(200, view="login", forgejo_host=self._settings.forgejo_host)
        user, sid = session
        now = self._clock.seconds()
        connections: list[Connection] = await self._store.run(
            connections_txn, user, now
        )
        rows = [
            {
                "client_id": c.client_id,
                "name": display_name(c.client_name) or "An unnamed application",
                "granted_at": c.granted_at,
                "last_used_at": c.last_used_at,
                "live_tokens": c.live_tokens,
                "sessions": len(self._sessions.owners_of_grant(user, c.client_id)),
                "mode": c.mode,
                "full_allowed": self._settings.full_access_allowed(c.client_id),
            }
            for c in connections
        ]
        return _page(
            200,
            view="list",
            user=user,
            csrf=self.csrf(sid),
            connections=rows,
            forgejo_host=self._settings.forgejo_host,
        )

    async def start_login(self) -> Redirect:
        """Send the browser to Forgejo to log in for the account page."""
        now = self._clock.seconds()
        state = ACCOUNT_STATE_PREFIX + new_secret()
        browser = new_secret()
        verifier = pkce.new_verifier()
        state_hash = hash_secret(state)
        key_id, sealed = self._keys.seal(
            verifier.encode("ascii"), account_login_aad(state_hash)
        )
        await self._store.run(
            insert_account_login_txn,
            AccountLogin(
                state_hash=state_hash,
                browser_hash=hash_secret(browser),
                key_id=key_id,
                verifier_sealed=sealed,
                created_at=now,
                expires_at=now + ACCOUNT_LOGIN_TTL,
            ),
        )
        location = self._login_app().authorize_url(
            self._settings.callback_url,
            state,
            pkce.s256(verifier),
            self._settings.grants.scopes(self._LOGIN_CONSENT),
        )
        flow = Cookie(
            self._cookies.flow_name(state_hash), browser, int(ACCOUNT_LOGIN_TTL)
        )
        return Redirect(location, (flow,))

    async def callback(
        self, params: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """Forgejo's callback for an account login: a session, then the list."""
        state = params.get("state", "")
        now = self._clock.seconds()
        state_hash = hash_secret(state)
        flow_name = self._cookies.flow_name(state_hash)
        clear = (Cookie(flow_name, "", 0),)
        browser = cookies.get(flow_name, "")
        status, login = await self._store.run(
            take_account_login_txn, state_hash, hash_secret(browser), now
        )
        if status == "taken":
            return Redirect("/account", clear)
        if status == "browser":
            return _page(
                400, view="error", message="This login was started in another browser."
            )
        if login is None:
            return _page(400, view="error", message="This login is unknown or expired.")
        if "error" in params or "code" not in params:
            return _page(
                400, view="error", message="The login at Forgejo was not completed."
            )
        try:
            verifier = self._keys.open(
                login.key_id, login.verifier_sealed, account_login_aad(state_hash)
            ).decode("ascii")
            app = self._login_app()
            tokens = await app.exchange_code(
                params["code"], self._settings.callback_url, verifier
            )
            user = await app.get_user(tokens.access_token)
        except (SealError, ForgejoAuthError):
            return _page(400, view="error", message="Forgejo refused the login.")
        except ForgejoUnavailable:
            return _page(
                503, view="error", message="Forgejo is unavailable; try again."
            )
        await self._store.run(upsert_user_txn, user.login, user.id, now)
        await self._upstream.replace(
            self._settings.grants.of(user.login, self._LOGIN_CONSENT),
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at(now),
            forgejo_id=user.id,
        )
        self.log.info("{user} logged in to the account page", user=user.login)
        value = self._cookies.sign(
            "account",
            {"u": user.login, "sid": new_secret()},
            now + ACCOUNT_SESSION_TTL,
        )
        session = Cookie(self.session_name, value, int(ACCOUNT_SESSION_TTL))
        return Redirect("/account", (*clear, session))

    # --- changes ---------------------------------------------------------------------

    def _refused(self) -> Page:
        return _page(
            403,
            view="error",
            message="This form could not be verified (CSRF check). Reload the page.",
        )

    def _tell(self, user: str, revoked: RevokedConnection) -> None:
        grant = Grant(
            revoked.user_id, user, revoked.client_id, "", self._settings.resource, ""
        )
        self._fanout.revoked(grant, revoked.hashes, "revoked by the user")

    async def revoke(
        self, form: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """Revoke one grant (its tokens and sessions end at once)."""
        session = self.session(cookies)
        if session is None:
            return Redirect("/account")
        user, sid = session
        if not self._csrf_ok(sid, form):
            return self._refused()
        client_id = form.get("client_id", "")
        revoked: RevokedConnection | None = await self._store.run(
            revoke_connection_txn, user, client_id, self._clock.seconds()
        )
        if revoked is not None:
            self._tell(user, revoked)
        return Redirect("/account")

    async def change_mode(
        self, form: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """
        Change one grant's consent mode; its tokens and live sessions end,
        and the application must ask again (now under the new mode).
        """
        session = self.session(cookies)
        if session is None:
            return Redirect("/account")
        user, sid = session
        if not self._csrf_ok(sid, form):
            return self._refused()
        try:
            mode = Mode(form.get("mode", ""))
        except ValueError:
            return _page(400, view="error", message="Choose read-only or full access.")
        client_id = form.get("client_id", "")
        connections: list[Connection] = await self._store.run(
            connections_txn, user, self._clock.seconds()
        )
        current = {c.client_id: c.mode for c in connections}
        if current.get(client_id, mode.value) == mode.value:
            return Redirect("/account")  # not granted, or no change: nothing ends
        try:
            await self._modes.change(user, client_id, mode)
        except ConsentModeForbidden:
            return _page(
                403,
                view="error",
                message="The operator allows this application read-only access only.",
            )
        self.log.info(
            "{user} changed the access of {client_id} to {mode}",
            user=user,
            client_id=client_id,
            mode=mode.value,
        )
        return Redirect("/account")

    async def revoke_all(
        self, form: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """Revoke every grant of the user."""
        session = self.session(cookies)
        if session is None:
            return Redirect("/account")
        user, sid = session
        if not self._csrf_ok(sid, form):
            return self._refused()
        revoked: list[RevokedConnection] = await self._store.run(
            revoke_all_connections_txn, user, self._clock.seconds()
        )
        for one in revoked:
            self._tell(user, one)
        return Redirect("/account")

    async def logout(
        self, form: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Redirect | Page:
        """End the account session (the cookie is deleted)."""
        session = self.session(cookies)
        if session is not None and not self._csrf_ok(session[1], form):
            return self._refused()
        return Redirect("/account", (Cookie(self.session_name, "", 0),))
