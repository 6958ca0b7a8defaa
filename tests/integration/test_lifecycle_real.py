# -*- test-case-name: tests.integration.test_lifecycle_real -*-
"""
Session lifecycle with a real broker, real children and the stand-in
Forgejo (see `tests.integration.lifecycle`): sessions keep working across
Forgejo token refreshes, answered each time by a child that holds the
current token, in both of Forgejo's refresh modes; and sessions end exactly
when they should (``fjmcp admin revoke-user`` through the admin socket,
``/oauth/revoke`` of one client's grant, Forgejo refusing the refresh, and
idleness, never while a GET stream is open).

Refreshes are forced with the stand-in's hooks (expire a user's access
tokens, revoke a user's grants), never by waiting on wall-clock expiry;
every wait is bounded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from fjmcp.maintenance.refresher import RefreshOutcome
from tests.integration.lifecycle import (
    Deployment,
    McpClient,
    deploy,
    digest,
    reactor,
    wait_for,
)
from tests.integration.test_twistd import FJMCP, Collect, _env

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
    return str(info["process"])


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


@pytest_twisted.ensureDeferred
async def test_calls_during_rotations_ahead_of_expiry_all_succeed(
    broker: Deploy,
) -> None:
    """
    With tokens that always expire within the refresh margin, the refresher's
    own loop refreshes the user on every tick; a session calling ``whoami``
    back to back meanwhile sees every call succeed (a call made while the
    new child is being readied is answered by the old one, whose token is
    still valid) and is answered by several generations of child.
    """
    d = await broker(token_lifetime=600, refresh_margin=900.0, refresh_interval=0.3)
    tokens = await d.sign_in("alice")
    client = d.mcp(tokens.access_token)
    sid = await client.initialize()
    seen: set[str] = set()
    calls = 0
    deadline = reactor.seconds() + 30.0
    while d.refresher.refreshes < 4 or len(seen) < 3:
        assert reactor.seconds() < deadline, (d.refresher.refreshes, seen)
        call = await client.call(sid)
        calls += 1
        assert call.ok, call.body
        info = call.result["structuredContent"]
        assert info["login"] == "alice"
        seen.add(info["digest"])
    assert d.registry.get(sid) is not None
    assert calls >= len(seen)


@pytest_twisted.ensureDeferred
async def test_revoke_user_through_the_admin_socket(broker: Deploy) -> None:
    """
    ``fjmcp admin revoke-user alice`` (a real command talking to the
    daemon's socket) ends every session of alice, through every client,
    stops their children, and her tokens get 401; bob is untouched.
    """
    d = await broker()
    alice_a = d.mcp((await d.sign_in("alice")).access_token)
    alice_b = d.mcp((await d.sign_in("alice")).access_token)
    bob = d.mcp((await d.sign_in("bob")).access_token)
    a_sid, b_sid = await alice_a.initialize(), await alice_b.initialize()
    bob_sid = await bob.initialize()
    await whoami_is_current(d, alice_a, a_sid)
    children = [c for s in d.sessions_of("alice") for c in s.children.values()]
    ended = [c.ended for c in children]
    assert len(ended) == 2

    output = await admin(d, "revoke-user", "alice")
    result = json.loads(output)
    assert result["daemon"] is True and result["user"] == "alice"
    assert result["broker_tokens_revoked"] >= 4  # access + refresh, two clients
    assert result["forgejo_token_deleted"] is True

    assert d.sessions_of("alice") == []
    for exit in ended:
        await exit.addTimeout(10, reactor)
    assert (await alice_a.call(a_sid)).status == 401
    assert (await alice_b.call(b_sid)).status == 401
    await whoami_is_current(d, bob, bob_sid)
    assert d.live_children == 1


@pytest_twisted.ensureDeferred
async def test_oauth_revoke_ends_that_clients_sessions_only(broker: Deploy) -> None:
    """
    Revoking one client's grant at ``/oauth/revoke`` ends alice's sessions
    through that client (401 after, children stopped); her session through
    another client and bob's keep working.
    """
    d = await broker()
    first = await d.sign_in("alice")
    second = await d.sign_in("alice")
    bob_tokens = await d.sign_in("bob")
    a1 = d.mcp(first.access_token)
    a2 = d.mcp(second.access_token)
    bob = d.mcp(bob_tokens.access_token)
    s1, s1b, s2 = await a1.initialize(), await a1.initialize(), await a2.initialize()
    bob_sid = await bob.initialize()
    revoked = d.registry.get(s1)
    assert revoked is not None and revoked.child is not None
    gone = revoked.child.ended

    await d.revoke(first)

    await gone.addTimeout(10, reactor)
    left = {s.id for s in d.registry.sessions()}
    assert s1 not in left and s1b not in left
    assert s2 in left and bob_sid in left
    assert (await a1.call(s1)).status == 401
    await whoami_is_current(d, a2, s2)
    await whoami_is_current(d, bob, bob_sid)


@pytest.mark.parametrize("invalidate", [False, True], ids=["reusable", "invalidate"])
@pytest_twisted.ensureDeferred
async def test_forgejo_refusing_the_refresh_ends_the_users_sessions(
    broker: Deploy, invalidate: bool
) -> None:
    """
    When alice revokes the application at Forgejo, the next refresh is
    refused with a 4xx OAuth error: every session of hers ends (children
    stopped, her broker token 401); bob's session goes on.
    """
    d = await broker(invalidate=invalidate)
    alice = d.mcp((await d.sign_in("alice")).access_token)
    bob = d.mcp((await d.sign_in("bob")).access_token)
    sid, bob_sid = await alice.initialize(), await bob.initialize()
    await whoami_is_current(d, alice, sid)
    session = d.registry.get(sid)
    assert session is not None and session.child is not None
    gone = session.child.ended

    assert d.standin.revoke_user("alice") == 1
    outcome = await d.refresher.refresh_user("alice")

    assert outcome is RefreshOutcome.REVOKED
    await gone.addTimeout(10, reactor)
    assert d.sessions_of("alice") == []
    assert (await alice.call(sid)).status == 401
    await whoami_is_current(d, bob, bob_sid)


@pytest.mark.parametrize("invalidate", [False, True], ids=["reusable", "invalidate"])
@pytest_twisted.ensureDeferred
async def test_forgejo_revocation_found_by_the_user_check(
    broker: Deploy, invalidate: bool
) -> None:
    """
    With the timers running, revoking the application at Forgejo is found by
    the per-user check on its own (401, then the refresh refused): alice's
    sessions end within a bounded wait, bob's stay.
    """
    d = await broker(
        invalidate=invalidate, refresh_interval=0.05, user_check_interval=0.05
    )
    alice = d.mcp((await d.sign_in("alice")).access_token)
    bob = d.mcp((await d.sign_in("bob")).access_token)
    sid, bob_sid = await alice.initialize(), await bob.initialize()
    before = d.standin.refresh_count("alice")

    d.standin.revoke_user("alice")

    await wait_for(lambda: d.registry.get(sid) is None, "alice's session to end")
    await wait_for(lambda: d.live_children == 1, "alice's child to be reaped")
    assert d.standin.refresh_count("alice") == before  # refused, not refreshed
    assert (await alice.call(sid)).status == 401
    await whoami_is_current(d, bob, bob_sid)


@pytest_twisted.ensureDeferred
async def test_idle_sessions_are_reaped(broker: Deploy) -> None:
    """
    With a tiny ``session_idle_timeout``, a session left alone ends on its
    own: its child is stopped and its next request gets 404 (the token is
    still good, so the client initializes again and goes on).
    """
    d = await broker(session_idle_timeout=0.3, reaper_interval=0.1)
    client = d.mcp((await d.sign_in("alice")).access_token)
    sid = await client.initialize()
    await whoami_is_current(d, client, sid)
    session = d.registry.get(sid)
    assert session is not None and session.child is not None
    gone = session.child.ended

    await wait_for(lambda: d.registry.get(sid) is None, "the idle session to end")
    exit = await gone.addTimeout(10, reactor)
    assert exit.reason in ("stopped", "exited", "signalled")
    await wait_for(lambda: d.reaper.reaped_total == 1, "the reaper to count it")
    assert (await client.call(sid)).status == 404
    again = await client.initialize()
    await whoami_is_current(d, client, again)


class _HeldStream(Protocol):
    """Receives an SSE body and keeps the stream open until told to close."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        """The stream ended."""
        if not self.closed.called:
            self.closed.callback(None)

    def hang_up(self) -> None:
        """Drop the connection, as a client that goes away does."""
        assert self.transport is not None
        self.transport.stopProducing()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_a_session_with_an_open_get_stream_is_not_reaped(
    broker: Deploy,
) -> None:
    """
    A session whose standalone GET stream is open is not idle: with a tiny
    ``session_idle_timeout``, another session opened at the same time is
    reaped while this one lives on; once the client drops the stream, the
    reaper ends it too.
    """
    d = await broker(session_idle_timeout=0.3, reaper_interval=0.1)
    client = d.mcp((await d.sign_in("alice")).access_token)
    streaming = await client.initialize()
    idle = await client.initialize()
    headers = client._headers(streaming)
    headers[b"accept"] = b"text/event-stream"
    response = await client._http.get(client.url, headers=headers).addTimeout(
        10, reactor
    )
    assert response.code == 200
    stream = _HeldStream()
    response.deliverBody(stream)

    await wait_for(lambda: d.registry.get(idle) is None, "the idle session to end")
    assert d.registry.get(streaming) is not None
    stream.hang_up()
    await stream.closed.addTimeout(10, reactor)
    await wait_for(
        lambda: d.registry.get(streaming) is None,
        "the session to end once its stream closed",
    )
    await wait_for(lambda: d.reaper.reaped_total == 2, "the reaper to count it")


async def admin(d: Deployment, *argv: str) -> str:
    """Run ``fjmcp admin --json ARGV`` against the daemon's socket; its output."""
    protocol = Collect()
    args = [FJMCP, "admin", "--socket", str(d.config.admin_socket_path), "--json"]
    reactor.spawnProcess(protocol, FJMCP, [*args, *argv], env=_env())
    code = await protocol.ended.addTimeout(30, reactor)
    assert code == 0, protocol.text
    return protocol.text


@pytest_twisted.ensureDeferred
async def test_a_fresh_login_gives_running_sessions_the_new_token(
    broker: Deploy,
) -> None:
    """
    When alice logs in again (a new Forgejo token is stored, generation + 1)
    while a session of hers runs, that session gets a child with the new
    token too, under the same id: the older token would otherwise expire
    before the refresher, which only looks at the newest token, renews it.
    """
    d = await broker()
    first = await d.sign_in("alice")
    client = d.mcp(first.access_token)
    sid = await client.initialize()
    old_pid = await whoami_is_current(d, client, sid)
    generation = (await d.current("alice")).generation

    await d.sign_in("alice", first.client_id)

    await swapped(d, "alice", generation + 1)
    assert await whoami_is_current(d, client, sid) != old_pid


@pytest_twisted.ensureDeferred
async def test_back_to_back_refreshes_end_on_the_newest_token(broker: Deploy) -> None:
    """
    Two refreshes in a row (the second while the children of the first are
    still being readied) leave every session, even one nobody calls, on a
    child with the newest token.
    """
    d = await broker()
    client = d.mcp((await d.sign_in("alice")).access_token)
    sids = [await client.initialize() for _ in range(3)]
    generation = (await d.current("alice")).generation

    assert await d.refresher.refresh_user("alice") is RefreshOutcome.REFRESHED
    assert all(s.respawning for s in d.sessions_of("alice"))
    assert await d.refresher.refresh_user("alice") is RefreshOutcome.REFRESHED

    await swapped(d, "alice", generation + 2)
    for sid in sids:
        await whoami_is_current(d, client, sid)
