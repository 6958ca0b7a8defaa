# -*- test-case-name: tests.oauth.test_guarded_agent -*-
"""
Tests for `fjmcp.oauth.guarded_agent`: only public addresses are ever
connected to, judged on the addresses the connection itself resolves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IResolutionReceiver,
)
from twisted.internet.testing import MemoryReactorClock
from twisted.web.error import SchemeNotSupported
from zope.interface import implementer

from fjmcp.oauth.guarded_agent import (
    PublicAddressResolver,
    guarded_agent,
    is_public_address,
)


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address judged, not bound
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),
        ("not an address", False),
    ],
)
def test_public_addresses(host: str, public: bool) -> None:
    """Loopback, private, link-local, shared, mapped and 6to4 ones are not public."""
    assert is_public_address(host) is public


def test_a_test_may_allow_a_network() -> None:
    """allowed_networks opens exactly the networks given."""
    loopback = [ipaddress.ip_network("127.0.0.0/8")]
    assert is_public_address("127.0.0.1", loopback)
    assert not is_public_address("10.0.0.1", loopback)


@implementer(IHostnameResolver)
class _FixedResolver:
    """A resolver answering fixed addresses for every name (DNS we control)."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts
        self.asked: list[str] = []

    def resolveHostName(
        self,
        receiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        self.asked.append(hostName)
        receiver.resolutionBegan(None)  # type: ignore[arg-type]
        for host in self.hosts:
            cls = IPv6Address if ":" in host else IPv4Address
            receiver.addressResolved(cls("TCP", host, portNumber))
        receiver.resolutionComplete()
        return None


@implementer(IResolutionReceiver)
class _Collect:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done = False

    def resolutionBegan(self, resolutionInProgress: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.done = True


def test_the_resolver_drops_every_non_public_answer() -> None:
    """A name that also answers private addresses yields only its public ones."""
    inner = _FixedResolver("10.0.0.5", "93.184.216.34", "127.0.0.1", "::1")
    receiver = _Collect()
    PublicAddressResolver(inner).resolveHostName(receiver, "vendor.example", 443)
    assert receiver.addresses == ["93.184.216.34"] and receiver.done


def _connect_attempts(reactor: MemoryReactorClock) -> list[str]:
    return [host for host, *_ in reactor.tcpClients]


def test_the_agent_connects_only_to_public_addresses() -> None:
    """
    DNS rebinding: whatever a check saw before, the agent's own resolution
    decides, and a private answer is never connected to.
    """
    reactor = MemoryReactorClock()
    rebinding = _FixedResolver("127.0.0.1", "169.254.169.254")
    agent = guarded_agent(reactor, resolver=rebinding)
    failures: list[Any] = []
    agent.request(b"GET", b"https://vendor.example/client.json").addErrback(
        failures.append
    )
    reactor.advance(10)
    assert rebinding.asked == ["vendor.example"]
    assert _connect_attempts(reactor) == []
    assert failures, "the request must fail, not hang"


def test_the_agent_connects_to_public_addresses() -> None:
    """A public answer is connected to, on the URL's port."""
    reactor = MemoryReactorClock()
    agent = guarded_agent(reactor, resolver=_FixedResolver("93.184.216.34"))
    agent.request(b"GET", b"https://vendor.example:8443/client.json")
    reactor.advance(1)
    assert reactor.tcpClients[0][:2] == ("93.184.216.34", 8443)


def test_an_address_literal_is_judged_too() -> None:
    """A URL naming a loopback literal is never connected to."""
    reactor = MemoryReactorClock()
    agent = guarded_agent(reactor, resolver=_FixedResolver("127.0.0.1"))
    agent.request(b"GET", b"https://127.0.0.1/client.json").addErrback(lambda _: None)
    reactor.advance(10)
    assert _connect_attempts(reactor) == []


def test_only_https_is_spoken() -> None:
    """An http URL fails before any resolution."""
    reactor = MemoryReactorClock()
    resolver = _FixedResolver("93.184.216.34")
    failures: list[Any] = []
    guarded_agent(reactor, resolver=resolver).request(
        b"GET", b"http://vendor.example/c"
    ).addErrback(failures.append)
    assert failures and failures[0].check(SchemeNotSupported)
    assert resolver.asked == []
