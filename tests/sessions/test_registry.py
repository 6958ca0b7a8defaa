# -*- test-case-name: tests.sessions.test_registry -*-
"""
Tests for `fjmcp.sessions.registry`: ids, identity binding, owner keys and
the lookups by user and by grant, caps, idle reaping, scoped revocation
(ISessionControl), shutdown drain, and the invisible child swap after a
token refresh (`fjmcp.sessions.respawn`), which no lookup or GET starts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from attrs import evolve
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from fjmcp.interfaces import (
    ChildExit,
    Identity,
    ISessionControl,
    UpstreamGrant,
    UpstreamGrants,
)
from fjmcp.maintenance.reaper import IIdleSessions
from fjmcp.sessions.owner import ChildOwner, IdentityKey
from fjmcp.sessions.registry import (
    OwnerExistsError,
    SessionForbiddenError,
    SessionNotFoundError,
    new_session_id,
)
from tests.bridge.support import (
    ALICE,
    ALICE_OTHER_CLIENT,
    FixedAuthenticator,
    Harness,
    line,
    note,
    result,
    rpc,
)


def _ready(h: Harness, **kw: Any) -> tuple[str, Any]:
    sid, child, _ = h.initialize(**kw)
    h.post(
        note("notifications/initialized"),
        session=sid,
        token=kw.get("token", b"Bearer alice-token"),
    )
    return sid, child


def _answer_initialize(child: Any, capabilities: Any = None) -> None:
    """Answer the broker's replayed ``initialize`` on a respawned child."""
    init = json.loads(child.written[0])
    child.emit(
        line(
            {
                "jsonrpc": "2.0",
                "id": init["id"],
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities or {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "2"},
                },
            }
        )
    )


def test_session_ids_are_192_bit_visible_ascii() -> None:
    """Ids are 32 URL-safe characters (192 bits), all different."""
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 32 and all(0x21 <= ord(c) <= 0x7E for c in i) for i in ids)


def test_registry_provides_what_others_call() -> None:
    """The registry is the ISessionControl and the reaper's IIdleSessions."""
    h = Harness()
    control: ISessionControl = h.registry
    idle: IIdleSessions = h.registry
    assert control.live_users() == frozenset() and idle is h.registry


def test_reap_idle_ends_only_idle_sessions() -> None:
    """Idle past the timeout ends; busy (in flight or GET open) or recent does not."""
    h = Harness()
    idle_sid, idle_child = _ready(h)
    busy_sid, busy_child = _ready(h, token=b"Bearer bob-token")
    h.post(
        rpc(1, "tools/call", {"name": "slow"}),
        session=busy_sid,
        token=b"Bearer bob-token",
    )
    h.clock.advance(100)
    recent_sid, _ = _ready(h, token=b"Bearer alice-b-token")
    d = h.registry.reap_idle(h.clock.seconds(), 50)
    ended: list[int] = []
    d.addCallback(ended.append)
    assert ended == [1]
    assert h.registry.get(idle_sid) is None and not idle_child.alive
    assert h.registry.get(busy_sid) is not None and busy_child.alive
    assert h.registry.get(recent_sid) is not None
    assert h.post(rpc(2, "ping"), session=idle_sid).status == 404


def test_end_user_and_end_user_client_are_scoped() -> None:
    """Revoking a client ends only that client's sessions; revoking a user, all."""
    h = Harness()
    a1, _ = _ready(h)
    a2, _ = _ready(h, token=b"Bearer alice-b-token")
    b1, _ = _ready(h, token=b"Bearer bob-token")
    assert h.registry.live_users() == {"alice", "bob"}
    h.registry.end_user_client("alice", "client-b", "token revoked")
    assert h.registry.get(a2) is None and h.registry.get(a1) is not None
    h.registry.end_user("alice", "revoke-user")
    assert h.registry.get(a1) is None and h.registry.get(b1) is not None
    assert h.registry.live_users() == {"bob"}
    counts = h.registry.counts()
    assert (counts.sessions, counts.started, counts.ended) == (1, 3, 2)


