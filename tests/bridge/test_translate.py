# -*- test-case-name: tests.bridge.test_translate -*-
"""Tests for `fjmcp.bridge.translate`: what changes between the two protocol eras."""

from __future__ import annotations

import pytest

from fjmcp.bridge.translate import (
    child_params,
    client_error,
    client_result,
    discover_result,
    missing_capability,
)


def test_child_params_drop_the_envelope_and_retry_fields() -> None:
    """The stateless _meta keys and the retry fields never reach the child."""
    params = {
        "name": "t",
        "inputResponses": {},
        "requestState": "x",
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {},
            "io.modelcontextprotocol/logLevel": "info",
            "progressToken": "client",
            "other": 1,
        },
    }
    assert child_params(params, 7) == {
        "name": "t",
        "_meta": {"other": 1, "progressToken": 7},
    }
    assert child_params({"_meta": {"progressToken": 1}}, None) == {}


def test_results_get_result_type_cache_hints_and_server_info() -> None:
    """resultType always, ttlMs/cacheScope on cacheable methods only."""
    info = {"name": "c", "version": "1"}
    listed = client_result("tools/list", {"tools": []}, server_info=info, ttl_ms=3)
    assert listed["resultType"] == "complete"
    assert (listed["ttlMs"], listed["cacheScope"]) == (3, "private")
    assert listed["_meta"]["io.modelcontextprotocol/serverInfo"] == info
    called = client_result("tools/call", {"content": []}, server_info=None, ttl_ms=3)
    assert called == {"content": [], "resultType": "complete"}


@pytest.mark.parametrize(
    ("code", "mapped"),
    [(-32002, -32602), (-32020, -32603), (-32099, -32603), (-32042, -32603)]
    + [(-32000, -32000), (-32019, -32019), (-32602, -32602), (5, 5)],
)
def test_error_codes_are_mapped(code: int, mapped: int) -> None:
    """Forbidden and reserved codes are mapped; legacy and tool codes pass."""
    assert client_error({"code": code, "message": "m"})["code"] == mapped


def test_discover_strips_tasks() -> None:
    """The tasks capability moved to an extension: discover does not list it."""
    result = discover_result({"capabilities": {"tasks": {}, "tools": {}}}, 0)
    assert result["capabilities"] == {"tools": {}}
    assert "_meta" not in result


@pytest.mark.parametrize(
    ("method", "params", "caps", "needed"),
    [
        ("sampling/createMessage", {}, {}, {"sampling": {}}),
        ("sampling/createMessage", {}, {"sampling": {}}, None),
        (
            "sampling/createMessage",
            {"tools": [1]},
            {"sampling": {}},
            {"sampling": {"tools": {}}},
        ),
        ("elicitation/create", {}, {"elicitation": {}}, None),
        (
            "elicitation/create",
            {},
            {"elicitation": {"url": {}}},
            {"elicitation": {"form": {}}},
        ),
        (
            "elicitation/create",
            {"mode": "url"},
            {"elicitation": {}},
            {"elicitation": {"url": {}}},
        ),
        ("elicitation/create", {}, {}, {"elicitation": {"form": {}}}),
        ("roots/list", {}, {}, {"roots": {}}),
        ("roots/list", {}, {"roots": {}}, None),
    ],
)
def test_the_capability_a_child_request_needs(
    method: str, params: dict[str, object], caps: dict[str, object], needed: object
) -> None:
    """Read as the Python SDK does (a bare elicitation means form mode)."""
    assert missing_capability(method, params, caps) == needed


def test_a_resource_not_found_gets_the_uri_it_was_read_with() -> None:
    """-32002 without data.uri gets the request's URI; the child's own is kept."""
    bare = client_error({"code": -32002, "message": "nf"}, "test://x")
    assert bare == {"code": -32602, "message": "nf", "data": {"uri": "test://x"}}
    own = {"code": -32002, "message": "nf", "data": {"uri": "test://y"}}
    assert client_error(own, "test://x")["data"] == {"uri": "test://y"}
