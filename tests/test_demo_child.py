# -*- test-case-name: tests.test_demo_child -*-
"""
Tests for `fjmcp.demo_child`, the demo's stdio MCP server, on an in-memory
stdout with a fake Forgejo (the real one is in
``tests/integration/test_demo_child_process.py``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.demo_child import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    DemoChild,
    ForgejoError,
    fetch_login,
)

ENV = {"FORGEJO_URL": "http://forgejo.test", "FORGEJO_ACCESS_TOKEN": "tok-secret"}


def make(
    fetcher: Callable[[str, str], str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[DemoChild, io.StringIO]:
    out = io.StringIO()
    child = DemoChild(
        out,
        ENV if env is None else env,
        login_fetcher=fetcher or (lambda url, token: "alice"),
        spawn=lambda work: work(),
    )
    return child, out


def answers(out: io.StringIO) -> list[dict[str, Any]]:
    # The framing is "\n" alone: str.splitlines would also split on U+0085 and
    # U+2028, which a JSON string may hold raw.
    return [json.loads(line) for line in out.getvalue().split("\n") if line]


def request(method: str, params: Any = None, request_id: Any = 1) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_initialize_agrees_to_every_supported_version(version: str) -> None:
    """initialize answers the version the client asked for when it is supported."""
    child, out = make()
    child.handle_line(request("initialize", {"protocolVersion": version}))
    [answer] = answers(out)
    assert answer["id"] == 1
    assert answer["result"]["protocolVersion"] == version
    assert answer["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert answer["result"]["serverInfo"]["name"] == "fjmcp-demo-child"
    assert child.protocol_version == version


@pytest.mark.parametrize("version", ["2099-01-01", None, 7])
def test_initialize_offers_the_latest_version_otherwise(version: object) -> None:
    """An unknown or missing protocol version gets the latest one offered."""
    child, out = make()
    child.handle_line(request("initialize", {"protocolVersion": version}))
    assert answers(out)[0]["result"]["protocolVersion"] == LATEST_VERSION


def test_ping_and_tools_list() -> None:
    """ping answers an empty result; tools/list names whoami and echo."""
    child, out = make()
    child.handle_line(request("ping", request_id="p"))
    child.handle_line(request("tools/list", {}, request_id=2))
    ping, tools = answers(out)
    assert ping == {"jsonrpc": "2.0", "id": "p", "result": {}}
    assert [t["name"] for t in tools["result"]["tools"]] == ["whoami", "echo"]
    for tool in tools["result"]["tools"]:
        assert tool["inputSchema"]["type"] == "object"


def test_echo_answers_its_text() -> None:
    """echo answers the text it was given as text content."""
    child, out = make()
    child.handle_line(
        request("tools/call", {"name": "echo", "arguments": {"text": "héllo"}})
    )
    result = answers(out)[0]["result"]
    assert result == {"content": [{"type": "text", "text": "héllo"}], "isError": False}


@pytest.mark.parametrize(
    "params",
    [
        {"name": "echo", "arguments": {}},
        {"name": "echo", "arguments": {"text": 3}},
        {"name": "echo", "arguments": {"text": "x" * (64 * 1024 + 1)}},
        {"name": "echo", "arguments": []},
        {"name": "nope", "arguments": {}},
        {"arguments": {}},
    ],
)
def test_bad_tool_calls_are_invalid_params(params: dict[str, Any]) -> None:
    """A call of an unknown tool or with bad arguments gets -32602."""
    child, out = make()
    child.handle_line(request("tools/call", params))
    assert answers(out)[0]["error"]["code"] == -32602


def test_whoami_asks_forgejo_with_the_environment_and_answers_the_login() -> None:
    """whoami passes $FORGEJO_URL and $FORGEJO_ACCESS_TOKEN and answers the login."""
    seen: list[tuple[str, str]] = []

    def fetcher(url: str, token: str) -> str:
        seen.append((url, token))
        return "alice"

    child, out = make(fetcher)
    child.handle_line(request("tools/call", {"name": "whoami"}, request_id=9))
    assert seen == [("http://forgejo.test", "tok-secret")]
    assert answers(out) == [
        {
            "jsonrpc": "2.0",
            "id": 9,
            "result": {
                "content": [{"type": "text", "text": "alice"}],
                "isError": False,
            },
        }
    ]


def test_whoami_failure_is_a_tool_error_without_the_token() -> None:
    """A Forgejo failure is an isError result; the token is never in the answer."""

    def fetcher(url: str, token: str) -> str:
        raise ForgejoError("Forgejo answered 401 to /api/v1/user")

    child, out = make(fetcher)
    child.handle_line(request("tools/call", {"name": "whoami", "arguments": {}}))
    result = answers(out)[0]["result"]
    assert result["isError"] is True
    assert "401" in result["content"][0]["text"]
    assert "tok-secret" not in out.getvalue()


def test_whoami_unexpected_failure_keeps_the_server_alive() -> None:
    """An unexpected exception in a tool is an isError result, named by type only."""

    def fetcher(url: str, token: str) -> str:
        raise RuntimeError("tok-secret leaked?")

    child, out = make(fetcher)
    child.handle_line(request("tools/call", {"name": "whoami"}))
    child.handle_line(request("ping", request_id=2))
    whoami, ping = answers(out)
    assert whoami["result"]["isError"] is True
    assert whoami["result"]["content"][0]["text"] == "whoami failed: RuntimeError"
    assert ping["result"] == {}


def test_unknown_method_is_method_not_found() -> None:
    """An unknown request method gets -32601 with the request's id."""
    child, out = make()
    child.handle_line(request("resources/list", {}, request_id="r"))
    assert answers(out)[0]["error"]["code"] == -32601
    assert answers(out)[0]["id"] == "r"