def test_ending_a_session_fails_its_requests_in_flight() -> None:
    """A revoked session's waiting stream gets -32603 naming the reason."""
    h = Harness()
    sid, _ = _ready(h)
    call = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    h.registry.end_user("alice", "revoked by an operator")
    err = call.messages()[-1]
    assert err["id"] == 1 and "revoked by an operator" in err["error"]["message"]
    assert call.finished == 1


def test_drain_closes_get_streams_and_waits_for_in_flight() -> None:
    """Shutdown drain: GET streams close now; it fires once calls finish."""
    h = Harness()
    sid, child = _ready(h)
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    fired: list[object] = []
    h.registry.drain().addCallback(fired.append)
    assert get.finished == 1 and fired == []
    child.emit(result(1))
    assert fired == [None]


def test_failed_initialize_ends_the_session() -> None:
    """A child that answers initialize with an error leaves no session behind."""
    h = Harness()
    req = h.post(rpc(0, "initialize", {"protocolVersion": "2025-06-18"}))
    sid = req.header(b"mcp-session-id")
    assert sid is not None
    h.spawner.last.emit(
        b'{"jsonrpc":"2.0","id":0,"error":{"code":-32602,"message":"no"}}'
    )
    assert req.messages()[-1]["error"]["code"] == -32602
    assert h.registry.get(sid.decode()) is None


# -- respawn after a token refresh -------------------------------------------------


def test_respawn_replays_client_state_and_swaps_invisibly() -> None:
    """
    After a refresh: a new child with the new token gets the client's
    initialize, initialized, setLevel and subscribe (broker ids, answers
    swallowed); the call in flight finishes on the old child; new calls go
    to the new one; the old child is then stopped; the session id is kept.
    """
    h = Harness()
    sid, old = _ready(h)
    h.post(rpc(1, "logging/setLevel", {"level": "debug"}), session=sid)
    old.emit(result(1))
    h.post(rpc(2, "resources/subscribe", {"uri": "test://a"}), session=sid)
    old.emit(result(2))
    inflight = h.post(rpc(3, "tools/call", {"name": "slow"}), session=sid)

    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    assert new is not old
    assert new.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    init = json.loads(new.written[0])
    assert init["method"] == "initialize" and init["id"].startswith("fjmcp-respawn-")
    _answer_initialize(new)
    methods = [json.loads(w).get("method") for w in new.written]
    assert methods == [
        "initialize",
        "notifications/initialized",
        "logging/setLevel",
        "resources/subscribe",
    ]
    for w in new.written[2:]:
        new.emit(result(json.loads(w)["id"]))
    session = h.registry.get(sid)
    assert session is not None and session.generation == 2
    # A new call goes to the new child; the one in flight finishes on the old.
    fresh = h.post(rpc(4, "tools/list"), session=sid)
    assert json.loads(new.written[-1])["id"] == 4
    new.emit(result(4, {"tools": []}))
    assert fresh.messages()[-1]["id"] == 4
    assert old.alive
    old.emit(result(3, {"v": "old"}))
    assert inflight.messages()[-1] == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"v": "old"},
    }
    assert not old.alive and old.stop_calls == 1
    assert h.registry.get(sid) is session


def test_respawn_ends_the_session_when_capabilities_change() -> None:
    """A new child that negotiates differently ends the session (404 next)."""
    h = Harness()
    sid, old = _ready(h)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    _answer_initialize(new, {"tools": {}, "prompts": {}})
    assert h.registry.get(sid) is None
    assert not new.alive and not old.alive
    assert h.post(rpc(1, "ping"), session=sid).status == 404


def test_respawn_is_lazy_on_the_next_request() -> None:
    """A session whose child predates the newest token respawns on its next request."""
    h = Harness()
    sid, old = _ready(h)
    h.tokens.rotate("alice")  # refreshed, but token_rotated not called yet
    _ready(h, token=b"Bearer alice-b-token")  # a new session sees generation 2
    spawned = len(h.spawner.children)
    assert h.post(rpc(1, "ping"), session=sid).status == 200
    assert json.loads(old.written[-1])["id"] == 1  # served by the old child meanwhile
    assert len(h.spawner.children) == spawned + 1
    assert h.spawner.last.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    _answer_initialize(h.spawner.last)  # the respawn ends within the test


