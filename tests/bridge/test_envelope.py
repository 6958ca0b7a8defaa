# -*- test-case-name: tests.bridge.test_envelope -*-
"""
Tests for `fjmcp.bridge.envelope`: which kind of client a request comes
from, the routing-header values (base64 form, Hypothesis), the order of the
checks, and the HTTP status of each code; and `fjmcp.bridge.versions`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.bridge.envelope import (
    EnvelopeError,
    check_notification,
    check_request,
    decode_header_value,
    is_modern,
    status_for,
)
from fjmcp.bridge.jsonrpc import Message, parse_body
from fjmcp.bridge.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS
from tests.bridge.stateless_support import envelope, routing_headers


def _msg(body: Any) -> Message:
    return parse_body(json.dumps(body).encode(), allow_batch=False)[0][0]


def _reader(headers: dict[bytes, bytes]) -> Any:
    return lambda name: [headers[name]] if name in headers else []


def test_versions_are_disjoint_and_ordered() -> None:
    """No version is both session-based and stateless; both lists are sorted."""
    assert not set(HANDSHAKE_VERSIONS) & set(MODERN_VERSIONS)
    assert list(HANDSHAKE_VERSIONS) == sorted(HANDSHAKE_VERSIONS)


@pytest.mark.parametrize(
    ("body", "session", "header", "modern"),
    [
        (envelope(1, "tools/list"), False, None, True),
        (envelope(1, "tools/list"), True, b"2025-11-25", True),
        (envelope(1, "initialize"), False, None, True),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize"},
            False,
            b"2026-07-28",
            False,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            True,
            b"2026-07-28",
            False,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            False,
            b"2026-07-28",
            True,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            False,
            b"2025-06-18",
            False,
        ),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, False, None, False),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, False, b"bogus", True),
    ],
)
def test_the_body_decides_first(
    body: Any, session: bool, header: bytes | None, modern: bool
) -> None:
    """_meta's protocolVersion wins; then a session or initialize; then the header."""
    assert is_modern(_msg(body), has_session=session, version_header=header) is modern


def test_an_unparsable_body_is_told_apart_by_its_header_only() -> None:
    """No message: stateless only with a non-session version header and no session."""
    assert is_modern(None, has_session=False, version_header=b"2026-07-28")
    assert not is_modern(None, has_session=True, version_header=b"2026-07-28")
    assert not is_modern(None, has_session=False, version_header=None)


@given(st.text())
def test_base64_header_values_round_trip(text: str) -> None:
    """Any text (surrogates aside) survives the ``=?base64?...?=`` form."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert decode_header_value(b"=?base64?" + base64.b64encode(raw) + b"?=") == text


@given(st.binary(max_size=64))
def test_header_values_never_raise(raw: bytes) -> None:
    """Any bytes decode to text or None (malformed), never an exception."""
    value = decode_header_value(raw)
    assert value is None or isinstance(value, str)


@pytest.mark.parametrize(
    "raw",
    [
        b"=?base64?ZWNobw?=",
        b"=?base64?ZWNobw=?=",
        b"=?BASE64?ZWNobw==?=",
        b"caf\xc3\xa9",
    ],
)
def test_malformed_header_values_match_nothing(raw: bytes) -> None:
    """Non-canonical base64, wrong-case markers, raw non-ASCII: None (or literal)."""
    value = decode_header_value(raw)
    assert value != "echo" and value != "café"


def test_a_plain_value_is_taken_literally() -> None:
    """A value without the markers is itself."""
    assert decode_header_value(b"tools/call") == "tools/call"


def test_header_checks_run_before_the_version_check() -> None:
    """Header 2026-07-28, body v999: -32020, not -32022 (the SDK's order)."""
    body = envelope(1, "tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "v999.0.0"
    with pytest.raises(EnvelopeError) as e:
        check_request(_msg(body), _reader(routing_headers(envelope(1, "tools/list"))))
    assert e.value.code == -32020 and e.value.status == 400


def test_a_passing_request_keeps_its_capabilities_and_level() -> None:
    """A valid request's envelope names its version, capabilities and log level."""
    body = envelope(1, "tools/list", capabilities={"roots": {}}, log_level="info")
    env = check_request(_msg(body), _reader(routing_headers(body)))
    assert env.version == "2026-07-28"
    assert env.capabilities == {"roots": {}}
    assert env.log_level == "info"
    assert env.method == "tools/list"


def test_capabilities_must_be_an_object() -> None:
    """clientCapabilities: [] is -32602."""
    body = envelope(1, "tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = []
    with pytest.raises(EnvelopeError) as e:
        check_request(_msg(body), _reader(routing_headers(body)))
    assert e.value.code == -32602


def test_a_notification_with_an_unknown_version_is_32022() -> None:
    """Only the version header of a notification is checked."""
    with pytest.raises(EnvelopeError) as e:
        check_notification(_reader({b"mcp-protocol-version": b"2099-01-01"}))
    assert e.value.code == -32022
    check_notification(_reader({b"mcp-protocol-version": b"2026-07-28"}))
    check_notification(_reader({}))


@pytest.mark.parametrize(
    ("code", "status"),
    [(-32700, 400), (-32602, 400), (-32020, 400), (-32021, 400), (-32022, 400)]
    + [(-32601, 404), (-32603, 200), (-32000, 200), (1, 200)],
)
def test_status_of_each_code(code: int, status: int) -> None:
    """The SDK's table: client errors 400, unknown method 404, others 200."""
    assert status_for(code) == status
