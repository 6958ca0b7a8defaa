# -*- test-case-name: tests.store.test_cluster -*-
"""
Races between nodes on one PostgreSQL store, run for real: two
connections, two threads, released together. Whatever the interleaving,
one authorization code gives one pair and one refresh token is rotated
once; a pending authorization made on one node is taken on the other.
(SQLite is one node by design: its ``flock`` keeps a second daemon out.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fjmcp.oauth.tokens import hash_secret
from fjmcp.store import grants
from fjmcp.store.grants import GrantOutcome
from fjmcp.store.postgres import POSTGRES
from fjmcp.store.store import SyncStore
from tests.store.support import TwoNodes, open_two_nodes
from tests.store.test_grants import _client, _code, _live, _mint, _ok, _pending

ROUNDS = 5


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[TwoNodes]:
    """Two nodes on one PostgreSQL scratch schema (skips without a server)."""
    pair = open_two_nodes(POSTGRES, tmp_path)
    yield pair
    pair.close()


def _at_once(
    nodes: TwoNodes, work: Callable[[SyncStore], GrantOutcome]
) -> list[GrantOutcome]:
    """Run ``work`` on both nodes in two threads released by one barrier."""
    start = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(index: int, store: SyncStore) -> None:
        start.wait(timeout=30)
        try:
            results[index] = work(store)
        except BaseException as e:  # reported by the assertion below
            results[index] = e

    threads = [
        threading.Thread(target=run, args=(i, s))
        for i, s in enumerate((nodes.a, nodes.b))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(r, GrantOutcome) for r in results), results
    return results


def _user(store: SyncStore) -> int:
    uid: int = store.run(grants.upsert_user_txn, "alice", 1, 0.0)
    return uid


def test_one_code_redeemed_on_two_nodes_at_once_gives_one_pair(
    nodes: TwoNodes,
) -> None:
    """Of two nodes redeeming one code at once exactly one mints a pair."""
    uid = _user(nodes.a)
    for _ in range(ROUNDS):
        code = _code(nodes.a, uid, client_id="admin-cli")

        def redeem(store: SyncStore, code: str = code) -> GrantOutcome:
            outcome: GrantOutcome = store.run(
                grants.redeem_code_txn, hash_secret(code), _ok, _mint()[0]
            )
            return outcome

        outcomes = _at_once(nodes, redeem)
        assert sorted(o.status for o in outcomes) == ["ok", "replayed"]


def test_one_refresh_token_rotated_on_two_nodes_at_once_once(
    nodes: TwoNodes,
) -> None:
    """
    Of two nodes rotating one refresh token at once exactly one mints the
    next pair; the other is told the token was reused.
    """
    uid = _user(nodes.a)
    for _ in range(ROUNDS):
        code = _code(nodes.a, uid, client_id="admin-cli")
        mint, _access, refresh = _mint()
        first = nodes.a.run(grants.redeem_code_txn, hash_secret(code), _ok, mint)
        assert first.status == "ok" and refresh is not None

        def rotate(store: SyncStore, refresh: str = refresh) -> GrantOutcome:
            outcome: GrantOutcome = store.run(
                grants.refresh_txn, hash_secret(refresh), "admin-cli", _mint()[0]
            )
            return outcome

        outcomes = _at_once(nodes, rotate)
        assert sorted(o.status for o in outcomes) == ["ok", "reused"]
        assert first.grant is not None
        # Truly at once the loser only hears "reused" and the family lives on
        # (4 rows: the first pair and the new one); a loser that came after
        # the commit saw plain reuse and revoked the family, as it must.
        assert _live(nodes.b, first.grant.family_id) in (0, 4)


def test_a_pending_authorization_made_on_one_node_is_taken_on_the_other(
    nodes: TwoNodes,
) -> None:
    """The browser may come back to another node: the callback finds the login."""
    _client(nodes.a)
    nodes.a.run(grants.insert_pending_txn, _pending("s1"))
    taken = nodes.b.run(grants.take_pending_txn, "s1", 200.0)
    assert taken is not None and taken.client_id == "c1"
    assert nodes.a.run(grants.take_pending_txn, "s1", 200.0) is None
