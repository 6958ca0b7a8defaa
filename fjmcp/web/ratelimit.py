# -*- test-case-name: tests.web.test_ratelimit -*-
"""
Rate limits of the OAuth endpoints: token buckets on an injected clock,
answered ``429`` with ``Retry-After``.

- ``/oauth/authorize``: per client IP;
- ``/oauth/token``: a global ceiling; failed attempts per IP (a request
  from an IP out of failures is refused before it is read); and per client:
  by client id alone only for a confidential client that authenticated (its
  id is its own), by (client id, IP) for public and metadata-document
  clients, whose ids are public and shared by every user of one vendor's
  app, so that nobody can throttle all of them;
- ``/oauth/register``: per IP, with a high limit (MCP clients register again
  on every connect).

The limits are kept in this process: behind N broker nodes each limit is N
times what is configured.

The client IP is the peer's address, or, when the peer is one of
``trusted_proxies``, the right-most address of ``X-Forwarded-For`` that is
not itself a trusted proxy (addresses to its left may be forged by the
client). The limiter is applied in the route functions, so every path
routed to one (``/token`` and ``/oauth/token``) shares its buckets.
"""

from __future__ import annotations

import base64
import ipaddress
import math
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Final
from urllib.parse import unquote

from attrs import define, field, frozen
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

__all__ = [
    "Buckets",
    "RateLimitSettings",
    "RateLimits",
    "ClientKey",
    "client_ip",
    "parse_networks",
    "token_client_key",
]

#: Keys (IPs, clients) remembered per bucket set; the least recently used
#: is forgotten past it (a forgotten key starts full, which errs on the side
#: of letting a request through).
MAX_KEYS: Final = 50_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``("client", id)`` for a client that presents a credential, or
#: ``("public", id, ip)``.
ClientKey = tuple[str, ...]
#: Longest client id kept as a key (metadata-document ids are URLs).
_MAX_CLIENT_ID: Final = 2048


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


@frozen(kw_only=True)
class RateLimitSettings:
    """
    Requests allowed per minute (also the burst), per key.

    :param trusted_proxies: peers whose ``X-Forwarded-For`` is believed.
    """

    authorize_per_ip: float = 60.0
    token_per_client: float = 120.0
    token_failures_per_ip: float = 30.0
    token_global: float = 6000.0
    register_per_ip: float = 600.0
    trusted_proxies: tuple[Network, ...] = ()


@define
class _Bucket:
    tokens: float
    updated: float


@define
class Buckets:
    """Token buckets by key: ``per_minute`` tokens, refilled continuously."""

    _clock: IReactorTime
    per_minute: float
    max_keys: int = MAX_KEYS
    _buckets: OrderedDict[Hashable, _Bucket] = field(factory=OrderedDict)

    def _bucket(self, key: Hashable) -> _Bucket:
        now = self._clock.seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.per_minute, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            rate = self.per_minute / 60.0
            bucket.tokens = min(
                self.per_minute, bucket.tokens + (now - bucket.updated) * rate
            )
            bucket.updated = now
        return bucket

    def wait(self, key: Hashable) -> int:
        """Seconds until ``key`` has a token (0: it has one now); takes none."""
        bucket = self._bucket(key)
        if bucket.tokens >= 1.0:
            return 0
        return max(1, math.ceil((1.0 - bucket.tokens) * 60.0 / self.per_minute))

    def take(self, key: Hashable) -> int:
        """Take a token for ``key``: 0, or the seconds to wait (none taken)."""
        wait = self.wait(key)
        if not wait:
            self._buckets[key].tokens -= 1.0
        return wait

    def charge(self, key: Hashable) -> None:
        """Take a token whether or not one is left (counted after the fact)."""
        self._bucket(key).tokens -= 1.0


@define
class RateLimits:
    """Every bucket set of the OAuth endpoints (see the module docstring)."""

    settings: RateLimitSettings
    _clock: IReactorTime
    authorize: Buckets = field(init=False)
    token_clients: Buckets = field(init=False)
    token_failures: Buckets = field(init=False)
    token_global: Buckets = field(init=False)
    register: Buckets = field(init=False)

    def __attrs_post_init__(self) -> None:
        s = self.settings
        self.authorize = Buckets(self._clock, s.authorize_per_ip)
        self.token_clients = Buckets(self._clock, s.token_per_client)
        self.token_failures = Buckets(self._clock, s.token_failures_per_ip)
        self.token_global = Buckets(self._clock, s.token_global)
        self.register = Buckets(self._clock, s.register_per_ip)

    def client_ip(self, request: IRequest) -> str:
        """The client's address (see `client_ip`)."""
        return client_ip(request, self.settings.trusted_proxies)

    def before_token(self, ip: str, client_key: ClientKey | None) -> int:
        """
        Whether a token request may be read: the global ceiling, the IP's
        failures, and the client's bucket. Returns 0 or seconds to wait.
        A confidential client's bucket (``("client", id)``) is only looked at
        here; it is charged once the client has authenticated.
        """
        wait = self.token_failures.wait(ip)
        if wait:
            return wait
        if client_key is not None:
            if client_key[0] == "client":
                wait = self.token_clients.wait(client_key)
            else:
                wait = self.token_clients.take(client_key)
            if wait:
                return wait
        return self.token_global.take("all")

    def after_token(self, ip: str, client_key: ClientKey | None, ok: bool) -> None:
        """Count a failed attempt for the IP, or an authenticated client's call."""
        if not ok:
            self.token_failures.charge(ip)
        elif client_key is not None and client_key[0] == "client":
            self.token_clients.charge(client_key)


def token_client_key(
    form: Mapping[str, str], authorization: bytes | None, ip: str
) -> ClientKey | None:
    """
    The bucket key of a token request: by client id when the client presents
    a credential (HTTP Basic, ``client_secret``, ``client_assertion``), by
    client id and IP otherwise; None when no client id is given.
    """
    client_id = form.get("client_id")
    credential = "client_secret" in form or "client_assertion" in form
    if authorization is not None and authorization[:6].lower() == b"basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
            client_id = unquote(decoded.decode("utf-8").split(":", 1)[0])
            credential = True
        except (ValueError, UnicodeDecodeError):
            pass
    if not client_id:
        return None
    client_id = client_id[:_MAX_CLIENT_ID]
    return ("client", client_id) if credential else ("public", client_id, ip)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    proxies: Sequence[Network],
) -> bool:
    return any(address.version == n.version and address in n for n in proxies)


def client_ip(request: IRequest, trusted_proxies: Sequence[Network]) -> str:
    """
    The client's address: the peer's, unless the peer is a trusted proxy;
    then the right-most ``X-Forwarded-For`` entry that is not a trusted
    proxy (the peer's own address if the header says nothing usable).
    """
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    peer_ip = str(host) if host is not None else "unknown"
    if not trusted_proxies:
        return peer_ip
    address = _address(peer_ip)
    if address is None or not _trusted(address, trusted_proxies):
        return peer_ip
    headers = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
    hops = [h for line in headers for h in line.decode("latin-1").split(",")]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            return peer_ip
        if not _trusted(found, trusted_proxies):
            return str(found)
    return peer_ip
