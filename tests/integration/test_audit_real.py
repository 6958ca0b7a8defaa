# -*- test-case-name: tests.integration.test_audit_real -*-
"""
The audit log of a real broker after a scripted session: one line per MCP
request that reached the child and per OAuth grant, refresh, revocation
and consent decision, with who, through which client, in which session,
and how it ended, and never a word of the arguments or the results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_twisted

from fjmcp.policy.rules import parse_policy
from tests.integration.lifecycle import deploy, wait_for

pytestmark = pytest.mark.integration

#: Text only the tool call's arguments carry.
MARKER = "argument-text-never-audited"


@pytest_twisted.ensureDeferred
async def test_audit_lines_after_a_scripted_session(tmp_path: Path) -> None:
    """
    Login (consent, grant), a session (initialize, a tool call with
    arguments, an error), a refresh and a revocation: each is one JSON line
    in the audit file, and neither the arguments nor the results appear.
    """
    audit = tmp_path / "audit.log"
    d = await deploy(tmp_path / "d", audit_log=str(audit))
    try:
        tokens = await d.sign_in("alice")
        client = d.mcp(tokens.access_token)
        sid = await client.initialize()
        call = await client.request(
            "tools/call", {"name": "whoami", "arguments": {"note": MARKER}}, sid
        )
        result_text = json.dumps(call.result)
        await client.request("no/such-method", {"secret": MARKER}, sid)
        response, body = await d._browser().request(
            "POST",
            d.base + "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": tokens.client_id,
            },
        )
        assert response.code == 200, body
        refreshed = json.loads(body)
        await d.revoke(type(tokens)(tokens.client_id, "", refreshed["refresh_token"]))
        await wait_for(lambda: d.registry.get(sid) is None, "the session to end")
    finally:
        await d.stop()

    text = audit.read_text()
    assert MARKER not in text
    assert d.config.forgejo_client_secret not in text
    assert tokens.access_token not in text and tokens.refresh_token not in text
    records = [json.loads(line) for line in text.splitlines()]
    events = [(r["event"], r["outcome"]) for r in records]
    assert events[:2] == [("oauth.consent", "allow"), ("oauth.grant", "ok")]
    assert ("oauth.refresh", "ok") in events
    assert ("oauth.revocation", "ok") in events
    calls = [r for r in records if r["event"] == "mcp.request"]
    assert [(c["method"], c["tool"], c["outcome"]) for c in calls] == [
        ("initialize", None, "ok"),
        ("tools/call", "whoami", "ok"),
        ("no/such-method", None, "error"),
    ]
    for c in calls:
        assert c["user"] == "alice" and c["client_id"] == tokens.client_id
        assert c["session"] == sid[:8]
        assert c["latency_ms"] >= 0 and c["time"].endswith("+00:00")
        assert set(c) == {
            "time",
            "event",
            "user",
            "client_id",
            "session",
            "method",
            "tool",
            "outcome",
            "latency_ms",
        }
    structured = json.loads(result_text).get("structuredContent", {})
    for value in structured.values():
        if isinstance(value, str) and len(value) > 8:
            assert value not in text


@pytest_twisted.ensureDeferred
async def test_a_refused_call_is_one_audit_line(tmp_path: Path) -> None:
    """
    A call the policy refuses is answered with an error, and is one line of
    the configured audit file naming the user, the client, the tool and the
    rule, without its arguments; the session goes on.
    """
    audit = tmp_path / "audit.log"
    policy = parse_policy(
        {"rules": [{"name": "no-whoami", "effect": "deny", "tools": ["whoami"]}]}
    )
    d = await deploy(tmp_path / "d", audit_log=str(audit), policy=policy)
    try:
        tokens = await d.sign_in("alice")
        client = d.mcp(tokens.access_token)
        sid = await client.initialize()
        refused = await client.request(
            "tools/call", {"name": "whoami", "arguments": {"note": MARKER}}, sid
        )
        assert refused.body["error"]["data"] == {
            "reason": "policy",
            "rule": "no-whoami",
        }
        listed = await client.request("tools/list", {}, sid)
        assert "whoami" not in [t["name"] for t in listed.result["tools"]]
    finally:
        await d.stop()

    text = audit.read_text()
    assert MARKER not in text
    records = [json.loads(line) for line in text.splitlines()]
    refusals = [r for r in records if r["event"] == "policy.refused"]
    assert refusals == [
        {
            "time": refusals[0]["time"],
            "event": "policy.refused",
            "user": "alice",
            "client_id": tokens.client_id,
            "session": sid[:8],
            "tool": "whoami",
            "rule": "no-whoami",
        }
    ]
