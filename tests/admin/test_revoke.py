# -*- test-case-name: tests.admin.test_revoke -*-
"""
Tests for ``fjmcp admin revoke-user`` (`fjmcp.admin.revoke`) and the store
side of revoking a user (`fjmcp.maintenance.revocation.revoke_user_txn`):
every broker token of the user only is revoked, their Forgejo token deleted,
unredeemed codes dropped; through the daemon when it runs, on the store
otherwise; the daemon's handler ends the sessions and clears the caches.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from fjmcp.admin.client import AdminClient
from fjmcp.admin.commands import AdminContext, all_commands
from fjmcp.admin.revoke import OPERATOR_REASON, revoke_user_handler
from fjmcp.admin.server import AdminHandlers
from fjmcp.maintenance.revocation import (
    UserRevoker,
    revoke_user_txn,
    store_revocation,
)
from fjmcp.store.grants import (
    CodeGrant,
    Mint,
    insert_code_txn,
    issue_admin_tokens_txn,
    lookup_access_txn,
    redeem_code_txn,
    refresh_txn,
    upsert_user_txn,
)
from fjmcp.store.store import SyncStore, open_store_sync, open_store_sync_at
from fjmcp.store.target import StoreTarget
from fjmcp.store.upstream_tokens import get_upstream_txn, put_upstream_txn
from tests.maintenance.support import DeferringStore, FakeSessions
from tests.standin.support import result_of
from tests.support import broker_config

T = TypeVar("T")
NOW = 1_000_000.0
AUDIENCE = "http://127.0.0.1:8080/mcp"


def _seal(plain: bytes, aad: bytes) -> tuple[str, bytes]:
    """A stand-in sealer: the store only keeps what it is given."""
    return ("k1", b"sealed:" + aad)


@define
class Seeded:
    """Digests of what `seed` stored for one user."""

    access: list[str] = field(factory=list)
    refresh: list[str] = field(factory=list)
    open_code: str = ""


def seed(store: SyncStore, login: str) -> Seeded:
    """A user with an admin token, a redeemed code (access + refresh), an
    unredeemed code, and a stored Forgejo token."""
    out = Seeded()
    uid = store.run(upsert_user_txn, login, None, NOW)
    store.run(
        issue_admin_tokens_txn,
        uid,
        "admin-cli",
        (f"{login}-admin",),
        audience=AUDIENCE,
        scope="mcp",
        now=NOW,
        expires_at=NOW + 3600,
        family_ids=(f"{login}-fam-admin",),
    )
    out.access.append(f"{login}-admin")
    for name in ("used", "open"):
        store.run(
            insert_code_txn,
            CodeGrant(
                f"{login}-code-{name}",
                "admin-cli",
                uid,
                "http://127.0.0.1/cb",
                "x" * 43,
                "mcp",
                AUDIENCE,
                f"{login}-fam-{name}",
                NOW,
                NOW + 600,
            ),
        )
    outcome = store.run(
        redeem_code_txn,
        f"{login}-code-used",
        lambda code: None,
        Mint(f"{login}-at", NOW + 3600, f"{login}-rt", NOW + 86400, NOW),
    )
    assert outcome.status == "ok"
    out.access.append(f"{login}-at")
    out.refresh.append(f"{login}-rt")
    out.open_code = f"{login}-code-open"
    store.run(put_upstream_txn, uid, _seal, "fj-access", "fj-refresh", NOW + 3600, NOW)
    return out


@pytest.fixture
def memory_store() -> Iterator[SyncStore]:
    store = open_store_sync(":memory:", now=NOW)
    yield store
    store.close()


# --- the store transaction ---------------------------------------------------------


def test_revokes_every_token_of_the_user_and_only_theirs(
    memory_store: SyncStore,
) -> None:
    """Every access and refresh token of the user, of every client, is marked
    revoked with the reason; their Forgejo token is deleted; another user's
    tokens and Forgejo token are untouched."""
    alice = seed(memory_store, "alice")
    bob = seed(memory_store, "bob")
    changed = memory_store.run(revoke_user_txn, "alice", NOW + 5, OPERATOR_REASON)
    assert changed.known and changed.upstream_deleted
    assert sorted(changed.token_hashes) == sorted(alice.access + alice.refresh)
    for digest in alice.access:
        record = memory_store.run(lookup_access_txn, digest)
        assert record is not None and record.revoked
    for digest in bob.access:
        record = memory_store.run(lookup_access_txn, digest)
        assert record is not None and not record.revoked
    assert memory_store.run(get_upstream_txn, "alice") is None
    assert memory_store.run(get_upstream_txn, "bob") is not None
    reasons = {
        row[0]
        for row in memory_store.execute(
            "SELECT revoked_reason FROM tokens WHERE token_hash LIKE 'alice%'"
        )
    }
    assert reasons == {OPERATOR_REASON}


def test_revoked_refresh_token_and_open_code_are_dead(memory_store: SyncStore) -> None:
    """After the revocation the user's refresh token cannot be rotated and the
    code not yet redeemed cannot be redeemed: no fresh token can appear."""
    alice = seed(memory_store, "alice")
    memory_store.run(revoke_user_txn, "alice", NOW + 5, OPERATOR_REASON)
    mint = Mint("new-at", NOW + 3600, "new-rt", NOW + 86400, NOW + 6)
    rotated = memory_store.run(refresh_txn, alice.refresh[0], "admin-cli", mint)
    assert rotated.status == "revoked"
    redeemed = memory_store.run(redeem_code_txn, alice.open_code, lambda c: None, mint)
    assert redeemed.status == "unknown"
    assert memory_store.run(lookup_access_txn, "new-at") is None


def test_revoking_twice_and_unknown_users(memory_store: SyncStore) -> None:
    """A second revocation changes nothing (the first reason stays); an
    unknown login is reported as unknown."""
    seed(memory_store, "alice")
    memory_store.run(revoke_user_txn, "alice", NOW + 5, OPERATOR_REASON)
    again = memory_store.run(revoke_user_txn, "alice", NOW + 9, "other")
    assert again.known and again.token_hashes == () and not again.upstream_deleted
    reasons = {
        row[0] for row in memory_store.execute("SELECT revoked_reason FROM tokens")
    }
    assert reasons == {OPERATOR_REASON}
    unknown = memory_store.run(revoke_user_txn, "carol", NOW, OPERATOR_REASON)
    assert not unknown.known


# --- the daemon's handler ------------------------------------------------------------


def _daemon(
    store: SyncStore, sessions: FakeSessions, forgotten: list[str]
) -> AdminHandlers:
    revoker = UserRevoker(
        sessions,
        store_revocation(DeferringStore(store), Clock()),
        forget=[forgotten.append],
    )
    return AdminHandlers({"revoke-user": revoke_user_handler(revoker)})


def test_daemon_handler_revokes_store_caches_and_sessions(
    memory_store: SyncStore,
) -> None:
    """The daemon's revoke-user revokes in the store, makes the caches forget
    the user and ends every session of theirs; another user's stay."""
    alice = seed(memory_store, "alice")
    seed(memory_store, "bob")
    sessions = FakeSessions(sessions={"alice": ["s1", "s2"], "bob": ["s3"]})
    forgotten: list[str] = []
    handlers = _daemon(memory_store, sessions, forgotten)
    answer = result_of(
        Deferred.fromCoroutine(
            handlers.dispatch({"cmd": "revoke-user", "args": {"user": "alice"}})
        )
    )
    assert answer == {
        "ok": True,
        "result": {
            "user": "alice",
            "known": True,
            "broker_tokens_revoked": len(alice.access) + len(alice.refresh),
            "forgejo_token_deleted": True,
            "store_ok": True,
            "daemon": True,
        },
    }
    assert sessions.ended == [("alice", OPERATOR_REASON)]
    assert sessions.live_users() == frozenset({"bob"})
    assert forgotten == ["alice"]


