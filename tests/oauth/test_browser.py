# -*- test-case-name: tests.oauth.test_browser -*-
"""Tests for `fjmcp.oauth.browser`: cookie names, the user cookie, CSRF tokens."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.task import Clock

from fjmcp.oauth.browser import USER_COOKIE_TTL, BrowserCookies

KEY = b"k" * 32


def _keys(*keys: bytes) -> Callable[[], tuple[bytes, ...]]:
    return lambda: keys


def test_names_are_host_prefixed_only_on_https() -> None:
    """__Host- cookies on an https broker, plain names on loopback http."""
    assert (
        BrowserCookies(_keys(KEY), True, Clock()).name("fjmcp-csrf")
        == "__Host-fjmcp-csrf"
    )
    assert BrowserCookies(_keys(KEY), False, Clock()).name("fjmcp-csrf") == "fjmcp-csrf"
    assert BrowserCookies(_keys(KEY), False, Clock()).flow_name("ab" * 32) == (
        "fjmcp-flow-" + "ab" * 8
    )


def test_user_cookie_names_its_user_until_it_expires() -> None:
    """The signed user cookie is read back until its lifetime ends."""
    clock = Clock()
    cookies = BrowserCookies(_keys(KEY), False, clock)
    cookie = cookies.user_cookie("alice")
    assert cookie.max_age == int(USER_COOKIE_TTL)
    jar = {cookie.name: cookie.value}
    assert cookies.logged_in_user(jar) == "alice"
    clock.advance(USER_COOKIE_TTL + 1)
    assert cookies.logged_in_user(jar) is None


def test_user_cookie_of_another_key_or_altered_is_ignored() -> None:
    """A cookie signed with another key, altered or absent names nobody."""
    clock = Clock()
    cookies = BrowserCookies(_keys(KEY), False, clock)
    other = BrowserCookies(_keys(b"o" * 32), False, clock).user_cookie("mallory")
    assert cookies.logged_in_user({other.name: other.value}) is None
    good = cookies.user_cookie("alice")
    assert cookies.logged_in_user({good.name: good.value[:-2] + "xx"}) is None
    assert cookies.logged_in_user({}) is None


def test_csrf_token_binds_form_to_browser_nonce() -> None:
    """The CSRF token changes with the browser's nonce and with the form."""
    cookies = BrowserCookies(_keys(KEY), False, Clock())
    token = cookies.csrf_token("nonce-1", "blob")
    assert token == cookies.csrf_token("nonce-1", "blob")
    assert token != cookies.csrf_token("nonce-2", "blob")
    assert token != cookies.csrf_token("nonce-1", "blob2")


def test_a_key_rotation_voids_no_cookie_in_flight() -> None:
    """
    Cookies and CSRF tokens made before a new key was prepended are still
    accepted after; new ones are made with the new key, which a broker
    that still has only the old key does not accept.
    """
    clock = Clock()
    ring = [KEY]
    cookies = BrowserCookies(lambda: tuple(ring), False, clock)
    before = cookies.user_cookie("alice")
    csrf = cookies.csrf_token("nonce", "blob")
    ring.insert(0, b"n" * 32)
    assert cookies.logged_in_user({before.name: before.value}) == "alice"
    assert cookies.csrf_matches(csrf, "nonce", "blob")
    after = cookies.user_cookie("alice")
    assert after.value != before.value
    old_only = BrowserCookies(_keys(KEY), False, clock)
    assert old_only.logged_in_user({after.name: after.value}) is None
    assert not old_only.csrf_matches(
        cookies.csrf_token("nonce", "blob"), "nonce", "blob"
    )
    assert not cookies.csrf_matches(csrf, "nonce", "other-blob")
