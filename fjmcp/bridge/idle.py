# -*- test-case-name: tests.bridge.test_idle -*-
"""
Waiting until a bridge has no request in flight, or none on one child
generation: the drain at shutdown waits for the first, a respawn for the
second before it stops the old child. Both bridges (sessions and identity
children) keep their requests in flight in a map and share this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from attrs import define, field
from twisted.internet.defer import Deferred, succeed

__all__ = ["IdleWaiters"]


class _OnGeneration(Protocol):
    @property
    def generation(self) -> int:
        """The child generation the request was written to."""


def _busy(in_flight: Mapping[str, _OnGeneration], generation: int | None) -> bool:
    if generation is None:
        return bool(in_flight)
    return any(e.generation == generation for e in in_flight.values())


@define
class IdleWaiters:
    """Deferreds waiting for the requests in flight (of one generation) to end."""

    _in_flight: Mapping[str, _OnGeneration]
    _waiters: list[tuple[int | None, Deferred[None]]] = field(factory=list)

    def wait(self, generation: int | None) -> Deferred[None]:
        """Fires once no request (of ``generation``, if given) is in flight."""
        if not _busy(self._in_flight, generation):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append((generation, d))
        return d

    def check(self) -> None:
        """Fire the waiters whose requests have all ended (call after each end)."""
        if not self._waiters:
            return
        ready = [(g, d) for g, d in self._waiters if not _busy(self._in_flight, g)]
        if not ready:
            return
        self._waiters = [w for w in self._waiters if w not in ready]
        for _, d in ready:
            d.callback(None)