@pytest.mark.parametrize("args", [{}, {"user": ""}, {"user": 7}, {"user": "x" * 300}])
def test_daemon_handler_refuses_bad_arguments(
    memory_store: SyncStore, args: dict[str, Any]
) -> None:
    """A request without a sensible login is refused and ends nobody."""
    sessions = FakeSessions(sessions={"alice": ["s1"]})
    handlers = _daemon(memory_store, sessions, [])
    answer = result_of(
        Deferred.fromCoroutine(handlers.dispatch({"cmd": "revoke-user", "args": args}))
    )
    assert answer["ok"] is False and "revoke-user needs" in answer["error"]
    assert sessions.ended == []


def test_store_failure_still_ends_sessions() -> None:
    """When the store cannot be changed, the caches and sessions are cleared
    anyway and the result says the store was not changed."""

    async def broken(login: str, reason: str) -> Any:
        raise OSError("disk full")

    sessions = FakeSessions(sessions={"alice": ["s1"]})
    forgotten: list[str] = []
    revoker = UserRevoker(sessions, broken, forget=[forgotten.append])
    result = result_of(
        Deferred.fromCoroutine(revoker.revoke_user("alice", OPERATOR_REASON))
    )
    assert not result.store_ok
    assert sessions.ended == [("alice", OPERATOR_REASON)]
    assert forgotten == ["alice"]


