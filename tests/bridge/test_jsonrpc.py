# -*- test-case-name: tests.bridge.test_jsonrpc -*-
"""Tests for `fjmcp.bridge.jsonrpc`: classification, raw-JSON ids, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.bridge.jsonrpc import (
    _DECODER,
    INVALID_REQUEST,
    PARSE_ERROR,
    JsonRpcError,
    Kind,
    _decode,
    error_body,
    id_key,
    parse_body,
    parse_line,
    with_id,
)


def _one(body: Any) -> Any:
    messages, batch = parse_body(json.dumps(body).encode(), allow_batch=False)
    assert not batch and len(messages) == 1
    return messages[0]


def test_request_notification_response_are_told_apart() -> None:
    """A method with an id is a request, without one a notification; else a response."""
    assert _one({"jsonrpc": "2.0", "id": 1, "method": "ping"}).kind is Kind.REQUEST
    assert _one({"jsonrpc": "2.0", "method": "n"}).kind is Kind.NOTIFICATION
    assert _one({"jsonrpc": "2.0", "id": 1, "result": {}}).kind is Kind.RESPONSE
    err = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}}
    assert _one(err).kind is Kind.RESPONSE


def test_ids_are_raw_json_so_number_and_string_differ() -> None:
    """The id 1 and the id "1" have different keys; equal values have equal keys."""
    a = _one({"jsonrpc": "2.0", "id": 1, "method": "m"})
    b = _one({"jsonrpc": "2.0", "id": "1", "method": "m"})
    assert a.id_json == "1" and b.id_json == '"1"'
    assert (
        id_key("\u00e9")
        == _one({"jsonrpc": "2.0", "id": "\u00e9", "result": 1}).id_json
    )


def test_error_response_with_null_id_is_accepted() -> None:
    """An error that cannot name a request (id null) is still a response."""
    msg = _one(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "x"}}
    )
    assert msg.kind is Kind.RESPONSE and msg.id_json == "null"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "Parse error"),
        (b"\xff\xfe", "not UTF-8"),
        (b"\xef\xbb\xbf{}", "Parse error"),
        (b"NaN", "Parse error"),
    ],
)
def test_text_that_is_not_json_is_a_parse_error(body: bytes, fragment: str) -> None:
    """Malformed, non-UTF-8, BOM-prefixed or non-standard JSON gives -32700."""
    with pytest.raises(JsonRpcError) as info:
        parse_body(body, allow_batch=False)
    assert info.value.code == PARSE_ERROR
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (1, "not a number"),
        ({"id": 1, "method": "m"}, '"jsonrpc"'),
        ({"jsonrpc": "1.0", "id": 1, "method": "m"}, '"jsonrpc"'),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, '"method"'),
        ({"jsonrpc": "2.0", "id": True, "method": "m"}, '"id"'),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "m"}, '"id"'),
        ({"jsonrpc": "2.0", "id": None, "method": "m"}, '"id"'),
        ({"jsonrpc": "2.0", "id": 1, "method": "m", "params": 3}, '"params"'),
        ({"jsonrpc": "2.0", "id": 1}, "neither"),
        ({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}}, "neither"),
        (
            {"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "m"}},
            '"error"',
        ),
        ({"jsonrpc": "2.0", "id": None, "result": {}}, '"id"'),
    ],
)
def test_json_that_is_not_json_rpc_is_an_invalid_request(
    body: Any, fragment: str
) -> None:
    """Each way of not being JSON-RPC gives -32600 with a message saying which."""
    with pytest.raises(JsonRpcError) as info:
        parse_body(json.dumps(body).encode(), allow_batch=False)
    assert info.value.code == INVALID_REQUEST
    assert fragment in info.value.message


def test_invalid_request_keeps_the_id_when_it_can() -> None:
    """A request with a readable id but a bad field is refused under that id."""
    with pytest.raises(JsonRpcError) as info:
        parse_body(b'{"jsonrpc":"2.0","id":"a","method":1}', allow_batch=False)
    assert info.value.id_json == '"a"'


def test_batches_only_when_allowed() -> None:
    """An array is a batch only where allowed (2025-03-26); never empty."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "a"},
        {"jsonrpc": "2.0", "method": "n"},
    ]
    raw = json.dumps(batch).encode()
    with pytest.raises(JsonRpcError) as info:
        parse_body(raw, allow_batch=False)
    assert "2025-03-26" in info.value.message
    messages, is_batch = parse_body(raw, allow_batch=True)
    assert is_batch and [m.kind for m in messages] == [Kind.REQUEST, Kind.NOTIFICATION]
    assert all(b"\n" not in m.line for m in messages)
    with pytest.raises(JsonRpcError):
        parse_body(b"[]", allow_batch=True)


