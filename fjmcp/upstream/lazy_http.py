# -*- test-case-name: tests.upstream.test_lazy_http -*-
"""
A treq ``HTTPClient`` that is made at its first request.

treq and ``twisted.web.client`` (its agent, connection pool and response
parser) cost a running broker about 1 MB that it need not hold until it
first calls out: a login at Forgejo, a token refresh, a client's metadata
document. The broker is built with this stand-in, which imports them and
makes the real client then; every request after the first goes straight to
it. Twisted's TLS support is loaded with the reactor either way, so the
first https request pays only for the import of the HTTP client itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from twisted.web.client import HTTPConnectionPool

__all__ = ["LazyHTTPClient", "MakeClient"]

#: Makes the client on the reactor and the connection pool it is given.
MakeClient = Callable[[Any, "HTTPConnectionPool"], "HTTPClient"]


class LazyHTTPClient:
    """
    treq's ``request`` and ``get``, on a client and a connection pool made
    by ``make`` at the first call.

    :param reactor: the reactor the pool (and ``make``'s agent) runs on.
    :param make: builds the ``HTTPClient`` on the reactor and the pool; it
        imports treq and ``twisted.web.client`` itself, when it is called.
    :param persistent: whether the pool keeps connections open between
        requests (`close` closes them).
    """

    def __init__(self, reactor: Any, make: MakeClient, *, persistent: bool) -> None:
        self._reactor = reactor
        self._make = make
        self._persistent = persistent
        self._client: HTTPClient | None = None
        self._pool: HTTPConnectionPool | None = None

    @property
    def made(self) -> bool:
        """Whether the first request has made the client."""
        return self._client is not None

    def _made(self) -> HTTPClient:
        if self._client is None:
            from twisted.web.client import HTTPConnectionPool

            pool = HTTPConnectionPool(self._reactor, persistent=self._persistent)  # type: ignore[no-untyped-call, unused-ignore]
            self._client = self._make(self._reactor, pool)
            self._pool = pool
        return self._client

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        """treq's ``HTTPClient.request``."""
        return self._made().request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        """treq's ``HTTPClient.get``."""
        return self._made().get(url, **kwargs)

    def close(self) -> Deferred[None]:
        """Close the pool's open connections (none before the first request)."""
        if self._pool is None:
            return succeed(None)
        closed: Deferred[None] = self._pool.closeCachedConnections()  # type: ignore[no-untyped-call, unused-ignore]
        return closed
