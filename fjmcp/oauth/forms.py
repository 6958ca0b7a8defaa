# -*- test-case-name: tests.oauth.test_forms -*-
"""
Parsing of OAuth request parameters (query strings and form bodies).

RFC 6749 §3.1: parameters MUST NOT be repeated, and a parameter sent
without a value is treated as omitted. Every failure is an
`InvalidRequestError` (400), never an exception of the parser: any bytes
give either a mapping of one string per name or that error.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from fjmcp.oauth.errors import InvalidRequestError

__all__ = ["MAX_FIELDS", "MAX_VALUE", "parse_params", "query_of"]

MAX_FIELDS: Final = 64
MAX_VALUE: Final = 8192
MAX_PARAMS_BYTES: Final = 64 * 1024


def parse_params(raw: bytes) -> dict[str, str]:
    """
    The parameters of an ``application/x-www-form-urlencoded`` string.

    Raises `InvalidRequestError` for non-UTF-8 text, too many or too long
    parameters, or a repeated name.
    """
    if len(raw) > MAX_PARAMS_BYTES:
        raise InvalidRequestError("request parameters are too large")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("malformed request parameters") from None
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequestError(f"parameter {name[:40]!r} is repeated")
        seen.add(name)
        if len(value) > MAX_VALUE:
            raise InvalidRequestError(f"parameter {name[:40]!r} is too long")
        if value:
            out[name] = value
    return out


def query_of(uri: bytes) -> bytes:
    """The raw query string of a request URI (empty if there is none)."""
    _, _, query = uri.partition(b"?")
    query, _, _ = query.partition(b"#")
    return query
