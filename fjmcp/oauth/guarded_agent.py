# -*- test-case-name: tests.oauth.test_guarded_agent -*-
"""
The HTTP agent that fetches what clients publish (metadata documents,
JWKS), which must never reach the broker's own network.

A client chooses the URL the broker fetches, so the URL's host could name
a loopback, private or link-local address: a classic server-side request
forgery. The rule is enforced on the address actually connected to: the
agent's connections resolve names through `PublicAddressResolver`, which
passes on only globally routable addresses, so a name that answers a
public address to a check and a private one to the connect (DNS rebinding)
cannot slip through, and there is no separate pre-check to race. The agent
speaks https only, and TLS verifies the certificate against the URL's host
name (`BrowserLikePolicyForHTTPS`), whatever address the name resolved to.
Tests that serve on loopback opt in with ``allowed_networks``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from attrs import frozen
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IOpenSSLClientConnectionCreator,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

__all__ = [
    "PublicAddressResolver",
    "guarded_agent",
    "is_public_address",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_public_address(host: str, allowed_networks: Sequence[IPNetwork] = ()) -> bool:
    """
    Whether ``host`` (an address literal) is globally routable, or inside a
    network a test explicitly allowed. IPv4-mapped and 6to4 IPv6 addresses
    are judged by the IPv4 address they carry.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            address = embedded
    if any(address in net for net in allowed_networks):
        return True
    return bool(address.is_global) and not address.is_multicast


@implementer(IResolutionReceiver)
class _FilteringReceiver:
    """Passes on the public addresses of a resolution, drops the rest."""

    def __init__(
        self, inner: IResolutionReceiver, allowed: Sequence[IPNetwork]
    ) -> None:
        self._inner = inner
        self._allowed = allowed

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        self._inner.resolutionBegan(resolutionInProgress)

    def addressResolved(self, address: IAddress) -> None:
        if isinstance(address, IPv4Address | IPv6Address) and is_public_address(
            address.host, self._allowed
        ):
            self._inner.addressResolved(address)

    def resolutionComplete(self) -> None:
        self._inner.resolutionComplete()


@implementer(IHostnameResolver)
class PublicAddressResolver:
    """A name resolver that only ever answers globally routable addresses."""

    def __init__(
        self, inner: IHostnameResolver, allowed_networks: Sequence[IPNetwork] = ()
    ) -> None:
        self._inner = inner
        self._allowed = tuple(allowed_networks)

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        """Resolve with the inner resolver, keeping only public addresses."""
        return self._inner.resolveHostName(
            _FilteringReceiver(resolutionReceiver, self._allowed),
            hostName,
            portNumber,
            addressTypes,
            transportSemantics,
        )


@implementer(IReactorPluggableNameResolver)
class _ResolvingThrough:
    """The reactor, as seen by an endpoint, with another name resolver."""

    def __init__(self, reactor: Any, resolver: IHostnameResolver) -> None:
        self._reactor = reactor
        self._resolver = resolver

    @property
    def nameResolver(self) -> IHostnameResolver:
        return self._resolver

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError("the guarded resolver cannot be replaced")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@implementer(IAgentEndpointFactory)
@frozen
class _HttpsEndpoints:
    """https endpoints that connect through the guarded resolver."""

    _reactor: Any
    _policy: IPolicyForHTTPS
    _connect_timeout: float

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        if uri.scheme != b"https":
            raise SchemeNotSupported("only https URLs are fetched")
        creator: IOpenSSLClientConnectionCreator = self._policy.creatorForNetloc(
            uri.host, uri.port
        )
        endpoint = HostnameEndpoint(
            self._reactor, uri.host, uri.port, timeout=self._connect_timeout
        )
        return wrapClientTLS(creator, endpoint)


def guarded_agent(
    reactor: Any,
    *,
    resolver: IHostnameResolver | None = None,
    tls_policy: IPolicyForHTTPS | None = None,
    allowed_networks: Sequence[IPNetwork] = (),
    connect_timeout: float = 5.0,
    pool: HTTPConnectionPool | None = None,
) -> IAgent:
    """
    An agent for URLs that clients choose: https only, connecting only to
    public addresses (plus ``allowed_networks``, for tests on loopback),
    verifying the URL's host name, and keeping no connection open.

    :param resolver: the name resolver to guard (default: the reactor's).
    :param tls_policy: trust roots (default: the platform's).
    :param pool: the connection pool (default: a new one that keeps none).
    """
    if pool is None:
        pool = HTTPConnectionPool(reactor, persistent=False)
    inner = resolver if resolver is not None else reactor.nameResolver
    guarded = _ResolvingThrough(reactor, PublicAddressResolver(inner, allowed_networks))
    agent: IAgent = Agent.usingEndpointFactory(
        reactor,
        _HttpsEndpoints(
            guarded, tls_policy or BrowserLikePolicyForHTTPS(), connect_timeout
        ),
        pool=pool,
    )
    return agent
