# -*- test-case-name: tests.bridge.test_request_state -*-
"""
Tests for `fjmcp.bridge.request_state`: a sealed requestState opens only
for its identity, its request, before its expiry, on its node, and never
when tampered with; anything else a client sends is refused cleanly.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.bridge.request_state import (
    RequestStateError,
    RequestStateSealer,
    StateClaims,
    request_digest,
)

KEY = (os.urandom(32),)
SEALER = RequestStateSealer(lambda: KEY, "node-a")
DIGEST = request_digest("tools/call", {"name": "t", "arguments": {"x": 1}})
CLAIMS = StateClaims("alice", "client-a", DIGEST, "held-1", "node-a", 100.0)


def _open(token: Any, **kw: Any) -> StateClaims:
    values: dict[str, Any] = {
        "user": "alice",
        "client_id": "client-a",
        "digest": DIGEST,
        "now": 50.0,
    }
    values.update(kw)
    return SEALER.open(token, **values)


def test_a_sealed_state_opens_for_its_own_call() -> None:
    """The round trip gives the claims back; two seals of one claim differ."""
    token = SEALER.seal(CLAIMS)
    assert _open(token) == CLAIMS
    assert SEALER.seal(CLAIMS) != token
    assert "alice" not in token


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"user": "bob"}, "another identity"),
        ({"client_id": "client-b"}, "another identity"),
        ({"digest": request_digest("tools/call", {"name": "t"})}, "another request"),
        ({"now": 100.0}, "expired"),
    ],
)
def test_a_state_opens_for_nothing_else(change: dict[str, Any], reason: str) -> None:
    """Another user or client, another request, or past its expiry: refused."""
    with pytest.raises(RequestStateError) as e:
        _open(SEALER.seal(CLAIMS), **change)
    assert reason in e.value.reason
    assert e.value.node is None


def test_a_state_held_on_another_node_names_it() -> None:
    """A state sealed on node-b (same key) is refused here, naming node-b."""
    other = RequestStateSealer(SEALER.keys, "node-b")
    token = other.seal(StateClaims("alice", "client-a", DIGEST, "h", "node-b", 100.0))
    with pytest.raises(RequestStateError) as e:
        _open(token)
    assert e.value.node == "node-b"


def test_the_node_is_readable_in_clear_and_bound() -> None:
    """
    A balancer reads the holding node from the token's second dot-separated
    field; a token whose clear node was changed does not open (so a client
    cannot make a node name another one).
    """
    token = SEALER.seal(CLAIMS)
    version, node, sealed = token.split(".")
    assert (version, node) == ("v2", "node-a")
    forged = f"v2.node-b.{sealed}"
    for sealer in (SEALER, RequestStateSealer(SEALER.keys, "node-b")):
        with pytest.raises(RequestStateError) as e:
            sealer.open(
                forged, user="alice", client_id="client-a", digest=DIGEST, now=50.0
            )
        assert e.value.node is None


def test_another_key_does_not_open_it() -> None:
    """A state from another broker (another key) does not open."""
    token = RequestStateSealer.local("node-a").seal(CLAIMS)
    with pytest.raises(RequestStateError):
        _open(token)


def test_a_state_sealed_before_a_key_rotation_still_opens() -> None:
    """
    Sealed under the key that was active, a state opens once a new key is
    prepended (this node rotated, or another node started with the new
    file); new states are sealed with the new key, which the old ring
    cannot open.
    """
    old = (os.urandom(32),)
    ring = list(old)
    sealer = RequestStateSealer(lambda: tuple(ring), "node-a")
    before = sealer.seal(CLAIMS)
    ring.insert(0, os.urandom(32))
    after = sealer.seal(CLAIMS)
    assert sealer.open(
        before, user="alice", client_id="client-a", digest=DIGEST, now=1.0
    )
    assert sealer.open(
        after, user="alice", client_id="client-a", digest=DIGEST, now=1.0
    )
    with pytest.raises(RequestStateError):
        RequestStateSealer(lambda: old, "node-a").open(
            after, user="alice", client_id="client-a", digest=DIGEST, now=1.0
        )


@given(st.integers(min_value=3, max_value=200), st.integers(0, 63))
def test_any_tampered_character_is_refused(position: int, delta: int) -> None:
    """Changing any character of the token makes it refuse to open."""
    token = SEALER.seal(CLAIMS)
    position %= len(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.find(token[position]) + 1 + delta) % 64]
    if replacement == token[position]:
        return
    tampered = token[:position] + replacement + token[position + 1 :]
    try:
        claims = _open(tampered)
    except RequestStateError:
        return
    # Only the last character's unused low bits may change without effect.
    assert position == len(token) - 1 and claims == CLAIMS


@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.binary()))
def test_anything_a_client_sends_is_refused_cleanly(value: Any) -> None:
    """Arbitrary values never open and never raise anything but RequestStateError."""
    with pytest.raises(RequestStateError):
        _open(value)
    with pytest.raises(RequestStateError):
        _open("v2." + str(value))
    with pytest.raises(RequestStateError):
        _open("v2.node-a." + str(value))


def test_the_digest_ignores_meta_and_the_retry_fields() -> None:
    """A retry's _meta, inputResponses and requestState do not change the binding."""
    params = {"name": "t", "arguments": {"x": 1}}
    retry = {**params, "_meta": {"a": 1}, "inputResponses": {}, "requestState": "s"}
    assert request_digest("tools/call", retry) == DIGEST
    assert request_digest("prompts/get", params) != DIGEST
