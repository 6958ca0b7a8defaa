# -*- test-case-name: tests.oauth.test_browser -*-
"""
The broker's cookies in the user's browser, signed with a derived key.

Three kinds: the CSRF nonce the consent form is bound to, the cookie that
binds a login at Forgejo to the browser that started it (one per login in
flight, named after its state), and the signed "this browser logged in as
..." cookie that lets a user skip consent for a client they already
approved. Names are ``__Host-`` prefixed when the broker is https.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, Final

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

    keys: Callable[[], tuple[bytes, ...]] = field(repr=False)
    """
    The cookie keys as they are now, active first (`KeyRing.derive_each`
    ``"cookies"``): values are made with the first and accepted under any.
    """
    secure: bool
    """Whether the broker is https (``Secure`` and ``__Host-`` cookies)."""
    _clock: IReactorTime

    def name(self, base: str) -> str:
        """A cookie's name, ``__Host-`` prefixed on https."""
        return ("__Host-" if self.secure else "") + base

    def flow_name(self, state_hash: str) -> str:
        """The name of the cookie binding the login with this state to a browser."""
        return self.name("fjmcp-flow-" + state_hash[:16])

    def mac(self, *parts: str) -> str:
        """An HMAC of ``parts`` under the active key."""
        return mac(self.keys()[0], *parts)

    def mac_matches(self, value: str, *parts: str) -> bool:
        """Whether ``value`` is the HMAC of ``parts`` under any current key."""
        presented = value.encode("utf-8", "replace")
        return any(
            hmac.compare_digest(mac(key, *parts).encode("ascii"), presented)
            for key in self.keys()
        )

    def sign(self, purpose: str, payload: dict[str, Any], expires_at: float) -> str:
        """A value carrying ``payload``, signed with the active key."""
        return sign(self.keys()[0], purpose, payload, expires_at)

    def unsign(self, purpose: str, value: str) -> dict[str, Any] | None:
        """The payload of an unexpired value signed for ``purpose`` with any key."""
        now = self._clock.seconds()
        for key in self.keys():
            payload = unsign(key, purpose, value, now)
            if payload is not None:
                return payload
        return None

    def csrf_token(self, nonce: str, blob: str) -> str:
        """The consent form's CSRF token: ``blob`` bound to the browser's nonce."""
        return self.mac("csrf", nonce, blob)

    def csrf_matches(self, token: str, nonce: str, blob: str) -> bool:
        """Whether ``token`` is the CSRF token of ``blob`` for ``nonce``."""
        return self.mac_matches(token, "csrf", nonce, blob)

    def logged_in_user(self, cookies: Mapping[str, str]) -> str | None:
        """The login this browser's signed user cookie names, if valid."""
        value = cookies.get(self.name("fjmcp-user"))
        if value is None:
            return None
        payload = self.unsign("user", value)
        user = None if payload is None else payload.get("u")
        return user if isinstance(user, str) else None

    def user_cookie(self, user: str) -> Cookie:
        """The signed cookie naming ``user`` as this browser's login."""
        now = self._clock.seconds()
        value = self.sign("user", {"u": user}, now + USER_COOKIE_TTL)
        return Cookie(self.name("fjmcp-user"), value, int(USER_COOKIE_TTL))
