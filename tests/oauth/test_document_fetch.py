# -*- test-case-name: tests.oauth.test_document_fetch -*-
"""
Tests for `fjmcp.oauth.document_fetch`: fetching client-published URLs
within limits, over ``StubTreq`` and an in-memory web keyed by host and
path.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.client_documents import ClientDocumentError
from fjmcp.oauth.document_fetch import (
    Fetched,
    FetchLimits,
    GuardedFetcher,
    cache_lifetime,
)
from tests.oauth.vendor_web import HANG, VendorWeb

URL = "https://vendor.example/oauth/client.json"


def _fetch(web: VendorWeb, url: str = URL, **limits: Any) -> Fetched | Failure:
    clock = Clock()
    results: list[Any] = []
    GuardedFetcher(web.client(), clock, FetchLimits(**limits)).fetch(url).addBoth(
        results.append
    )
    if not results:
        clock.advance(FetchLimits(**limits).timeout)
    assert results, "the fetch did not end at its deadline"
    result: Fetched | Failure = results[0]
    return result


def _why(result: Fetched | Failure) -> str:
    assert isinstance(result, Failure), result
    assert result.check(ClientDocumentError)
    return str(result.value)


def test_a_document_is_fetched_with_its_caching_hint() -> None:
    """A 200 answer gives the body and the lifetime its headers say."""
    web = VendorWeb()
    web.serve(URL, b'{"a": 1}', headers={"Cache-Control": "public, max-age=600"})
    result = _fetch(web)
    assert isinstance(result, Fetched)
    assert (result.body, result.lifetime) == (b'{"a": 1}', 600.0)
    assert web.hits == [("vendor.example", "/oauth/client.json")]


@pytest.mark.parametrize("status", [201, 204, 403, 404, 500, 503])
def test_any_other_status_is_refused(status: int) -> None:
    """Only 200 is a document; the error names the status."""
    web = VendorWeb()
    web.serve(URL, b"{}", status=status)
    assert f"HTTP {status}" in _why(_fetch(web))


def test_http_urls_are_never_fetched() -> None:
    """A plain http URL is refused before any request."""
    web = VendorWeb()
    web.serve("http://vendor.example/doc", b"{}")
    assert "only https" in _why(_fetch(web, "http://vendor.example/doc"))
    assert web.hits == []


def test_a_body_over_the_cap_is_refused() -> None:
    """A body larger than max_bytes is refused, however it is sent."""
    web = VendorWeb()
    web.serve(URL, b"x" * 2049)
    assert "larger than 2048 bytes" in _why(_fetch(web, max_bytes=2048))
    web.serve(URL, b"x" * 2048)
    assert isinstance(_fetch(web, max_bytes=2048), Fetched)


def test_a_server_that_never_answers_times_out() -> None:
    """A hanging answer ends at the deadline with a clear reason."""
    web = VendorWeb()
    web.serve(URL, HANG)
    assert "within 5 seconds" in _why(_fetch(web))


def test_redirects_within_the_origin_are_followed() -> None:
    """A same-origin redirect is followed (a few times at most)."""
    web = VendorWeb()
    web.serve(URL, b"", status=302, headers={"Location": "/v2/client.json"})
    web.serve("https://vendor.example/v2/client.json", b"{}")
    result = _fetch(web)
    assert isinstance(result, Fetched)
    assert result.url == "https://vendor.example/v2/client.json"


@pytest.mark.parametrize(
    "location",
    [
        "https://other.example/client.json",
        "http://vendor.example/client.json",
        "https://vendor.example:8443/client.json",
        "",
    ],
)
def test_redirects_elsewhere_are_refused(location: str) -> None:
    """A redirect to another host, scheme or port (or nowhere) is refused."""
    web = VendorWeb()
    web.serve(URL, b"", status=301, headers={"Location": location} if location else {})
    if location:
        web.serve(location, b"{}")
    assert "redirects to another host" in _why(_fetch(web))


def test_redirect_loops_end() -> None:
    """A redirect loop stops after max_redirects."""
    web = VendorWeb()
    web.serve(URL, b"", status=307, headers={"Location": URL})
    assert "too many redirects" in _why(_fetch(web, max_redirects=2))
    assert len(web.hits) == 3


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, None),
        ({"cache-control": "max-age=60"}, 60.0),
        ({"cache-control": "public, s-maxage=90, max-age=60"}, 90.0),
        ({"cache-control": "no-store"}, 0.0),
        ({"cache-control": "no-cache, max-age=60"}, 0.0),
        ({"cache-control": "max-age=banana"}, None),
        ({"cache-control": "max-age=-5"}, 0.0),
        (
            {
                "expires": "Thu, 01 Jan 2026 01:00:00 GMT",
                "date": "Thu, 01 Jan 2026 00:00:00 GMT",
            },
            3600.0,
        ),
        ({"expires": "0", "date": "Thu, 01 Jan 2026 00:00:00 GMT"}, 0.0),
    ],
)
def test_cache_lifetime(headers: dict[str, str], lifetime: float | None) -> None:
    """Cache-Control beats Expires; bad values never raise."""
    assert cache_lifetime(headers) == lifetime


@settings(max_examples=60, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.binary(max_size=3000),
    control=st.text(max_size=40),
    hang=st.booleans(),
)
def test_any_answer_gives_a_body_or_a_clear_error(
    status: int, body: bytes, control: str, hang: bool
) -> None:
    """Whatever the server answers, the fetch ends with a body or a reason."""
    web = VendorWeb()
    safe = control.encode("latin-1", "ignore").decode("latin-1").strip()
    headers = {"Cache-Control": safe} if safe.isprintable() and safe else {}
    web.serve(URL, HANG if hang else body, status=status, headers=headers)
    result = _fetch(web, max_bytes=2048)
    if isinstance(result, Fetched):
        assert status == 200 and len(result.body) <= 2048
    else:
        assert result.check(ClientDocumentError)
