# -*- test-case-name: tests.integration.test_lifecycle_real -*-
"""
Session lifecycle with a real broker, real children and the stand-in
Forgejo (see `tests.integration.lifecycle`): sessions keep working across
Forgejo token refreshes, answered each time by a child that holds the
current token, in both of Forgejo's refresh modes; and sessions end exactly
when they should (``fjmcp admin revoke-user`` through the admin socket,
``/oauth/revoke`` of one client's grant, Forgejo refusing the refresh, and
idleness).

Refreshes are forced with the stand-in's hooks (expire a user's access
tokens, revoke a user's grants), never by waiting on wall-clock expiry;
every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.integration.lifecycle import (
    Deployment,
    McpClient,
    deploy,
    digest,
    wait_for,
)

pytestmark = pytest.mark.integration

Deploy = Callable[..., Awaitable[Deployment]]


@pytest_twisted.async_yield_fixture
async def broker(tmp_path: Path) -> AsyncIterator[Deploy]:
    """Start a deployment with the given settings; stopped at teardown."""
    started: list[Deployment] = []

    async def start(**settings: Any) -> Deployment:
        deployment = await deploy(tmp_path / f"d{len(started)}", **settings)
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        await deployment.stop()
        assert deployment.live_children == 0


async def whoami_is_current(d: Deployment, client: McpClient, sid: str) -> str:
    """
    Call ``whoami`` in the session: it must succeed, Forgejo must accept the
    child's token (the answer names the user) and that token must be the
    user's current one (same digest). Returns the answering child's pid.
    """
    call = await client.call(sid)
    result = call.result
    assert not result.get("isError"), result
    info = result["structuredContent"]
    session = d.registry.get(sid)
    assert session is not None
    current = await d.current(session.user)
    assert info["login"] == session.user
    assert info["digest"] == digest(current.access_token)
    return str(info["pid"])


async def swapped(d: Deployment, user: str, generation: int) -> None:
    """Wait until every session of ``user`` runs on a child of ``generation``."""

    def done() -> bool:
        sessions = d.sessions_of(user)
        assert sessions, f"{user}'s sessions ended"
        return all(
            s.token_generation >= generation
            and not s.respawning
            and set(s.children) == {s.generation}
            for s in sessions
        )

    await wait_for(done, f"{user}'s children to run with token {generation}")


@pytest.mark.parametrize("invalidate", [False, True], ids=["reusable", "invalidate"])
@pytest_twisted.ensureDeferred
async def test_calls_succeed_across_refreshes_on_current_token(
    broker: Deploy, invalidate: bool
) -> None:
    """
    Two sessions of one user call ``whoami`` before and after each of four
    refreshes. Each refresh is forced by expiring the user's access tokens at
    Forgejo: the per-user check sees the 401 and refreshes (one refresh for
    both sessions), both sessions get a child with the new token under the
    same session ids, and every call succeeds, answered by a child whose
    token Forgejo accepts and that is the current one.
    """
    d = await broker(
        invalidate=invalidate,
        refresh_interval=0.05,
        user_check_interval=0.05,
    )
    tokens = await d.sign_in("alice")
    client = d.mcp(tokens.access_token)
    sids = [await client.initialize(), await client.initialize()]
    first = await d.current("alice")
    pids = {sid: await whoami_is_current(d, client, sid) for sid in sids}
    rounds = 4
    for n in range(1, rounds + 1):
        generation = first.generation + n
        assert d.standin.expire_user_tokens("alice") >= 1
        await swapped(d, "alice", generation)
        assert (await d.current("alice")).generation == generation
        assert d.standin.refresh_count("alice") == n  # one refresh per round
        for sid in sids:
            for _ in range(3):
                pid = await whoami_is_current(d, client, sid)
            assert pid != pids[sid]  # a new child, same session id
            pids[sid] = pid
    assert d.refresher.refreshes == rounds
    assert sorted(s.id for s in d.sessions_of("alice")) == sorted(sids)
    assert d.live_children == 2