def test_token_rotation_respawns_every_session_of_that_user_only() -> None:
    """token_rotated starts a new child for each of the user's sessions, no other."""
    h = Harness()
    _ready(h)
    _ready(h, token=b"Bearer alice-b-token")
    _ready(h, token=b"Bearer bob-token")
    h.registry.token_rotated(h.tokens.rotate("alice"))
    fresh = [c.spec.env["FORGEJO_ACCESS_TOKEN"] for c in h.spawner.children[3:]]
    assert fresh == ["forgejo-alice-2", "forgejo-alice-2"]
    for child in h.spawner.children[3:]:
        _answer_initialize(child)  # the respawns end within the test


def test_old_child_exit_during_drain_does_not_end_the_session() -> None:
    """After the swap, the old child's exit fails only its own requests."""
    h = Harness()
    sid, old = _ready(h)
    inflight = h.post(rpc(3, "tools/call", {"name": "slow"}), session=sid)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    _answer_initialize(new)
    old.exit(ChildExit("exited", exit_code=1))
    assert inflight.messages()[-1]["error"]["code"] == -32603
    assert h.registry.get(sid) is not None
    assert h.post(rpc(4, "ping"), session=sid).status == 200


def test_rotation_during_a_respawn_is_applied_after_it() -> None:
    """
    A second token rotation that arrives while the first one's child is
    still being readied is not lost: once the first swap is done, the
    session (even with no request coming) gets a child with the newest token.
    """
    h = Harness()
    sid, old = _ready(h)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    second = h.spawner.last
    h.registry.token_rotated(h.tokens.rotate("alice"))
    assert h.spawner.last is second  # one respawn at a time
    _answer_initialize(second)
    third = h.spawner.last
    assert third is not second
    assert third.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-3"
    _answer_initialize(third)
    session = h.registry.get(sid)
    assert session is not None
    assert (session.generation, session.token_generation) == (3, 3)
    assert not old.alive and not second.alive and third.alive
    assert len(h.spawner.children) == 3


def test_failed_respawn_is_not_retried_in_a_loop() -> None:
    """A new child that dies in the handshake leaves the old one serving; no
    further child is started until a request or a newer token comes."""
    h = Harness()
    sid, old = _ready(h)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    dying = h.spawner.last
    dying.exit(ChildExit("exited", exit_code=3))
    assert len(h.spawner.children) == 2
    session = h.registry.get(sid)
    assert session is not None and session.generation == 1 and old.alive


def test_open_get_stream_keeps_a_session_from_being_reaped() -> None:
    """A session whose standalone GET stream is open is busy, however long
    ago its last POST; once the stream disconnects, the next reap ends it."""
    h = Harness()
    sid, child = _ready(h)
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert get.finished == 0
    h.clock.advance(1000)
    ended: list[int] = []
    h.registry.reap_idle(h.clock.seconds(), 50).addCallback(ended.append)
    assert ended == [0]
    assert h.registry.get(sid) is not None and child.alive
    get.disconnect()
    h.registry.reap_idle(h.clock.seconds(), 50).addCallback(ended.append)
    assert ended == [0, 1]
    assert h.registry.get(sid) is None and not child.alive


def test_no_respawn_once_shutdown_has_begun() -> None:
    """After the shutdown drain has started, a token rotation (a refresh
    landing late) or a lazy respawn starts no new child: the spawner has
    already been told to stop its children and would not wait for one
    spawned afterwards."""
    h = Harness()
    sid, _ = _ready(h)
    h.post(rpc(1, "tools/call", {"name": "slow"}), session=sid)
    h.registry.drain()
    spawned = len(h.spawner.children)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    session = h.registry.get(sid)
    assert session is not None
    h.registry.respawn_if_stale(session)
    assert len(h.spawner.children) == spawned


