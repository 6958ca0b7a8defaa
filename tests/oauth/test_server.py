# -*- test-case-name: tests.oauth.test_server -*-
"""
Races at the authorization server: two redemptions of one code, and two
refreshes with one refresh token, interleaved at every store step.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from fjmcp.oauth.errors import InvalidGrantError
from tests.oauth.support import HeldStore
from tests.web.oauth_harness import Broker


def _race(broker: Broker, store: HeldStore, forms: list[dict[str, str]]) -> list[Any]:
    store.holding = True
    results: list[Any] = []
    for form in forms:
        grant = broker.server.tokens.token(form, None)
        Deferred.fromCoroutine(grant).addBoth(results.append)
    assert results == []
    store.release()
    store.holding = False
    assert len(results) == len(forms)
    return results


def _split(results: list[Any]) -> tuple[list[dict[str, Any]], list[Failure]]:
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, Failure)]
    return wins, losses


def test_concurrent_code_redemptions_exactly_one_wins() -> None:
    """Two redemptions in flight at once: one gets tokens, the other invalid_grant,
    and the replay revokes what the winner got."""
    store = HeldStore()
    store.holding = False
    broker = Broker(store=store)
    client = broker.register()
    code, verifier, _ = broker.login(client)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": client["redirect_uris"][0],
        "client_id": client["client_id"],
    }
    wins, losses = _split(_race(broker, store, [form, form]))
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].check(InvalidGrantError)
    assert not broker.bearer_ok(wins[0]["access_token"])


def test_refresh_replay_race_leaves_no_live_family() -> None:
    """Without a reuse grace, two refreshes with one token at once: one rotation
    wins, the reuse revokes the family, so neither new token stays usable."""
    store = HeldStore()
    store.holding = False
    broker = Broker(store=store, refresh_reuse_grace=0.0)
    client = broker.register()
    tokens = broker.tokens_for(client)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client["client_id"],
    }
    wins, losses = _split(_race(broker, store, [form, form]))
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].check(InvalidGrantError)
    assert not broker.bearer_ok(wins[0]["access_token"])
    assert not broker.bearer_ok(tokens["access_token"])
    assert broker.sessions.ended[-1][2] == "refresh token reused"
