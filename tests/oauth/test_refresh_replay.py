# -*- test-case-name: tests.oauth.test_refresh_replay -*-
"""
The refresh reuse grace: a retried or concurrent refresh within
``refresh_reuse_grace`` gets the very same answer (from the sealed copy in
the store, so another process answers the same); outside it, or once the
answer's own refresh token is spent, reuse revokes the family (RFC 9700).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.refresh_replay import RefreshAnswers
from fjmcp.oauth.server import build_authorization_server
from tests.oauth.support import HeldStore, settle
from tests.web.oauth_harness import Broker


def _refresh(broker: Broker, client: dict[str, Any], token: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return broker.token(form, client)


def test_retry_within_grace_gets_the_same_answer() -> None:
    """A client that lost the answer retries and gets it again, byte for byte."""
    broker = Broker()
    client = broker.register()
    first = broker.tokens_for(client)
    answer = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    broker.clock.advance(29)
    again = _refresh(broker, client, first["refresh_token"])
    assert again.code == 200 and broker.json_of(again) == answer
    assert broker.bearer_ok(answer["access_token"])
    nxt = _refresh(broker, client, answer["refresh_token"])
    assert nxt.code == 200
    assert not broker.sessions.ended


def test_reuse_after_grace_revokes_the_family() -> None:
    """Outside the grace, reuse is theft (RFC 9700): the whole family ends."""
    broker = Broker()
    client = broker.register()
    first = broker.tokens_for(client)
    answer = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    broker.clock.advance(31)
    late = _refresh(broker, client, first["refresh_token"])
    assert broker.json_of(late)["error"] == "invalid_grant"
    assert not broker.bearer_ok(answer["access_token"])
    assert broker.sessions.ended[-1][2] == "refresh token reused"


def test_retry_after_the_new_token_was_used_is_reuse() -> None:
    """Once the answer's refresh token is spent, the old one is reuse even in grace."""
    broker = Broker()
    client = broker.register()
    first = broker.tokens_for(client)
    second = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    third = broker.json_of(_refresh(broker, client, second["refresh_token"]))
    stale = _refresh(broker, client, first["refresh_token"])
    assert broker.json_of(stale)["error"] == "invalid_grant"
    assert not broker.bearer_ok(third["access_token"])


def test_zero_grace_disables_the_replay() -> None:
    """refresh_reuse_grace = 0: any reuse revokes, nothing is kept."""
    broker = Broker(refresh_reuse_grace=0.0)
    client = broker.register()
    first = broker.tokens_for(client)
    answer = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    reuse = _refresh(broker, client, first["refresh_token"])
    assert broker.json_of(reuse)["error"] == "invalid_grant"
    assert not broker.bearer_ok(answer["access_token"])
    rows = broker.store.conn.execute("SELECT count(*) FROM refresh_replays")
    assert rows.fetchone()[0] == 0


def test_concurrent_refreshes_get_the_identical_pair() -> None:
    """
    Two refreshes of one token in flight at once, within the grace: both get
    the identical pair, which stays live (never two live families).
    """
    store = HeldStore()
    store.holding = False
    broker = Broker(store=store)
    client = broker.register()
    tokens = broker.tokens_for(client)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client["client_id"],
    }
    store.holding = True
    results: list[Any] = []
    for _ in range(2):
        Deferred.fromCoroutine(broker.server.tokens.token(form, None)).addBoth(
            results.append
        )
    store.release()
    store.holding = False
    assert len(results) == 2 and results[0] == results[1]
    assert isinstance(results[0], dict)
    assert broker.bearer_ok(results[0]["access_token"])
    live = broker.store.conn.execute(
        "SELECT count(*) FROM tokens WHERE kind = 'refresh' AND rotated_at IS NULL "
        "AND revoked_at IS NULL"
    )
    assert live.fetchone()[0] == 1


def test_another_process_answers_the_same() -> None:
    """
    The kept answer lives sealed in the store: a second server over the same
    store and keys (a restart, another node) answers a retry the same way.
    """
    broker = Broker()
    client = broker.register()
    first = broker.tokens_for(client)
    answer = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    other = build_authorization_server(
        broker.settings,
        broker.store,
        broker.clock,
        broker.keys,
        broker.forgejo,
        broker.upstream,
        broker.bearer,
        broker.sessions,
        memberships=broker.memberships.__setitem__,
    )
    form = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": client["client_id"],
    }
    assert settle(other.tokens.token(form, None)) == answer


def test_kept_answers_are_sealed() -> None:
    """No token of a kept answer is found in the clear in any stored row."""
    broker = Broker()
    client = broker.register()
    first = broker.tokens_for(client)
    answer = broker.json_of(_refresh(broker, client, first["refresh_token"]))
    dump = broker.store.all_bytes()
    assert answer["access_token"].encode() not in dump
    assert answer["refresh_token"].encode() not in dump


def test_answers_open_only_with_their_key_and_token() -> None:
    """A kept answer opens for its own spent token only, and not with other keys."""
    answers = RefreshAnswers(KeyRing.generate(), 30.0)
    kept = answers.seal("a" * 64, {"access_token": "x"}, 100.0)
    assert kept is not None and kept.expires_at == 130.0
    assert answers.open("a" * 64, kept) == {"access_token": "x"}
    assert answers.open("b" * 64, kept) is None
    assert RefreshAnswers(KeyRing.generate(), 30.0).open("a" * 64, kept) is None
    assert RefreshAnswers(KeyRing.generate(), 0.0).seal("a", {}, 1.0) is None
