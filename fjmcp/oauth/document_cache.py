# -*- test-case-name: tests.oauth.test_document_cache -*-
"""
The cache of fetched client documents and keys, bounded in time and size.

A document is kept for as long as its caching headers say, but never less
than a floor (a client sending ``no-store`` must not make the broker fetch
on every request of a login) nor more than a ceiling (a changed document
is seen within a day). A failure is kept too, briefly (the negative cache),
so one bad ``client_id`` cannot make the broker fetch on every authorize.
The cache holds at most ``max_entries``, dropping the least recently used.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

__all__ = ["CachePolicy", "TtlCache"]

T = TypeVar("T")


@frozen
class CachePolicy:
    """How long fetched documents and failures are kept, and how many."""

    floor: float = 300.0
    ceiling: float = 86400.0
    max_entries: int = 1000
    negative_ttl: float = 60.0

    def lifetime(self, hint: float | None) -> float:
        """A fetched answer's lifetime: its headers' ``hint``, clamped."""
        if hint is None:
            return self.floor
        return min(self.ceiling, max(self.floor, hint))


class TtlCache(Generic[T]):
    """A least-recently-used map whose entries expire on the clock."""

    def __init__(self, clock: IReactorTime, max_entries: int) -> None:
        self._clock = clock
        self._max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> T | None:
        """The live value of ``key``, if any."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock.seconds():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: T, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds (evicting the oldest if full)."""
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self._clock.seconds() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
