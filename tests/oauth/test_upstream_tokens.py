# -*- test-case-name: tests.oauth.test_upstream_tokens -*-
"""Tests for `fjmcp.oauth.upstream_tokens.UpstreamTokens`."""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.interfaces import UpstreamGrant, UpstreamGrants, UpstreamToken
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.upstream_tokens import NoUpstreamTokenError, UpstreamTokens
from tests.oauth.support import HeldStore, MemoryStore


def _outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    return results[0]


def _run(coro: Any) -> Any:
    return _outcome(Deferred.fromCoroutine(coro))


ALICE = UpstreamGrant("alice")


def test_replace_then_current_from_memory() -> None:
    """replace seals and caches; current answers from memory (fired at once)."""
    store = MemoryStore()
    clock = Clock()
    clock.advance(1000)
    seen: list[UpstreamToken] = []
    tokens = UpstreamTokens(store, KeyRing.generate(), clock, on_stored=seen.append)
    t1 = _run(tokens.replace(ALICE, "forgejo-access-1", "forgejo-refresh-1", 2000.0))
    assert t1.generation == 1 and t1.expires_at == 2000.0
    assert seen == [t1]
    runs = store.runs
    d = tokens.current(ALICE)
    assert d.called and _outcome(d) == t1
    assert store.runs == runs
    assert "forgejo-access-1" not in repr(t1)


def test_current_reads_store_once_after_restart() -> None:
    """A fresh instance (a restart) reads the store once, then serves from memory."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock()).replace(ALICE, "a1", None, None))
    fresh = UpstreamTokens(store, ring, Clock())
    first = _outcome(fresh.current(ALICE))
    assert first.access_token == "a1" and math.isinf(first.expires_at)
    _outcome(fresh.current(ALICE))
    assert fresh.store_reads == 1


def test_concurrent_misses_share_one_read() -> None:
    """Concurrent current() calls for one user share one store read."""
    store = HeldStore()
    ring = KeyRing.generate()
    writer = UpstreamTokens(store, ring, Clock())
    d = Deferred.fromCoroutine(writer.replace(ALICE, "a1", "r1", 50.0))
    store.release()
    _outcome(d)
    reader = UpstreamTokens(store, ring, Clock())
    waits = [reader.current(ALICE) for _ in range(5)]
    assert len(store.held) == 1
    store.release()
    assert {_outcome(w).access_token for w in waits} == {"a1"}


def test_unknown_user_fails() -> None:
    """A user without a stored token fails with NoUpstreamTokenError."""
    tokens = UpstreamTokens(MemoryStore(), KeyRing.generate(), Clock())
    result = _outcome(tokens.current(UpstreamGrant("nobody")))
    assert isinstance(result, Failure)
    assert isinstance(result.value, NoUpstreamTokenError)


def test_generation_and_compare_and_swap() -> None:
    """Generations grow; a replace expecting a stale generation writes nothing."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(tokens.replace(ALICE, "a1", "r1", 10.0))
    refresh, generation = _run(tokens.refresh_token(ALICE))
    assert (refresh, generation) == ("r1", 1)
    t2 = _run(tokens.replace(ALICE, "a2", "r2", 20.0, expected_generation=1))
    assert t2.generation == 2
    assert _run(tokens.replace(ALICE, "a3", "r3", 30.0, expected_generation=1)) is None
    assert _outcome(tokens.current(ALICE)).access_token == "a2"


def test_raw_rows_hold_no_forgejo_token() -> None:
    """The store's rows never contain a Forgejo access or refresh token."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(tokens.replace(ALICE, "FORGEJO-ACCESS-SECRET", "FORGEJO-REFRESH-SECRET", 9.0))
    dump = store.all_bytes()
    assert b"FORGEJO-ACCESS-SECRET" not in dump
    assert b"FORGEJO-REFRESH-SECRET" not in dump


def test_delete_and_forget() -> None:
    """delete removes the row and the cache entry."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(tokens.replace(ALICE, "a1", None, None))
    assert _run(tokens.delete(ALICE))
    assert isinstance(_outcome(tokens.current(ALICE)), Failure)


