# -*- test-case-name: tests.oauth.test_forms -*-
"""Tests for `fjmcp.oauth.forms`: OAuth parameter parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.oauth.errors import InvalidRequestError
from fjmcp.oauth.forms import MAX_FIELDS, parse_params, query_of


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", {}),
        (b"a=1&b=two", {"a": "1", "b": "two"}),
        (b"a=&b=2", {"b": "2"}),
        (b"a", {}),
        (b"s=%E2%9C%93+x", {"s": "\u2713 x"}),
        (
            b"redirect_uri=https%3A%2F%2Fa%2Fb%3Fc%3Dd",
            {"redirect_uri": "https://a/b?c=d"},
        ),
    ],
)
def test_parses(raw: bytes, expected: dict[str, str]) -> None:
    """Values are decoded; empty values count as absent."""
    assert parse_params(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"a=1&a=2",
        b"a=\xff",
        b"a=%ff",
        b"&".join(b"k%d=v" % i for i in range(MAX_FIELDS + 1)),
        b"a=" + b"x" * 9000,
        b"a=" + b"x" * 70000,
    ],
)
def test_refuses(raw: bytes) -> None:
    """Repeats, bad encodings, too many or too long values are invalid_request."""
    with pytest.raises(InvalidRequestError):
        parse_params(raw)


def test_query_of() -> None:
    """The query of a request URI, without path or fragment."""
    assert query_of(b"/oauth/authorize?a=1&b=2") == b"a=1&b=2"
    assert query_of(b"/x") == b""
    assert query_of(b"/x?a=1#frag") == b"a=1"


@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    """Any bytes parse to one string per name or raise InvalidRequestError."""
    try:
        params = parse_params(raw)
    except InvalidRequestError:
        return
    assert all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in params.items()
    )
