# -*- test-case-name: tests.oauth.test_upstream_tokens -*-
"""Tests for `fjmcp.oauth.upstream_tokens.UpstreamTokens`."""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.interfaces import UpstreamGrant, UpstreamToken
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


def test_replace_then_current_from_memory() -> None:
    """replace seals and caches; current answers from memory (fired at once)."""
    store = MemoryStore()
    clock = Clock()
    clock.advance(1000)
    seen: list[UpstreamToken] = []
    tokens = UpstreamTokens(store, KeyRing.generate(), clock, on_stored=seen.append)
    t1 = _run(tokens.replace("alice", "forgejo-access-1", "forgejo-refresh-1", 2000.0))
    assert t1.generation == 1 and t1.expires_at == 2000.0
    assert seen == [t1]
    runs = store.runs
    d = tokens.current("alice")
    assert d.called and _outcome(d) == t1
    assert store.runs == runs
    assert "forgejo-access-1" not in repr(t1)


def test_current_reads_store_once_after_restart() -> None:
    """A fresh instance (a restart) reads the store once, then serves from memory."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock()).replace("alice", "a1", None, None))
    fresh = UpstreamTokens(store, ring, Clock())
    first = _outcome(fresh.current("alice"))
    assert first.access_token == "a1" and math.isinf(first.expires_at)
    _outcome(fresh.current("alice"))
    assert fresh.store_reads == 1


def test_concurrent_misses_share_one_read() -> None:
    """Concurrent current() calls for one user share one store read."""
    store = HeldStore()
    ring = KeyRing.generate()
    writer = UpstreamTokens(store, ring, Clock())
    d = Deferred.fromCoroutine(writer.replace("alice", "a1", "r1", 50.0))
    store.release()
    _outcome(d)
    reader = UpstreamTokens(store, ring, Clock())
    waits = [reader.current("alice") for _ in range(5)]
    assert len(store.held) == 1
    store.release()
    assert {_outcome(w).access_token for w in waits} == {"a1"}


def test_unknown_user_fails() -> None:
    """A user without a stored token fails with NoUpstreamTokenError."""
    tokens = UpstreamTokens(MemoryStore(), KeyRing.generate(), Clock())
    result = _outcome(tokens.current("nobody"))
    assert isinstance(result, Failure)
    assert isinstance(result.value, NoUpstreamTokenError)


def test_generation_and_compare_and_swap() -> None:
    """Generations grow; a replace expecting a stale generation writes nothing."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(tokens.replace("alice", "a1", "r1", 10.0))
    refresh, generation = _run(tokens.refresh_token("alice"))
    assert (refresh, generation) == ("r1", 1)
    t2 = _run(tokens.replace("alice", "a2", "r2", 20.0, expected_generation=1))
    assert t2.generation == 2
    assert (
        _run(tokens.replace("alice", "a3", "r3", 30.0, expected_generation=1)) is None
    )
    assert _outcome(tokens.current("alice")).access_token == "a2"


def test_raw_rows_hold_no_forgejo_token() -> None:
    """The store's rows never contain a Forgejo access or refresh token."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(
        tokens.replace("alice", "FORGEJO-ACCESS-SECRET", "FORGEJO-REFRESH-SECRET", 9.0)
    )
    dump = store.all_bytes()
    assert b"FORGEJO-ACCESS-SECRET" not in dump
    assert b"FORGEJO-REFRESH-SECRET" not in dump


def test_delete_and_forget() -> None:
    """delete removes the row and the cache entry."""
    store = MemoryStore()
    tokens = UpstreamTokens(store, KeyRing.generate(), Clock())
    _run(tokens.replace("alice", "a1", None, None))
    assert _run(tokens.delete("alice"))
    assert isinstance(_outcome(tokens.current("alice")), Failure)


def test_failing_listener_does_not_break_replace() -> None:
    """An on_stored that raises is logged; the replace still succeeds."""

    def boom(token: UpstreamToken) -> None:
        raise RuntimeError("listener failed")

    tokens = UpstreamTokens(MemoryStore(), KeyRing.generate(), Clock(), on_stored=boom)
    assert _run(tokens.replace("alice", "a1", None, None)).generation == 1


SCOPES = ("write:repository", "read:user")


def test_tokens_carry_the_configured_grant() -> None:
    """Every token handed out names the grant it belongs to: user + scope set."""
    store = MemoryStore()
    ring = KeyRing.generate()
    tokens = UpstreamTokens(store, ring, Clock(), SCOPES)
    stored = _run(tokens.replace("alice", "a1", "r1", 2000.0))
    assert stored.grant == UpstreamGrant("alice", ("read:user", "write:repository"))
    fresh = UpstreamTokens(store, ring, Clock(), SCOPES)
    assert _outcome(fresh.current("alice")).grant == stored.grant


def test_grants_with_other_scopes_do_not_share_a_token() -> None:
    """A grant of other scopes does not see the configured grant's token."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock(), SCOPES).replace("alice", "a", "r", 9.0))
    other = UpstreamTokens(store, ring, Clock(), ("read:user",))
    failure = _outcome(other.current("alice"))
    assert isinstance(failure, Failure)
    assert failure.check(NoUpstreamTokenError)


def test_a_token_stored_before_grants_is_found_by_the_configured_grant() -> None:
    """A token written without scopes (schema 1) serves the configured grant."""
    store = MemoryStore()
    ring = KeyRing.generate()
    _run(UpstreamTokens(store, ring, Clock()).replace("alice", "old", "r", 9.0))
    tokens = UpstreamTokens(store, ring, Clock(), SCOPES)
    found = _outcome(tokens.current("alice"))
    assert found.access_token == "old" and found.generation == 1
    assert found.grant.scopes == ("read:user", "write:repository")
    assert _run(tokens.refresh_token("alice")) == ("r", 1)