def test_pretty_printed_body_becomes_one_line() -> None:
    """Line breaks between tokens become spaces; the message is unchanged."""
    body = b'{\r\n  "jsonrpc": "2.0",\n  "id": 7,\n  "method": "ping"\n}\n'
    msg = parse_body(body, allow_batch=False)[0][0]
    assert b"\n" not in msg.line and b"\r" not in msg.line
    assert json.loads(msg.line) == json.loads(body)


def test_progress_tokens_of_requests_and_notifications() -> None:
    """A request's token is in _meta; a progress notification's in params."""
    req = _one(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "m",
            "params": {"_meta": {"progressToken": 5}},
        }
    )
    prog = _one(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": 5},
        }
    )
    assert req.progress_token_json == prog.progress_token_json == "5"
    other = _one({"jsonrpc": "2.0", "method": "n", "params": {"progressToken": "5"}})
    assert other.progress_token_json == '"5"'
    assert _one({"jsonrpc": "2.0", "id": 1, "method": "m"}).progress_token_json is None


def test_child_lines_may_hold_batches() -> None:
    """A child's line may be one message or an array of them."""
    assert (
        len(
            parse_line(
                b'[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]'
            )
        )
        == 2
    )
    with pytest.raises(JsonRpcError):
        parse_line(b"not json")


def test_error_body_and_id_rewrite() -> None:
    """Error responses carry the raw id; ids can be replaced for namespacing."""
    assert json.loads(error_body('"x"', -32603, "boom", {"a": 1})) == {
        "jsonrpc": "2.0",
        "id": "x",
        "error": {"code": -32603, "message": "boom", "data": {"a": 1}},
    }
    assert json.loads(error_body(None, -32600, "bad"))["id"] is None
    msg = _one({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage"})
    assert json.loads(with_id(msg, "g2-3"))["id"] == "g2-3"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(body: bytes) -> None:
    """Any bytes either parse into messages or raise JsonRpcError, nothing else."""
    for allow in (False, True):
        try:
            messages, _ = parse_body(body, allow_batch=allow)
        except JsonRpcError as e:
            assert e.code in (PARSE_ERROR, INVALID_REQUEST)
        else:
            assert all(b"\n" not in m.line and b"\r" not in m.line for m in messages)


@given(json_values)
def test_random_json_is_classified_or_refused(value: Any) -> None:
    """Any JSON value is a message, a batch, or a clear -32600."""
    raw = json.dumps(value).encode()
    try:
        messages, _ = parse_body(raw, allow_batch=True)
    except JsonRpcError as e:
        assert e.code == INVALID_REQUEST and e.message
    else:
        for m in messages:
            assert json.loads(m.line) == m.body


@given(
    st.one_of(st.integers(), st.text(max_size=20)),
    st.one_of(st.integers(), st.text(max_size=20)),
)
def test_id_keys_equal_exactly_when_ids_equal(a: Any, b: Any) -> None:
    """Two ids match exactly when they are the same JSON value."""
    assert (id_key(a) == id_key(b)) == (type(a) is type(b) and a == b)


@given(st.text(max_size=50), st.integers())
def test_requests_round_trip_through_the_line(method: str, ident: int) -> None:
    """What is written to the child is the same message the client sent."""
    body = {"jsonrpc": "2.0", "id": ident, "method": method, "params": {"k": method}}
    msg = parse_body(json.dumps(body, indent=2).encode(), allow_batch=False)[0][0]
    assert json.loads(msg.line) == body and msg.id_json == str(ident)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    _JSON_VALUES,
    st.sampled_from(["", " ", "\n", "x", "}", "{", ",", "]"]),
    st.sampled_from(["", " ", "\ufeff", "{"]),
    st.integers(0, 40),
)
def test_the_scanner_shortcut_decodes_as_the_decoder(
    value: Any, tail: str, head: str, cut: int
) -> None:
    """Whole, cut short or padded, a text decodes (or fails) as ``decode`` does."""
    for text in (json.dumps(value), head + json.dumps({"a": value}) + tail):
        for candidate in (text, text[:cut]):
            try:
                expected: Any = ("ok", _DECODER.decode(candidate))
            except ValueError:
                expected = ("error",)
            try:
                got: Any = ("ok", _decode(candidate))
            except ValueError:
                got = ("error",)
            assert got == expected
