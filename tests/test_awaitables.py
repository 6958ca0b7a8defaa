# -*- test-case-name: tests.test_awaitables -*-
"""Tests for `fjmcp.awaitables.maybe_await`: plain values, Deferreds, coroutines."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from fjmcp.awaitables import maybe_await


def _result(value: Any) -> Any:
    """Run ``maybe_await(value)`` to completion and return what it gave."""
    results: list[Any] = []
    Deferred.fromCoroutine(maybe_await(value)).addCallback(results.append)
    assert len(results) == 1
    return results[0]


def test_plain_value_is_returned_as_is() -> None:
    """A value that is not awaitable comes back unchanged (None included)."""
    marker = object()
    assert _result(marker) is marker
    assert _result(None) is None


def test_fired_deferred_gives_its_result() -> None:
    """A Deferred is awaited: its result is returned, not the Deferred."""
    assert _result(succeed(7)) == 7


def test_waits_for_a_pending_deferred() -> None:
    """An unfired Deferred holds the helper until it fires."""
    pending: Deferred[str] = Deferred()
    results: list[Any] = []
    Deferred.fromCoroutine(maybe_await(pending)).addCallback(results.append)
    assert results == []
    pending.callback("done")
    assert results == ["done"]


def test_coroutine_is_awaited() -> None:
    """A coroutine (any awaitable) is awaited for its result."""

    async def answer() -> int:
        return 42

    assert _result(answer()) == 42
