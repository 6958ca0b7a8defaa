# -*- test-case-name: tests.policy.test_gate -*-
"""
One session's view of its child's tools through its effective policy.

The gate learns each tool's verdict from the child's ``tools/list`` pages as
they pass (every page, and again after ``list_changed``), filters what the
client sees, and answers a ``tools/call`` with one dictionary lookup. A tool
it has not seen listed has no verdict: the bridge then asks the child for
its list before it judges the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from attrs import define, field

from fjmcp.policy.effective import EffectivePolicy, Verdict, read_only_hint

__all__ = ["POLICY_REFUSED", "ToolGate", "refusal_error"]

#: The JSON-RPC error code of a refused call: invalid params, as MCP answers
#: a call to a tool the server does not offer.
POLICY_REFUSED: Final = -32602


def refusal_error(
    what: str, name: str, verdict: Verdict
) -> tuple[int, str, dict[str, str]]:
    """The JSON-RPC error (code, message, data) of a refused call, saying why."""
    return (
        POLICY_REFUSED,
        f"{what} {name!r} is not allowed: {verdict.reason}",
        {"reason": "policy", "rule": verdict.rule},
    )


@define
class ToolGate:
    """The verdicts of one session's tools, learnt from its child's lists."""

    policy: EffectivePolicy
    _verdicts: dict[str, Verdict] = field(factory=dict)

    def verdict(self, name: str) -> Verdict | None:
        """The verdict of a tool seen listed, or None if it has not been."""
        return self._verdicts.get(name)

    def forget(self) -> None:
        """The child's list changed: judge again from the next list."""
        self._verdicts.clear()

    def learn(self, tools: Any) -> list[Any]:
        """
        Judge each tool of one ``tools/list`` page and return the ones the
        client may see (a malformed entry is dropped: it cannot be judged).
        """
        if not isinstance(tools, list):
            return []
        kept = []
        for tool in tools:
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                continue
            verdict = self.policy.tool(tool["name"], read_only_hint(tool))
            self._verdicts[tool["name"]] = verdict
            if verdict.allowed:
                kept.append(tool)
        return kept

    def filter_result(self, method: str, result: Any) -> Any:
        """
        A list result as the client may see it: ``tools``, ``resources`` or
        ``prompts`` filtered, every other member (``nextCursor``) kept.
        """
        if not isinstance(result, Mapping):
            return result
        out = dict(result)
        if method == "tools/list":
            out["tools"] = self.learn(result.get("tools"))
        elif method == "resources/list":
            out["resources"] = [
                r
                for r in _entries(result.get("resources"))
                if not isinstance(r.get("uri"), str)
                or self.policy.resource(r["uri"]).allowed
            ]
        elif method == "prompts/list":
            out["prompts"] = [
                p
                for p in _entries(result.get("prompts"))
                if not isinstance(p.get("name"), str)
                or self.policy.prompt(p["name"]).allowed
            ]
        return out


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping)]
