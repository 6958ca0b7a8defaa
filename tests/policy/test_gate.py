# -*- test-case-name: tests.policy.test_gate -*-
"""Tests of the per-session gate: list filtering, verdicts, refusal errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.policy.effective import Subject, effective_policy
from fjmcp.policy.gate import POLICY_REFUSED, ToolGate, refusal_error
from fjmcp.policy.rules import Mode, PolicyConfig, parse_policy

RO = Subject("alice", "cid", Mode.READ_ONLY)


def _tool(name: str, read_only: bool | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "inputSchema": {"type": "object"}}
    if read_only is not None:
        tool["annotations"] = {"readOnlyHint": read_only}
    return tool


def test_tools_list_page_is_filtered_and_keeps_its_cursor() -> None:
    """Hidden tools leave the page; ``nextCursor`` stays."""
    gate = ToolGate(effective_policy(PolicyConfig(), RO))
    result = {
        "tools": [_tool("get", True), _tool("rm", False), _tool("odd")],
        "nextCursor": "p2",
    }
    out = gate.filter_result("tools/list", result)
    assert [t["name"] for t in out["tools"]] == ["get"]
    assert out["nextCursor"] == "p2"
    assert gate.verdict("get") is not None and gate.verdict("get").allowed  # type: ignore[union-attr]
    assert gate.verdict("rm") is not None and not gate.verdict("rm").allowed  # type: ignore[union-attr]
    assert gate.verdict("never-listed") is None


def test_forget_clears_verdicts() -> None:
    """After list_changed the gate judges again from the next list."""
    gate = ToolGate(effective_policy(PolicyConfig(), RO))
    gate.learn([_tool("get", True)])
    gate.forget()
    assert gate.verdict("get") is None


def test_resources_and_prompts_lists_are_filtered() -> None:
    """Denied resource prefixes and prompt names leave their lists."""
    config = parse_policy(
        {"rules": [{"effect": "deny", "resources": ["s://"], "prompts": ["p"]}]}
    )
    gate = ToolGate(effective_policy(config, RO))
    res = gate.filter_result(
        "resources/list", {"resources": [{"uri": "s://x"}, {"uri": "r://y"}]}
    )
    assert res["resources"] == [{"uri": "r://y"}]
    prompts = gate.filter_result(
        "prompts/list", {"prompts": [{"name": "p"}, {"name": "q"}]}
    )
    assert prompts["prompts"] == [{"name": "q"}]


def test_refusal_error_says_why() -> None:
    """The error names the tool, the reason and the rule, never arguments."""
    gate = ToolGate(effective_policy(PolicyConfig(), RO))
    gate.learn([_tool("rm", False)])
    verdict = gate.verdict("rm")
    assert verdict is not None
    code, message, data = refusal_error("tool", "rm", verdict)
    assert code == POLICY_REFUSED
    assert "'rm' is not allowed: the grant is read-only" in message
    assert data == {"reason": "policy", "rule": "consent:read-only"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_any_child_result_is_filtered_without_error(result: Any) -> None:
    """Whatever a child answers to tools/list, filtering never raises."""
    gate = ToolGate(effective_policy(PolicyConfig(), RO))
    out = gate.filter_result("tools/list", result)
    if isinstance(out, dict):
        for tool in out["tools"]:
            assert tool["annotations"]["readOnlyHint"] is True