def test_notifications_and_responses_get_no_answer() -> None:
    """Notifications and responses are never answered; blank lines are skipped."""
    child, out = make()
    child.handle_line(
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    child.handle_line(json.dumps({"jsonrpc": "2.0", "id": 5, "result": {}}))
    child.handle_line("   ")
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        ("{not json", -32700, None),
        ("[]", -32600, None),
        ('"text"', -32600, None),
        ('{"id": 3, "method": "ping"}', -32600, 3),
        ('{"jsonrpc": "2.0", "id": 3, "method": 4}', -32600, 3),
        ('{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600, None),
        ('{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": [1]}', -32602, 3),
    ],
)
def test_malformed_input_gets_json_rpc_errors(
    line: str, code: int, request_id: object
) -> None:
    """Malformed lines get the JSON-RPC error for what is wrong with them."""
    child, out = make()
    child.handle_line(line)
    [answer] = answers(out)
    assert answer["error"]["code"] == code
    assert answer["id"] == request_id


def test_a_batch_is_answered_element_by_element() -> None:
    """A 2025-03-26 batch gets one answer per request in it."""
    child, out = make()
    child.handle_line(
        "["
        + request("ping", request_id=1)
        + ","
        + request("tools/call", {"name": "echo", "arguments": {"text": "b"}}, 2)
        + "]"
    )
    assert [a["id"] for a in answers(out)] == [1, 2]


def test_serve_reads_until_end_of_input() -> None:
    """serve handles every line of its input and returns when it ends."""
    child, out = make()
    child.serve(
        io.StringIO(
            request("ping", request_id=1)
            + "\n\n"
            + request("ping", request_id=2)
            + "\n"
        )
    )
    assert [a["id"] for a in answers(out)] == [1, 2]


@given(st.text(max_size=300))
def test_any_line_gets_at_most_whole_json_rpc_answers(line: str) -> None:
    """No input line raises; whatever is written is whole JSON-RPC 2.0 lines."""
    child, out = make()
    child.handle_line(line)
    for answer in answers(out):
        assert answer["jsonrpc"] == "2.0"
        assert ("result" in answer) != ("error" in answer)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["jsonrpc", "id", "method", "params", "name", "x"]),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_value_gets_at_most_whole_json_rpc_answers(value: object) -> None:
    """No JSON value raises; whatever is written is whole JSON-RPC 2.0 lines."""
    child, out = make()
    child.handle_line(json.dumps(value))
    for answer in answers(out):
        assert answer["jsonrpc"] == "2.0"


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        ("", "t", "FORGEJO_URL is not set"),
        ("http://x", "", "FORGEJO_ACCESS_TOKEN is not set"),
        ("file:///etc/passwd", "t", "not an http\\(s\\) URL"),
    ],
)
def test_fetch_login_refuses_a_missing_or_odd_environment(
    url: str, token: str, message: str
) -> None:
    """fetch_login says what is missing before sending anything."""
    with pytest.raises(ForgejoError, match=message):
        fetch_login(url, token)
