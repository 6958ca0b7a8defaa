# -*- test-case-name: tests.bridge.test_policy -*-
"""
Tests of the policy on the wire: the real `McpResource` and bridge on an
in-memory child, a read-only grant and operator rules.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from fjmcp.audit.log import AuditLog
from fjmcp.interfaces import Identity
from fjmcp.policy.rules import parse_policy
from fjmcp.testing import FakeChild
from tests.bridge.support import (
    FixedAuthenticator,
    Harness,
    TestRequest,
    line,
    make_config,
    note,
    result,
    rpc,
)

READ_ONLY = Identity("alice", "client-a", token_id="t-ro", consent="read-only")
FULL = Identity("alice", "client-a", token_id="t-full")
TOKENS = {b"Bearer ro": READ_ONLY, b"Bearer full": FULL}
JSON = b"application/json"


def _tool(name: str, read_only: bool | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "inputSchema": {"type": "object"}}
    if read_only is not None:
        tool["annotations"] = {"readOnlyHint": read_only}
    return tool


PAGE_1 = {"tools": [_tool("get_file", True), _tool("delete_repo", False)]}
PAGE_2 = {"tools": [_tool("create_issue"), _tool("list_issues", True)]}


def _harness(
    policy: dict[str, Any] | None = None, lines: list[str] | None = None
) -> Harness:
    """A harness whose audit log writes its lines to ``lines``."""
    config = make_config(policy=parse_policy(policy or {}))
    clock = Clock()
    return Harness(
        config=config,
        clock=clock,
        auth=FixedAuthenticator(known=TOKENS),
        refusals=AuditLog(clock, (lines if lines is not None else []).append),
    )


def _start(h: Harness, token: bytes = b"Bearer ro") -> tuple[str, FakeChild]:
    sid, child, _ = h.initialize(token=token)
    return sid, child


def _post(h: Harness, sid: str, msg: Any, token: bytes = b"Bearer ro") -> TestRequest:
    return h.post(msg, session=sid, token=token, accept=JSON)


def _written(child: FakeChild) -> list[dict[str, Any]]:
    return [json.loads(w) for w in child.written]


def test_tools_list_pages_are_filtered_and_keep_the_cursor() -> None:
    """A read-only grant sees only read-only tools, on every page."""
    h = _harness()
    sid, child = _start(h)
    req = _post(h, sid, rpc(1, "tools/list"))
    child.emit(result(1, {**PAGE_1, "nextCursor": "2"}))
    page = req.json()["result"]
    assert [t["name"] for t in page["tools"]] == ["get_file"]
    assert page["nextCursor"] == "2"
    req = _post(h, sid, rpc(2, "tools/list", {"cursor": "2"}))
    child.emit(result(2, PAGE_2))
    assert [t["name"] for t in req.json()["result"]["tools"]] == ["list_issues"]


def test_a_refused_call_is_an_error_and_the_session_keeps_working() -> None:
    """The call never reaches the child; the next allowed call does."""
    lines: list[str] = []
    h = _harness(lines=lines)
    sid, child = _start(h)
    req = _post(h, sid, rpc(1, "tools/list"))
    child.emit(result(1, PAGE_1))
    req.json()
    before = len(child.written)
    refused = _post(
        h, sid, rpc(2, "tools/call", {"name": "delete_repo", "arguments": {"r": 1}})
    )
    error = refused.json()["error"]
    assert error["code"] == -32602
    assert "'delete_repo' is not allowed: the grant is read-only" in error["message"]
    assert error["data"] == {"reason": "policy", "rule": "consent:read-only"}
    assert len(child.written) == before
    (audit,) = [json.loads(line) for line in lines]
    assert audit == {
        "time": audit["time"],
        "event": "policy.refused",
        "user": "alice",
        "client_id": "client-a",
        "session": sid[:8],
        "tool": "delete_repo",
        "rule": "consent:read-only",
    }
    allowed = _post(h, sid, rpc(3, "tools/call", {"name": "get_file"}))
    assert _written(child)[-1]["params"]["name"] == "get_file"
    child.emit(result(3, {"content": []}))
    assert allowed.json()["result"] == {"content": []}


def test_an_unseen_tool_makes_the_broker_fetch_every_page_first() -> None:
    """A call before any list: the broker lists the child's tools, then judges."""
    h = _harness()
    sid, child = _start(h)
    call = _post(h, sid, rpc(7, "tools/call", {"name": "list_issues"}))
    fetch = _written(child)[-1]
    assert fetch["method"] == "tools/list"
    assert fetch["id"].startswith("fjmcp-policy-")
    child.emit(result(fetch["id"], {**PAGE_1, "nextCursor": "p2"}))
    second = _written(child)[-1]
    assert second["method"] == "tools/list" and second["params"] == {"cursor": "p2"}
    child.emit(result(second["id"], PAGE_2))
    assert _written(child)[-1] == rpc(7, "tools/call", {"name": "list_issues"})
    child.emit(result(7, {"content": []}))
    assert call.json()["id"] == 7