def test_old_child_is_stopped_after_the_drain_timeout() -> None:
    """
    A request still in flight on the replaced child is waited for only up to
    ``drain_timeout``: then the old child is stopped and that request fails.
    The answers of the replayed handshake never reach the client (its open
    GET stream gets none of them).
    """
    h = Harness()
    sid, old = _ready(h)
    h.post(rpc(1, "logging/setLevel", {"level": "debug"}), session=sid)
    old.emit(result(1))
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    before = len(get.messages())
    inflight = h.post(rpc(2, "tools/call", {"name": "slow"}), session=sid)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    _answer_initialize(new)
    new.emit(result(json.loads(new.written[-1])["id"]))  # setLevel's answer
    session = h.registry.get(sid)
    assert session is not None and session.generation == 2
    assert len(get.messages()) == before  # replayed answers swallowed
    h.clock.advance(h.registry.drain_timeout - 1)
    assert old.alive and inflight.finished == 0
    h.clock.advance(1)
    assert not old.alive and old.stop_calls == 1
    assert "error" in inflight.messages()[-1]
    assert h.registry.get(sid) is session and new.alive


def test_a_get_or_a_lookup_never_starts_a_child() -> None:
    """
    A session whose child predates the user's newest token is respawned by
    the next message the bridge dispatches to it, never by a lookup: a GET
    stream (or its resumption) and a DELETE's lookup spawn no process.
    """
    h = Harness()
    sid, old = _ready(h)
    h.tokens.rotate("alice")  # refreshed, but token_rotated not called yet
    _ready(h, token=b"Bearer alice-b-token")  # the registry sees generation 2
    spawned = len(h.spawner.children)
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert get.finished == 0 and get.status == 200
    h.request(
        b"GET",
        session=sid,
        accept=b"text/event-stream",
        headers={b"last-event-id": b"1-1"},
    )
    session = h.registry.lookup(sid, ALICE)
    assert len(h.spawner.children) == spawned
    assert session.generation == 1 and not session.respawning
    h.post(note("notifications/roots/list_changed"), session=sid)
    assert len(h.spawner.children) == spawned + 1
    assert h.spawner.last.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    assert old.alive  # serving until the new child is ready


def test_owners_are_found_by_key_by_user_and_by_grant() -> None:
    """
    Sessions and an identity's owner share one table: each is found by its
    key, by its user, and by (user, client); ending one removes it from
    every lookup.
    """
    h = Harness()
    a1, _ = _ready(h)
    a2, _ = _ready(h, token=b"Bearer alice-b-token")
    b1, _ = _ready(h, token=b"Bearer bob-token")
    key = IdentityKey.of(ALICE)
    created = Deferred.fromCoroutine(
        h.registry.create(key, ALICE, h.resource.bridge_for)
    )
    owners: list[ChildOwner] = []
    created.addCallback(owners.append)
    [stateless] = owners
    assert h.registry.get(key) is stateless and h.registry.get(a1) is not None

    def ids(found: list[ChildOwner]) -> set[str]:
        return {o.id for o in found}

    assert ids(h.registry.owners_of("alice")) == {a1, a2, stateless.id}
    assert ids(h.registry.owners_of_grant("alice", "client-a")) == {a1, stateless.id}
    assert ids(h.registry.owners_of_grant("alice", "client-b")) == {a2}
    assert ids(h.registry.owners_of("bob")) == {b1}
    assert h.registry.counts().children == 4
    h.registry.end_user_client("alice", "client-a", "grant revoked")
    assert h.registry.get(key) is None and h.registry.get(a1) is None
    assert ids(h.registry.owners_of("alice")) == {a2}
    assert h.registry.owners_of_grant("alice", "client-a") == []


def test_a_live_owner_key_is_not_created_twice() -> None:
    """A second owner under a live key is refused (409) and spawns nothing."""
    h = Harness()
    key = IdentityKey.of(ALICE)
    Deferred.fromCoroutine(h.registry.create(key, ALICE, h.resource.bridge_for))
    spawned = len(h.spawner.children)
    seen: list[object] = []
    Deferred.fromCoroutine(
        h.registry.create(key, ALICE, h.resource.bridge_for)
    ).addBoth(seen.append)
    [failure] = seen
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, OwnerExistsError)
    assert failure.value.status == 409
    assert len(h.spawner.children) == spawned
    assert h.registry.counts().children == spawned


