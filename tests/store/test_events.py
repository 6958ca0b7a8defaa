# -*- test-case-name: tests.store.test_events -*-
"""Tests for `fjmcp.store.events`: the notification payload."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.store.events import StoreEvent


@given(
    st.sampled_from(["revoked", "upstream"]),
    st.text(max_size=40),
    st.none() | st.text(max_size=40),
    st.integers(min_value=0, max_value=2**40),
    st.none() | st.text(max_size=60),
)
def test_events_round_trip(
    kind: str, user: str, client: str | None, generation: int, scopes: str | None
) -> None:
    """Every event, naming an upstream grant's scopes or not, decodes back to itself."""
    event = StoreEvent(kind, user, client, generation, scopes)  # type: ignore[arg-type]
    assert StoreEvent.decode(event.encode()) == event


@given(st.text(max_size=200))
def test_any_payload_decodes_or_is_ignored(payload: str) -> None:
    """A payload from anywhere gives an event or ``None``, never an error."""
    decoded = StoreEvent.decode(payload)
    assert decoded is None or isinstance(decoded, StoreEvent)


def test_payloads_that_are_not_events_are_ignored() -> None:
    """Wrong kinds, types or shapes are not events."""
    for payload in (
        "[]",
        '{"k":"other","u":"a","c":null,"g":0}',
        '{"k":"revoked","u":1,"c":null,"g":0}',
        '{"k":"revoked","u":"a","c":2,"g":0}',
        '{"k":"upstream","u":"a","c":null,"g":true}',
        '{"k":"upstream","u":"a","c":null,"g":1,"s":3}',
    ):
        assert StoreEvent.decode(payload) is None
