# -*- test-case-name: tests.oauth.test_outcomes -*-
"""Tests for `fjmcp.oauth.outcomes`: redirects, error pages and queries."""

from __future__ import annotations

import pytest

from fjmcp.oauth.errors import AccessDeniedError
from fjmcp.oauth.outcomes import Cookie, error_page, redirect_error, with_query


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://a/cb", "https://a/cb?code=c"),
        ("https://a/cb?x=1", "https://a/cb?x=1&code=c"),
        ("https://a/cb?", "https://a/cb?code=c"),
        ("https://a/cb?x=1&", "https://a/cb?x=1&code=c"),
    ],
)
def test_with_query_appends_to_any_query(uri: str, expected: str) -> None:
    """Parameters join an existing query with the right separator."""
    assert with_query(uri, {"code": "c", "state": None}) == expected


def test_redirect_error_carries_error_state_and_issuer() -> None:
    """An error redirect has error, description, state and iss (RFC 9207)."""
    cookie = Cookie("c", "", 0)
    redirect = redirect_error(
        "https://mcp.example", "https://a/cb", "s1", AccessDeniedError("no"), (cookie,)
    )
    assert redirect.location == (
        "https://a/cb?error=access_denied&error_description=no&state=s1"
        "&iss=https%3A%2F%2Fmcp.example"
    )
    assert redirect.cookies == (cookie,)


def test_redirect_error_leaves_out_what_is_absent() -> None:
    """No state and no description leave those parameters out."""
    redirect = redirect_error("https://i", "https://a/cb", None, AccessDeniedError(""))
    assert redirect.location == "https://a/cb?error=access_denied&iss=https%3A%2F%2Fi"


def test_error_page_is_the_error_template() -> None:
    """An error page shows its message on error.html with the given status."""
    page = error_page("gone", 403)
    assert (page.status, page.template, page.fields["message"]) == (
        403,
        "error.html",
        "gone",
    )
