# -*- test-case-name: tests.upstream.test_lazy_http -*-
"""
`LazyHTTPClient` makes its client and pool at the first request, once, and
passes every request to it; closing before any request makes nothing.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import HTTPConnectionPool

from fjmcp.upstream.lazy_http import LazyHTTPClient


class RecordingClient:
    """Stands in for treq's HTTPClient: remembers each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[str]:
        """Remember the call; answer at once."""
        self.calls.append((method, url, kwargs))
        return succeed("answer")

    def get(self, url: str, **kwargs: Any) -> Deferred[str]:
        """A GET request."""
        return self.request("GET", url, **kwargs)


class Maker:
    """A ``make`` for `LazyHTTPClient` that counts the clients it made."""

    def __init__(self) -> None:
        self.made: list[tuple[Any, HTTPConnectionPool, RecordingClient]] = []

    def __call__(self, reactor: Any, pool: HTTPConnectionPool) -> Any:
        """Make a recording client."""
        client = RecordingClient()
        self.made.append((reactor, pool, client))
        return client


def result_of(d: Deferred[Any]) -> Any:
    found: list[Any] = []
    d.addBoth(found.append)
    assert found, "the Deferred has not fired"
    return found[0]


def test_nothing_is_made_before_the_first_request() -> None:
    """Building and closing it makes no client and no pool."""
    maker = Maker()
    lazy = LazyHTTPClient(MemoryReactorClock(), maker, persistent=True)
    assert result_of(lazy.close()) is None
    assert not lazy.made
    assert maker.made == []


def test_the_first_request_makes_the_client_once() -> None:
    """Requests go to the one client made on the reactor and a pool."""
    reactor = MemoryReactorClock()
    maker = Maker()
    lazy = LazyHTTPClient(reactor, maker, persistent=False)
    assert result_of(lazy.request("POST", "https://a.example/x", data=b"1")) == "answer"
    assert result_of(lazy.get("https://a.example/y")) == "answer"
    assert lazy.made
    [(made_on, pool, client)] = maker.made
    assert made_on is reactor
    assert isinstance(pool, HTTPConnectionPool)
    assert pool.persistent is False
    assert client.calls == [
        ("POST", "https://a.example/x", {"data": b"1"}),
        ("GET", "https://a.example/y", {}),
    ]


def test_close_closes_the_pool_it_made() -> None:
    """After a request, close() closes the pool's cached connections."""
    maker = Maker()
    lazy = LazyHTTPClient(MemoryReactorClock(), maker, persistent=True)
    lazy.get("https://a.example/")
    [(_, pool, _)] = maker.made
    closed: list[bool] = []

    def close() -> Deferred[None]:
        closed.append(True)
        return succeed(None)

    pool.closeCachedConnections = close  # type: ignore[method-assign]
    assert result_of(lazy.close()) is None
    assert closed == [True]