@pytest.mark.parametrize("key", ["a-session-id", IdentityKey("alice", "client-a")])
def test_an_owner_of_another_identity_is_forbidden(key: str | IdentityKey) -> None:
    """Any owner, whatever its key, is looked up only by its own identity."""
    h = Harness()
    Deferred.fromCoroutine(h.registry.create(key, ALICE, h.resource.bridge_for))
    assert h.registry.lookup(key, ALICE).user == "alice"
    with pytest.raises(SessionForbiddenError):
        h.registry.lookup(key, ALICE_OTHER_CLIENT)


def test_a_session_of_another_consent_mode_is_not_found() -> None:
    """
    A session started under full access, presented with a read-only token
    of the same grant (the mode changed meanwhile), is a 404: the client
    initializes again and gets the new mode's policy.
    """
    h = Harness()
    Deferred.fromCoroutine(
        h.registry.create("a-session-id", ALICE, h.resource.bridge_for)
    )
    read_only = evolve(ALICE, consent="read-only")
    with pytest.raises(SessionNotFoundError, match="access granted"):
        h.registry.lookup("a-session-id", read_only)
    assert h.registry.lookup("a-session-id", ALICE).identity.consent == "full"


def test_session_ids_name_their_node() -> None:
    """With a node id, a session id is ``<node>.<secret>``: a balancer routes on it."""
    ids = {new_session_id("node-a") for _ in range(50)}
    assert len(ids) == 50
    for sid in ids:
        node, _, secret = sid.partition(".")
        assert node == "node-a" and len(secret) == 32 and "." not in secret


READ_ONLY_SCOPES = ("read:organization", "read:repository", "read:user")


def _two_grants() -> Harness:
    """Alice with full access through client-a and read-only through client-b."""
    tokens = {
        b"Bearer full": ALICE,
        b"Bearer ro": Identity(
            "alice", "client-b", token_id="t-ro", consent="read-only"
        ),
    }
    return Harness(
        auth=FixedAuthenticator(known=tokens),
        grants=UpstreamGrants((), READ_ONLY_SCOPES),
    )


def test_each_consent_modes_children_hold_their_own_grants_token() -> None:
    """
    Read-only consents with a grant of their own: a read-only session's
    child runs with that grant's Forgejo token, never the full grant's.
    """
    h = _two_grants()
    full_sid, full_child = _ready(h, token=b"Bearer full")
    ro_sid, ro_child = _ready(h, token=b"Bearer ro")
    assert full_child.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-1"
    assert ro_child.spec.env["FORGEJO_ACCESS_TOKEN"] == (
        "forgejo-alice-read_organization-read_repository-read_user-1"
    )
    grants = {o.id: o.grant for o in h.registry.owners_of("alice")}
    assert grants[full_sid] == UpstreamGrant("alice")
    assert grants[ro_sid] == UpstreamGrant("alice", READ_ONLY_SCOPES)
    assert h.registry.live_grants() == set(grants.values())


def test_a_grants_new_token_respawns_only_the_children_holding_it() -> None:
    """The read-only grant refreshed: its session respawns; the full one stays."""
    h = _two_grants()
    full_sid, full_child = _ready(h, token=b"Bearer full")
    ro_sid, ro_child = _ready(h, token=b"Bearer ro")
    spawned = len(h.spawner.children)
    h.registry.token_rotated(h.tokens.rotate("alice", READ_ONLY_SCOPES))
    assert len(h.spawner.children) == spawned + 1
    assert h.spawner.last.spec.env["FORGEJO_ACCESS_TOKEN"].endswith("read_user-2")
    _answer_initialize(h.spawner.last)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    assert len(h.spawner.children) == spawned + 2
    assert h.spawner.last.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"
    _answer_initialize(h.spawner.last)
    owners = {o.id: o for o in h.registry.owners_of("alice")}
    assert owners[ro_sid].token_generation == owners[full_sid].token_generation == 2
    assert not ro_child.alive and not full_child.alive  # both replaced, in turn