def test_an_unlisted_tool_is_refused() -> None:
    """A tool the child does not list cannot be judged read-only: refused."""
    h = _harness()
    sid, child = _start(h)
    call = _post(h, sid, rpc(7, "tools/call", {"name": "secret_tool"}))
    fetch = _written(child)[-1]
    child.emit(result(fetch["id"], PAGE_1))
    assert "does not list this tool" in call.json()["error"]["message"]


def test_list_changed_makes_the_gate_judge_again() -> None:
    """After ``tools/list_changed`` a call waits for a fresh list."""
    h = _harness()
    sid, child = _start(h)
    req = _post(h, sid, rpc(1, "tools/list"))
    child.emit(result(1, {"tools": [_tool("flip", True)]}))
    req.json()
    child.emit(line(note("notifications/tools/list_changed")))
    call = _post(h, sid, rpc(2, "tools/call", {"name": "flip"}))
    fetch = _written(child)[-1]
    assert fetch["method"] == "tools/list"
    child.emit(result(fetch["id"], {"tools": [_tool("flip", False)]}))
    assert "read-only" in call.json()["error"]["message"]


def test_operator_rules_narrow_a_full_grant() -> None:
    """Deny rules refuse tools, resources and prompts to a full-access grant."""
    h = _harness(
        {
            "rules": [
                {
                    "name": "no-repo-deletion",
                    "effect": "deny",
                    "tools": ["delete_repo"],
                    "resources": ["secret://"],
                    "prompts": ["admin"],
                }
            ]
        }
    )
    sid, child = _start(h, b"Bearer full")
    req = _post(h, sid, rpc(1, "tools/list"), token=b"Bearer full")
    child.emit(result(1, {"tools": PAGE_1["tools"] + PAGE_2["tools"]}))
    names = [t["name"] for t in req.json()["result"]["tools"]]
    assert names == ["get_file", "create_issue", "list_issues"]
    call = _post(h, sid, rpc(2, "tools/call", {"name": "delete_repo"}), b"Bearer full")
    assert call.json()["error"]["data"]["rule"] == "no-repo-deletion"
    read = _post(
        h, sid, rpc(3, "resources/read", {"uri": "secret://x"}), b"Bearer full"
    )
    assert read.json()["error"]["data"]["rule"] == "no-repo-deletion"
    prompt = _post(h, sid, rpc(4, "prompts/get", {"name": "admin"}), b"Bearer full")
    assert prompt.json()["error"]["data"]["rule"] == "no-repo-deletion"
    ok = _post(h, sid, rpc(5, "tools/call", {"name": "create_issue"}), b"Bearer full")
    assert _written(child)[-1]["method"] == "tools/call"
    child.emit(result(5, {"content": []}))
    assert "result" in ok.json()


def test_a_list_lost_with_its_child_is_asked_of_the_next() -> None:
    """A child that dies before listing: the enforcer asks again, nothing hangs."""
    h = _harness()
    sid, child = _start(h)
    call = _post(h, sid, rpc(7, "tools/call", {"name": "get_file"}))
    first = _written(child)[-1]
    assert first["method"] == "tools/list"
    enforcer = h.registry.get(sid).router.enforcer  # type: ignore[union-attr]
    assert enforcer.holding == 1
    enforcer.child_exited()
    second = _written(child)[-1]
    assert second["method"] == "tools/list" and second["id"] != first["id"]
    child.emit(result(second["id"], PAGE_1))
    assert _written(child)[-1]["params"]["name"] == "get_file"
    child.emit(result(7, {"content": []}))
    assert call.json()["result"] == {"content": []}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arguments=st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.text(max_size=40), st.integers(), st.lists(st.text(max_size=8))),
        min_size=1,
        max_size=4,
    )
)
def test_a_refusals_audit_line_never_holds_the_arguments(
    arguments: dict[str, Any],
) -> None:
    """Whatever the arguments hold, the refusal's audit line names none of it."""
    marked = {"x-marker": "ARGUMENT-MARKER", **arguments}
    lines: list[str] = []
    h = _harness(
        {"rules": [{"name": "no-del", "effect": "deny", "tools": ["del"]}]}, lines
    )
    sid, child = _start(h, b"Bearer full")
    req = _post(h, sid, rpc(1, "tools/list"), b"Bearer full")
    child.emit(result(1, {"tools": [_tool("del"), _tool("get_file", True)]}))
    req.json()
    refused = _post(
        h,
        sid,
        rpc(2, "tools/call", {"name": "del", "arguments": marked}),
        b"Bearer full",
    )
    assert refused.json()["error"]["data"]["rule"] == "no-del"
    assert len(lines) == 1
    assert "ARGUMENT-MARKER" not in lines[0]
    assert json.loads(lines[0])["tool"] == "del"
    assert set(json.loads(lines[0])) == {
        "time",
        "event",
        "user",
        "client_id",
        "session",
        "tool",
        "rule",
    }
