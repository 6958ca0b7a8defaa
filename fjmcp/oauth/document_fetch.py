# -*- test-case-name: tests.oauth.test_document_fetch -*-
"""
Fetching what a client publishes (its metadata document, its JWKS), within
limits, so that a hostile or broken URL costs the broker little.

The HTTP client is treq on the guarded agent (`fjmcp.oauth.guarded_agent`:
https only, public addresses only, TLS verified against the URL's host).
On top of that: one overall deadline (connect, headers and body together),
a byte cap read as the body streams in (a ``Content-Length`` over it is
refused before reading), redirects followed only within the same origin
and only a few times, and a 200 answer required. Every failure becomes a
`ClientDocumentError` with a short reason; nothing else escapes. The
answer's caching headers are read into a lifetime hint for the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from fjmcp.oauth.client_documents import ClientDocumentError

__all__ = [
    "FetchLimits",
    "Fetched",
    "GuardedFetcher",
    "cache_lifetime",
]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_HEADERS: Final = {"Accept": ["application/json"], "User-Agent": ["fjmcp"]}


@frozen
class FetchLimits:
    """How much one fetch may cost."""

    timeout: float = 5.0
    """Seconds for the whole fetch, redirects and body included."""
    max_bytes: int = 64 * 1024
    max_redirects: int = 3


@frozen
class Fetched:
    """A body fetched within the limits, with its caching hint."""

    url: str
    body: bytes
    lifetime: float | None
    """Seconds the answer may be cached (from its headers), if it said."""


class _TooLarge(Exception):
    pass


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


def cache_lifetime(headers: Mapping[str, str | None]) -> float | None:
    """
    How long an answer may be cached, from ``Cache-Control`` (``no-store``
    and ``no-cache`` give 0, ``s-maxage`` beats ``max-age``) or else
    ``Expires`` minus ``Date``; ``None`` when the headers do not say.
    Malformed values count as absent.
    """
    control = (headers.get("cache-control") or "").lower()
    ages: dict[str, float] = {}
    for directive in control.split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name in ("max-age", "s-maxage"):
            try:
                ages[name] = max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                continue
    if "s-maxage" in ages:
        return ages["s-maxage"]
    if "max-age" in ages:
        return ages["max-age"]
    expires, date = headers.get("expires"), headers.get("date")
    if expires and date:
        try:
            delta = parsedate_to_datetime(expires) - parsedate_to_datetime(date)
            return max(0.0, delta.total_seconds())
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
    return None


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    try:
        return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)
    except ValueError:
        return False


@frozen
class GuardedFetcher:
    """Fetches a client-published URL within `FetchLimits`."""

    _http: Any
    """A treq ``HTTPClient`` (on the guarded agent; ``StubTreq`` in tests)."""
    _clock: IReactorTime
    _limits: FetchLimits = FetchLimits()

    def fetch(self, url: str) -> Deferred[Fetched]:
        """
        The body at ``url``; fails with `ClientDocumentError` (on time out
        too: the deadline cancels whatever is in flight).
        """
        d = Deferred.fromCoroutine(self._fetch(url))
        late = ClientDocumentError(
            f"{url[:200]}: it did not answer within {self._limits.timeout:g} seconds"
        )
        d.addTimeout(
            self._limits.timeout,
            self._clock,
            onTimeoutCancel=lambda _, __: Failure(late),
        )

        def explain(failure: Failure) -> Failure:
            if failure.check(ClientDocumentError):
                return failure
            if failure.check(TimeoutError, CancelledError):
                return Failure(late)
            return Failure(ClientDocumentError(f"{url[:200]}: it could not be reached"))

        d.addErrback(explain)
        return d

    async def _fetch(self, url: str) -> Fetched:
        current = url
        for _ in range(self._limits.max_redirects + 1):
            if not current.startswith("https://"):
                raise ClientDocumentError(f"{current[:200]}: only https is fetched")
            response: IResponse = await self._http.get(
                current, headers=_HEADERS, allow_redirects=False
            )
            if response.code in _REDIRECTS:
                location = _header(response, b"location")
                self._discard(response)
                target = urljoin(current, location or "")
                if not location or not _same_origin(current, target):
                    raise ClientDocumentError(
                        f"{url[:200]}: redirects to another host are not followed"
                    )
                current = target
                continue
            if response.code != 200:
                self._discard(response)
                raise ClientDocumentError(
                    f"{url[:200]}: it answered HTTP {response.code}"
                )
            body = await self._body(response, url)
            headers = {
                name: _header(response, name.encode())
                for name in ("cache-control", "expires", "date")
            }
            return Fetched(current, body, cache_lifetime(headers))
        raise ClientDocumentError(f"{url[:200]}: too many redirects")

    def _discard(self, response: IResponse) -> None:
        """Drop an answer's body without reading it (the connection closes)."""
        from treq import collect

        def refuse(data: bytes) -> None:
            raise _TooLarge

        collect(response, refuse).addErrback(lambda _: None)

    async def _body(self, response: IResponse, url: str) -> bytes:
        from treq import collect

        cap = self._limits.max_bytes
        too_large = ClientDocumentError(f"{url[:200]}: it is larger than {cap} bytes")
        length = response.length
        if isinstance(length, int) and length > cap:
            self._discard(response)
            raise too_large
        chunks: list[bytes] = []
        size = 0

        def collector(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > cap:
                raise _TooLarge
            chunks.append(data)

        try:
            await collect(response, collector)
        except _TooLarge:
            raise too_large from None
        return b"".join(chunks)
