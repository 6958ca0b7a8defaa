# -*- test-case-name: tests.oauth.test_consent_modes -*-
"""Tests of changing a grant's consent mode: stored, tokens revoked, sessions told."""

from __future__ import annotations

from typing import Any

from attrs import define, field
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.oauth.consent_modes import ConsentModeForbidden, ConsentModes
from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.policy.rules import Mode, PolicyConfig, parse_policy
from fjmcp.store import grants
from tests.oauth.support import MemoryStore, settle


@define
class _Fanout:
    told: list[tuple[Any, tuple[str, ...], str]] = field(factory=list)

    def revoked(self, grant: Any, hashes: tuple[str, ...], reason: str) -> None:
        self.told.append((grant, hashes, reason))


def _granted(store: MemoryStore) -> str:
    uid = store.sync.run(grants.upsert_user_txn, "alice", 7, 0.0)
    store.sync.run(grants.record_consent_txn, uid, "admin-cli", 0.0, "full")
    token = new_secret()
    store.sync.run(
        grants.issue_admin_tokens_txn,
        uid,
        "admin-cli",
        (hash_secret(token),),
        audience="https://mcp.example.org/mcp",
        scope="mcp",
        now=0.0,
        expires_at=3600.0,
        family_ids=(new_secret(),),
    )
    return hash_secret(token)


def _modes(store: MemoryStore, fanout: _Fanout, policy: PolicyConfig) -> ConsentModes:
    return ConsentModes(store, Clock(), fanout, policy)


def test_changing_the_mode_revokes_the_grants_tokens_and_ends_its_sessions() -> None:
    """The new mode is stored; the old tokens are revoked; the fan-out is told."""
    store, fanout = MemoryStore(), _Fanout()
    digest = _granted(store)
    changed = settle(
        _modes(store, fanout, PolicyConfig()).change(
            "alice", "admin-cli", Mode.READ_ONLY
        )
    )
    assert changed is True
    assert store.sync.run(grants.consent_mode_txn, "alice", "admin-cli") == "read-only"
    ((grant, hashes, reason),) = fanout.told
    assert (grant.user, grant.client_id) == ("alice", "admin-cli")
    assert hashes == (digest,)
    assert "read-only" in reason
    again = store.sync.run(
        grants.change_consent_mode_txn, "alice", "admin-cli", "read-only", 1.0
    )
    assert again[1] == ()  # no live token was left


def test_no_consent_changes_nothing() -> None:
    """A user who never approved the client has no mode to change."""
    store, fanout = MemoryStore(), _Fanout()
    modes = _modes(store, fanout, PolicyConfig())
    assert settle(modes.change("bob", "admin-cli", Mode.FULL)) is False
    assert fanout.told == []


def test_full_access_the_operator_forbids_is_refused() -> None:
    """A client denied full access cannot be switched to it."""
    store, fanout = MemoryStore(), _Fanout()
    _granted(store)
    policy = parse_policy({"full_access_forbidden": ["admin-cli"]})
    outcome = settle(
        _modes(store, fanout, policy).change("alice", "admin-cli", Mode.FULL)
    )
    assert isinstance(outcome, Failure) and outcome.check(ConsentModeForbidden)
    assert fanout.told == []