# --- the command ---------------------------------------------------------------------


def _run(ctx: AdminContext, login: str) -> int:
    command = all_commands()["revoke-user"]
    args = command_args(login)
    status: list[int] = []

    async def go() -> None:
        try:
            result = command.run(ctx, args)
            assert not isinstance(result, int)
            status.append(await result)
        finally:
            await ctx.close()

    result_of(Deferred.fromCoroutine(go()))
    return status[0]


def command_args(login: str) -> Any:
    import argparse

    return argparse.Namespace(login=login)


def test_command_is_registered() -> None:
    """revoke-user is among the admin commands and takes a login."""
    assert "revoke-user" in all_commands()


def test_command_without_daemon_changes_the_store(tmp_path: Path) -> None:
    """With no daemon the command revokes on the store itself: the user's
    tokens read as revoked (a daemon started later refuses them) and their
    Forgejo token is gone; the output says no session was live."""
    config = broker_config(tmp_path)
    with open_store_sync(config.store_path, now=NOW) as sync:
        alice = seed(sync, "alice")
    opened: list[DeferringStore] = []

    def opener(reactor: Any, target: StoreTarget) -> DeferringStore:
        store = DeferringStore(open_store_sync_at(target, now=NOW))
        opened.append(store)
        return store

    out = io.StringIO()
    clock = Clock()
    clock.advance(NOW + 60)
    ctx = AdminContext(
        config=config,
        client=AdminClient(tmp_path / "no-daemon.sock"),
        out=out,
        reactor=clock,
        store_opener=opener,
    )
    assert _run(ctx, "alice") == 0
    assert "revoked alice: 3 broker token(s), Forgejo token deleted" in out.getvalue()
    assert "daemon is not running" in out.getvalue()
    assert opened and opened[0].closed
    with open_store_sync(config.store_path) as sync:
        for digest in alice.access:
            record = sync.run(lookup_access_txn, digest)
            assert record is not None and record.revoked
        assert sync.run(get_upstream_txn, "alice") is None


def test_command_unknown_user_exits_1(tmp_path: Path) -> None:
    """Revoking a login the store does not know says so and exits 1."""
    config = broker_config(tmp_path)
    out = io.StringIO()
    ctx = AdminContext(
        config=config,
        client=AdminClient(tmp_path / "no-daemon.sock"),
        out=out,
        reactor=Clock(),
        store_opener=lambda reactor, target: DeferringStore(
            open_store_sync_at(target, now=NOW)
        ),
    )
    assert _run(ctx, "nobody") == 1
    assert "knows no user 'nobody'" in out.getvalue()


@define
class FakeDaemon:
    """An admin client whose daemon answers revoke-user."""

    calls: list[tuple[str, Any]] = field(factory=list)

    def call(self, cmd: str, args: Any = None) -> Any:
        """Record the request and answer as the daemon would."""
        self.calls.append((cmd, args))
        return {
            "user": args["user"],
            "known": True,
            "broker_tokens_revoked": 4,
            "forgejo_token_deleted": True,
            "store_ok": True,
            "daemon": True,
        }


def test_command_goes_through_a_running_daemon(tmp_path: Path) -> None:
    """With a daemon running the command asks it (one revoke-user request) and
    never opens the store; --json prints the daemon's result."""

    def no_store(reactor: Any, target: StoreTarget) -> Any:
        raise AssertionError("the store must not be opened while the daemon runs")

    daemon = FakeDaemon()
    out = io.StringIO()
    ctx = AdminContext(
        config=broker_config(tmp_path),
        client=daemon,  # type: ignore[arg-type]
        out=out,
        reactor=Clock(),
        json_output=True,
        store_opener=no_store,
    )
    assert _run(ctx, "alice") == 0
    assert daemon.calls == [("revoke-user", {"user": "alice"})]
    assert '"daemon": true' in out.getvalue()
    text = io.StringIO()
    ctx2 = AdminContext(
        config=broker_config(tmp_path),
        client=daemon,  # type: ignore[arg-type]
        out=text,
        reactor=Clock(),
        store_opener=no_store,
    )
    assert _run(ctx2, "alice") == 0
    assert "the running daemon ended their sessions" in text.getvalue()
