# -*- test-case-name: tests.oauth.test_outcomes -*-
"""
What the browser steps of the flow answer: a redirect or a page, each with
cookies to set.

The OAuth objects stay HTTP-free: they return these values and
`fjmcp.web.oauth_routes` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from attrs import field, frozen

from fjmcp.oauth.errors import OAuthError

__all__ = [
    "Cookie",
    "Page",
    "Redirect",
    "error_page",
    "redirect_error",
    "with_query",
]


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


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` (``None`` values left out) added to its query."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(uri).query else "?"
    if uri.endswith(("?", "&")):
        separator = ""
    return uri + separator + query


def error_page(message: str, status: int = 400) -> Page:
    """The error page of a browser step that cannot redirect to the client."""
    return Page(
        status, "error.html", {"title": "Authorization failed", "message": message}
    )


def redirect_error(
    issuer: str,
    redirect_uri: str,
    state: str | None,
    error: OAuthError,
    cookies: tuple[Cookie, ...] = (),
) -> Redirect:
    """An authorization error sent to the client's redirect URI (RFC 9207 ``iss``)."""
    return Redirect(
        with_query(
            redirect_uri,
            {
                "error": error.error,
                "error_description": error.description or None,
                "state": state,
                "iss": issuer,
            },
        ),
        cookies,
    )
