# -*- test-case-name: tests.integration.test_policy_real -*-
"""
The policy with a real child process over real loopback HTTP: a read-only
grant sees and calls only the read-only tools, a refused call leaves the
session working, and operator rules narrow a full grant.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
import treq

from fjmcp.interfaces import Identity
from fjmcp.policy.rules import parse_policy
from tests.bridge.stateless_support import envelope
from tests.bridge.support import FixedAuthenticator
from tests.integration.test_bridge_real import (
    Broker,
    _call,
    _with_broker,
    open_session,
    post,
)
from tests.integration.test_stateless_real import first_answer, stateless

pytestmark = pytest.mark.integration

JSON = b"application/json"


def _identity(consent: str) -> Identity:
    return Identity("alice", "client-a", token_id="t-it", consent=consent)


def _as(consent: str) -> FixedAuthenticator:
    return FixedAuthenticator(known={b"Bearer alice-token": _identity(consent)})


async def _json(broker: Broker, message: Any, sid: str) -> Any:
    response = await post(broker, message, sid, accept=JSON)
    return json.loads(await treq.content(response))


async def _all_tools(broker: Broker, sid: str) -> list[str]:
    names: list[str] = []
    cursor = None
    for rid in range(100, 110):
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        page = await _json(
            broker,
            {"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": params},
            sid,
        )
        names += [t["name"] for t in page["result"]["tools"]]
        cursor = page["result"].get("nextCursor")
        if cursor is None:
            return names
    raise AssertionError("the child's list never ended")


@pytest_twisted.ensureDeferred
async def test_read_only_grant_sees_and_calls_only_read_only_tools() -> None:
    """Hidden on every page, refused with a reason, and the session goes on."""

    async def run(broker: Broker) -> None:
        sid, _ = await open_session(broker)
        # A call before any list: the broker lists the child's tools itself.
        early = await _json(broker, _call(1, "delete_repo", {}), sid)
        assert "the grant is read-only" in early["error"]["message"]
        assert await _all_tools(broker, sid) == [
            "get_file",
            "list_issues",
            "count_stars",
        ]
        refused = await _json(broker, _call(2, "create_issue", {"title": "x"}), sid)
        assert refused["error"]["data"]["rule"] == "consent:read-only"
        for rid, name in enumerate(("get_file", "list_issues", "count_stars"), 3):
            answer = await _json(broker, _call(rid, name, {}), sid)
            assert answer["result"]["content"][0]["text"] == f"called {name}"

    await _with_broker(
        "forge_tools_server.py",
        run,
        auth=_as("read-only"),
        policy=parse_policy({"read_only_tools": ["count_stars"]}),
    )


@pytest_twisted.ensureDeferred
async def test_operator_rules_narrow_a_full_grant() -> None:
    """No repository deletion for anyone, even with full access."""

    async def run(broker: Broker) -> None:
        sid, _ = await open_session(broker)
        tools = await _all_tools(broker, sid)
        assert "delete_repo" not in tools and "create_issue" in tools
        refused = await _json(broker, _call(1, "delete_repo", {}), sid)
        assert refused["error"]["data"]["rule"] == "no-repo-deletion"
        answer = await _json(broker, _call(2, "create_issue", {}), sid)
        assert answer["result"]["content"][0]["text"] == "called create_issue"

    policy = parse_policy(
        {
            "rules": [
                {"name": "no-repo-deletion", "effect": "deny", "tools": ["delete_repo"]}
            ]
        }
    )
    await _with_broker("forge_tools_server.py", run, auth=_as("full"), policy=policy)


@pytest_twisted.ensureDeferred
async def test_a_changed_consent_mode_replaces_a_stateless_clients_child() -> None:
    """
    A 2026-07-28 client with full access calls a destructive tool; the user
    makes the grant read-only (its owners end, as the account page's change
    does); the client's next call, with its read-only token, runs on a new
    child process and is refused, and the old process is gone.
    """
    auth = _as("full")

    async def run(broker: Broker) -> None:
        call = envelope(1, "tools/call", {"name": "create_issue", "arguments": {}})
        answer = await first_answer(await stateless(broker, call))
        assert answer["result"]["content"][0]["text"] == "called create_issue"
        (full_owner,) = broker.registry.owners_of("alice")
        full_child = full_owner.child
        assert full_child is not None
        full_pid = full_child.pid

        await broker.registry.end_user_client("alice", "client-a", "mode changed")
        auth.known = {b"Bearer alice-token": _identity("read-only")}
        call = envelope(2, "tools/call", {"name": "create_issue", "arguments": {}})
        refused = await first_answer(await stateless(broker, call))
        assert refused["error"]["data"]["rule"] == "consent:read-only"
        (owner,) = broker.registry.owners_of("alice")
        assert owner.identity.consent == "read-only"
        assert owner.child is not None and owner.child is not full_child
        assert owner.child.pid != full_pid
        assert full_child.pid is None  # reaped: end_user_client waited for it

    await _with_broker("forge_tools_server.py", run, auth=auth, policy=parse_policy({}))
