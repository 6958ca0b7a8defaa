# -*- test-case-name: tests.web.test_mcp_hot_path -*-
"""
The second architecture line: once a session is set up, the per-message
path of ``/mcp`` never touches the store.

The bearer check (`BearerAuthenticator`) and the user's Forgejo token
(`UpstreamTokens`) are the production ones, over a migrated in-memory store
that is *armed* after ``initialize``: from then on any transaction fails the
test. Requests, notifications, the client's answer to a server->client
request, the GET stream, resumption and DELETE must all still work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from fjmcp.interfaces import UpstreamGrant
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.keys import KeyRing
from fjmcp.oauth.tokens import hash_secret, new_secret
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from fjmcp.store import grants
from tests.bridge.support import Harness, make_config, note, result, rpc
from tests.oauth.support import MemoryStore

T = TypeVar("T")

PUBLIC_URL = "http://127.0.0.1:8080"


class ArmedStore(MemoryStore):
    """A memory store that fails every transaction once `armed` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.touched: list[str] = []

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run the transaction, or record and fail it when armed."""
        if self.armed:
            self.touched.append(getattr(fn, "__name__", repr(fn)))
            raise AssertionError(f"the store was used on the hot path: {fn!r}")
        return super().run(fn, *args, **kwargs)


def _mint(store: MemoryStore, clock: Clock) -> bytes:
    token = new_secret()
    uid = store.sync.run(grants.upsert_user_txn, "alice", None, 0.0)
    store.sync.run(
        grants.issue_admin_tokens_txn,
        uid,
        "admin-cli",
        (hash_secret(token),),
        audience=PUBLIC_URL + "/mcp",
        scope="mcp",
        now=clock.seconds(),
        expires_at=clock.seconds() + 3600.0,
        family_ids=(new_secret(),),
    )
    return b"Bearer " + token.encode()


def _wired() -> tuple[Harness, ArmedStore, bytes]:
    clock = Clock()
    clock.advance(1000.0)
    store = ArmedStore()
    ring = KeyRing.generate()
    Deferred.fromCoroutine(
        UpstreamTokens(store, ring, clock).replace(
            UpstreamGrant("alice"), "fj-alice", None, None
        )
    )
    h = Harness(
        config=make_config(public_url=PUBLIC_URL),
        clock=clock,
        tokens=UpstreamTokens(store, ring, clock),  # type: ignore[arg-type]
        auth=BearerAuthenticator(store, clock, PUBLIC_URL + "/mcp"),  # type: ignore[arg-type]
    )
    return h, store, _mint(store, clock)


def test_armed_store_fails_on_use() -> None:
    """The guard is real: an armed store refuses the bearer check of a new token."""
    h, store, _ = _wired()
    store.armed = True
    fresh = _mint_unarmed(store, h.clock)
    req = h.post(rpc(1, "ping"), token=fresh, session="x")
    assert req.status in (500, 503)
    assert store.touched


def _mint_unarmed(store: ArmedStore, clock: Clock) -> bytes:
    store.armed = False
    token = _mint(store, clock)
    store.armed = True
    return token


def test_per_message_path_never_touches_the_store() -> None:
    """
    After initialize, requests, notifications, answers to the child, the GET
    stream, a resume and DELETE all run with a store that fails on any use.
    """
    h, store, token = _wired()
    sid, child, init = h.initialize(token=token)
    assert init.status == 200
    reads = store.runs
    assert reads >= 2  # the bearer check and the Forgejo token were read once
    store.armed = True

    assert (
        h.post(note("notifications/initialized"), session=sid, token=token).status
        == 202
    )
    call = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid, token=token)
    assert call.status == 200
    asked = {"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage"}
    child.emit(json.dumps(asked).encode())
    answer = {"jsonrpc": "2.0", "id": "s1", "result": {"model": "m"}}
    assert h.post(answer, session=sid, token=token).status == 202
    assert json.loads(child.written[-1]) == answer
    child.emit(result(1, {"ok": True}))
    assert call.messages()[-1] == {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}

    stream = h.request(b"GET", session=sid, token=token, accept=b"text/event-stream")
    assert stream.status == 200
    stream.disconnect()
    last = stream.events()[-1]["id"]
    resumed = h.request(
        b"GET",
        session=sid,
        token=token,
        accept=b"text/event-stream",
        headers={b"last-event-id": last.encode()},
    )
    assert resumed.status == 200
    json_only = h.post(
        rpc(2, "ping"), session=sid, token=token, accept=b"application/json"
    )
    child.emit(result(2))
    assert json_only.json()["id"] == 2
    assert h.request(b"DELETE", session=sid, token=token).status == 204
    assert store.touched == [] and store.runs == reads
