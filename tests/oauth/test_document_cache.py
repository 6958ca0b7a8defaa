# -*- test-case-name: tests.oauth.test_document_cache -*-
"""Tests for `fjmcp.oauth.document_cache`: lifetimes and bounds."""

from __future__ import annotations

from twisted.internet.task import Clock

from fjmcp.oauth.document_cache import CachePolicy, TtlCache


def test_lifetimes_are_clamped_to_floor_and_ceiling() -> None:
    """No hint or a short one gives the floor; a long one the ceiling."""
    policy = CachePolicy(floor=300, ceiling=3600)
    assert policy.lifetime(None) == 300
    assert policy.lifetime(0) == 300
    assert policy.lifetime(1000) == 1000
    assert policy.lifetime(10**9) == 3600


def test_entries_expire_on_the_clock() -> None:
    """An entry is gone once its time is up."""
    clock = Clock()
    cache: TtlCache[str] = TtlCache(clock, 10)
    cache.put("a", "A", 60)
    clock.advance(59)
    assert cache.get("a") == "A"
    clock.advance(1)
    assert cache.get("a") is None and len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    """Past max_entries the least recently used entry goes."""
    cache: TtlCache[int] = TtlCache(Clock(), 3)
    for i in range(3):
        cache.put(str(i), i, 60)
    assert cache.get("0") == 0
    cache.put("3", 3, 60)
    assert cache.get("1") is None
    assert [cache.get(k) for k in "023"] == [0, 2, 3]
    for i in range(1000):
        cache.put(f"k{i}", i, 60)
    assert len(cache) == 3


def test_a_zero_lifetime_keeps_nothing() -> None:
    """put with ttl 0 drops the key."""
    cache: TtlCache[int] = TtlCache(Clock(), 3)
    cache.put("a", 1, 60)
    cache.put("a", 2, 0)
    assert cache.get("a") is None
