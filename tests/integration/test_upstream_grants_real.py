# -*- test-case-name: tests.integration.test_upstream_grants_real -*-
"""
One upstream grant per consent mode, with a real broker, the stand-in
Forgejo enforcing token scopes as Forgejo 9.0+ does, and a real child that
writes to Forgejo with the token it holds.

A read-only consent logs in through the read-only application with
``forgejo_scopes_read_only``: its child holds that grant's token, which
Forgejo lets read and refuses to write, so even a child that lies in its
annotations (the broker lets a read-only grant call a tool marked
``readOnlyHint``) cannot delete a repository; a full-access consent's child
holds the full grant's token and can. Each grant is refreshed on its own,
through its own application, and only its children are respawned.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from fjmcp.maintenance.refresher import RefreshOutcome
from tests.integration.lifecycle import (
    CHILDREN,
    FORGEJO_CLIENT,
    FORGEJO_RO_CLIENT,
    Deployment,
    deploy,
    digest,
    wait_for,
)

pytestmark = pytest.mark.integration

READ_ONLY = ("read:repository", "read:issue", "read:user", "read:organization")
NOTES = {"owner": "alice", "repo": "notes"}


async def _session(d: Deployment, mode: str) -> tuple[Any, str]:
    """Alice through a new client with ``mode``: an MCP client and its session."""
    tokens = await d.sign_in("alice", mode=mode)
    client = d.mcp(tokens.access_token)
    return client, await client.initialize()


async def _call(client: Any, sid: str, tool: str) -> dict[str, Any]:
    call = await client.request("tools/call", {"name": tool, "arguments": NOTES}, sid)
    assert call.status == 200, call.body
    body: dict[str, Any] = call.body
    return body


@pytest_twisted.ensureDeferred
async def test_each_consent_mode_gets_its_own_forgejo_grant(tmp_path: Path) -> None:
    """
    Read-only and full access are two grants at Forgejo, each with its own
    scope and token; the read-only child's token cannot write, whatever the
    child claims; the full-access child's can.
    """
    d = await deploy(
        tmp_path / "d",
        repos=("notes",),
        read_only_scopes=READ_ONLY,
        child_command=(sys.executable, "-B", str(CHILDREN / "repo_writer_server.py")),
    )
    try:
        ro_client, ro_sid = await _session(d, "read-only")
        full_client, full_sid = await _session(d, "full")
        # Two grants at Forgejo, through two applications, each its own scope.
        assert d.standin.grant_scope("alice", FORGEJO_RO_CLIENT) == " ".join(
            sorted(READ_ONLY)
        )
        assert d.standin.grant_scope("alice", FORGEJO_CLIENT) == ""
        ro_token = await d.current("alice", "read-only")
        full_token = await d.current("alice", "full")
        assert ro_token.access_token != full_token.access_token
        assert ro_token.scopes == tuple(sorted(READ_ONLY))

        # The read-only child holds the read-only grant's token and reads.
        read = await _call(ro_client, ro_sid, "read_repo")
        assert read["result"]["structuredContent"] == {
            "status": 200,
            "digest": digest(ro_token.access_token),
        }
        # The broker refuses what the child marks destructive...
        refused = await _call(ro_client, ro_sid, "delete_repo")
        assert refused["error"]["data"]["rule"] == "consent:read-only"
        # ...and Forgejo refuses the write the child hides behind readOnlyHint.
        lied = await _call(ro_client, ro_sid, "mislabelled_delete")
        assert lied["result"]["isError"] is True
        assert lied["result"]["structuredContent"]["status"] == 403
        assert d.standin.refusals["write:repository"] == 1
        assert (await _call(full_client, full_sid, "read_repo"))["result"][
            "structuredContent"
        ]["status"] == 200

        # The full-access child holds the full grant's token, which writes.
        deleted = await _call(full_client, full_sid, "delete_repo")
        assert deleted["result"]["structuredContent"] == {
            "status": 204,
            "digest": digest(full_token.access_token),
        }
        gone = await _call(ro_client, ro_sid, "read_repo")
        assert gone["result"]["structuredContent"]["status"] == 404
    finally:
        await d.stop()


@pytest_twisted.ensureDeferred
async def test_each_grant_is_refreshed_on_its_own(tmp_path: Path) -> None:
    """
    Refreshing the read-only grant goes to its application, stores its new
    token and respawns only the read-only child; then the full grant's.
    """
    d = await deploy(
        tmp_path / "d",
        repos=("notes",),
        read_only_scopes=READ_ONLY,
        child_command=(sys.executable, "-B", str(CHILDREN / "repo_writer_server.py")),
    )
    try:
        ro_client, ro_sid = await _session(d, "read-only")
        full_client, full_sid = await _session(d, "full")
        upstream = d.service.broker.upstream_tokens  # type: ignore[union-attr]
        ro_grant = upstream.grant("alice", "read-only")
        full_grant = upstream.grant("alice")
        before = {o.id: o.token_generation for o in d.sessions_of("alice")}

        assert await d.refresher.refresh(ro_grant) is RefreshOutcome.REFRESHED
        assert d.standin.refresh_count("alice") == 1
        ro_token = await d.current("alice", "read-only")
        assert ro_token.generation == 2
        assert (await d.current("alice")).generation == 1

        def respawned() -> bool:
            owners = {o.id: o for o in d.sessions_of("alice")}
            ro = owners[ro_sid]
            return ro.token_generation == 2 and not ro.respawning

        await wait_for(respawned, "the read-only child to be respawned")
        owners = {o.id: o for o in d.sessions_of("alice")}
        assert owners[ro_sid].token_generation == 2
        assert owners[full_sid].token_generation == before[full_sid] == 1
        read = await _call(ro_client, ro_sid, "read_repo")
        assert read["result"]["structuredContent"]["digest"] == digest(
            ro_token.access_token
        )
        lied = await _call(ro_client, ro_sid, "mislabelled_delete")
        assert lied["result"]["structuredContent"]["status"] == 403

        assert await d.refresher.refresh(full_grant) is RefreshOutcome.REFRESHED
        assert d.standin.refresh_count("alice") == 2
        assert (await d.current("alice")).generation == 2
        assert (await d.current("alice", "read-only")).generation == 2
        await wait_for(
            lambda: (
                {o.id: o for o in d.sessions_of("alice")}[full_sid].token_generation
                == 2
            ),
            "the full-access child to be respawned",
        )
        written = await _call(full_client, full_sid, "delete_repo")
        assert written["result"]["structuredContent"]["status"] == 204
    finally:
        await d.stop()