def test_failing_listener_does_not_break_replace() -> None:
    """An on_stored that raises is logged; the replace still succeeds."""

    def boom(token: UpstreamToken) -> None:
        raise RuntimeError("listener failed")

    tokens = UpstreamTokens(MemoryStore(), KeyRing.generate(), Clock(), on_stored=boom)
    assert _run(tokens.replace(ALICE, "a1", None, None)).generation == 1


SCOPES = ("write:repository", "read:user")
FULL = UpstreamGrants(SCOPES)
ALICE_FULL = FULL.of("alice")


def test_tokens_carry_their_grant() -> None:
    """Every token handed out names the grant it belongs to: user + scope set."""
    store = MemoryStore()
    ring = KeyRing.generate()
    tokens = UpstreamTokens(store, ring, Clock(), FULL)
    stored = _run(tokens.replace(ALICE_FULL, "a1", "r1", 2000.0))
    assert stored.grant == UpstreamGrant("alice", ("read:user", "write:repository"))
    assert tokens.grant("alice") == stored.grant
    fresh = UpstreamTokens(store, ring, Clock(), FULL)
    assert _outcome(fresh.current(ALICE_FULL)).grant == stored.grant


def test_grants_with_other_scopes_do_not_share_a_token() -> None:
    """A grant of other scopes does not see another grant's token."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock(), FULL).replace(ALICE_FULL, "a", "r", 9.0))
    other = UpstreamTokens(store, ring, Clock(), UpstreamGrants(("read:user",)))
    failure = _outcome(other.current(other.grant("alice")))
    assert isinstance(failure, Failure)
    assert failure.check(NoUpstreamTokenError)


def test_a_token_stored_before_grants_is_found_by_the_full_grant() -> None:
    """A token written without scopes (schema 1) serves the full-access grant."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock()).replace(ALICE, "old", "r", 9.0))
    tokens = UpstreamTokens(store, ring, Clock(), FULL)
    found = _outcome(tokens.current(ALICE_FULL))
    assert found.access_token == "old" and found.generation == 1
    assert found.grant.scopes == ("read:user", "write:repository")
    assert _run(tokens.refresh_token(ALICE_FULL)) == ("r", 1)


TWO = UpstreamGrants((), ("read:repository", "read:user", "read:organization"))


def test_a_users_two_grants_keep_their_own_tokens() -> None:
    """
    Full access and read-only each have their token, generation and cache;
    replacing one leaves the other, and forgetting the user drops both.
    """
    store = MemoryStore()
    ring = KeyRing.generate()
    seen: list[UpstreamToken] = []
    tokens = UpstreamTokens(store, ring, Clock(), TWO, on_stored=seen.append)
    full, narrow = tokens.grant("alice"), tokens.grant("alice", "read-only")
    assert full != narrow and TWO.is_read_only(narrow)
    _run(tokens.replace(full, "full-1", "full-r", 100.0))
    _run(tokens.replace(narrow, "ro-1", "ro-r", 200.0))
    _run(tokens.replace(narrow, "ro-2", "ro-r2", 300.0))
    assert [t.grant for t in seen] == [full, narrow, narrow]
    assert _outcome(tokens.current(full)).access_token == "full-1"
    assert _outcome(tokens.current(full)).generation == 1
    assert _outcome(tokens.current(narrow)).access_token == "ro-2"
    assert _run(tokens.refresh_token(narrow)) == ("ro-r2", 2)
    tokens.forget("alice")
    reads = tokens.store_reads
    assert _outcome(tokens.current(narrow)).generation == 2
    assert _outcome(tokens.current(full)).generation == 1
    assert tokens.store_reads == reads + 2


def test_the_read_only_grant_never_adopts_a_token_of_schema_1() -> None:
    """
    A token stored before grants recorded their scopes was made with the
    full scopes: the read-only grant must not take it for its own.
    """
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock()).replace(ALICE, "old-full", "r", 9.0))
    tokens = UpstreamTokens(store, ring, Clock(), UpstreamGrants(SCOPES, TWO.read_only))
    failure = _outcome(tokens.current(tokens.grant("alice", "read-only")))
    assert isinstance(failure, Failure) and failure.check(NoUpstreamTokenError)
    assert _outcome(tokens.current(tokens.grant("alice"))).access_token == "old-full"
