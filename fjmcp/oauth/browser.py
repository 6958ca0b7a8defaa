# -*- test-case-name: tests.oauth.test_browser -*-
"""
The broker's cookies in the user's browser, signed with one derived key.

Three kinds: the CSRF nonce the consent form is bound to, the cookie that
binds a login at Forgejo to the browser that started it (one per login in
flight, named after its state), and the signed "this browser logged in as
..." cookie that lets a user skip consent for a client they already
approved. Names are ``__Host-`` prefixed when the broker is https.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from attrs import field, frozen
from twisted.internet.interfaces import IReactorTime

from fjmcp.oauth.outcomes import Cookie
from fjmcp.oauth.signing import mac, sign, unsign

__all__ = ["USER_COOKIE_TTL", "BrowserCookies"]

#: How long the "this browser logged in as ..." cookie is trusted.
USER_COOKIE_TTL: Final = 30 * 24 * 3600.0


@frozen
class BrowserCookies:
    """Names, signatures and checks of the broker's browser cookies."""

    key: bytes = field(repr=False)
    """The cookie key (`fjmcp.oauth.keys.KeyRing.derive` ``"cookies"``)."""
    secure: bool
    """Whether the broker is https (``Secure`` and ``__Host-`` cookies)."""
    _clock: IReactorTime

    def name(self, base: str) -> str:
        """A cookie's name, ``__Host-`` prefixed on https."""
        return ("__Host-" if self.secure else "") + base

    def flow_name(self, state_hash: str) -> str:
        """The name of the cookie binding the login with this state to a browser."""
        return self.name("fjmcp-flow-" + state_hash[:16])

    def csrf_token(self, nonce: str, blob: str) -> str:
        """The consent form's CSRF token: ``blob`` bound to the browser's nonce."""
        return mac(self.key, "csrf", nonce, blob)

    def logged_in_user(self, cookies: Mapping[str, str]) -> str | None:
        """The login this browser's signed user cookie names, if valid."""
        value = cookies.get(self.name("fjmcp-user"))
        if value is None:
            return None
        payload = unsign(self.key, "user", value, self._clock.seconds())
        user = None if payload is None else payload.get("u")
        return user if isinstance(user, str) else None

    def user_cookie(self, user: str) -> Cookie:
        """The signed cookie naming ``user`` as this browser's login."""
        now = self._clock.seconds()
        value = sign(self.key, "user", {"u": user}, now + USER_COOKIE_TTL)
        return Cookie(self.name("fjmcp-user"), value, int(USER_COOKIE_TTL))
