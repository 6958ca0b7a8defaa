# -*- test-case-name: tests.web.test_ratelimit -*-
"""
Tests for `fjmcp.web.ratelimit` and the limits of the OAuth routes: each
limit answers 429 with ``Retry-After`` once its bucket is empty, refills on
the injected clock, keys by what the docs say (IP, client, client and IP),
and believes ``X-Forwarded-For`` only from a trusted proxy.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from fjmcp.web.ratelimit import (
    Buckets,
    RateLimitSettings,
    client_ip,
    parse_networks,
    token_client_key,
)
from tests.standin.support import pkce_pair
from tests.web.oauth_harness import Broker

#: The address StubTreq's requests come from.
PEER = "127.0.0.1"


def _limits(**overrides: Any) -> RateLimitSettings:
    values: dict[str, Any] = {
        "authorize_per_ip": 1000.0,
        "token_per_client": 1000.0,
        "token_failures_per_ip": 1000.0,
        "token_global": 1000.0,
        "register_per_ip": 1000.0,
        **overrides,
    }
    return RateLimitSettings(**values)


def _retry_after(response: Any) -> int:
    assert response.code == 429
    return int(response.headers.getRawHeaders("retry-after")[0])


def _forwarded(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def test_a_bucket_refills_on_the_clock() -> None:
    """A bucket of 2 per minute allows two at once, then one every 30s."""
    clock = Clock()
    buckets = Buckets(clock, 2.0)
    assert buckets.take("k") == 0 and buckets.take("k") == 0
    assert buckets.take("k") == 30
    clock.advance(29)
    assert buckets.take("k") == 1
    clock.advance(1)
    assert buckets.take("k") == 0
    assert buckets.take("other") == 0


def test_a_bucket_forgets_the_least_recently_used_key() -> None:
    """Past max_keys the oldest key is dropped (it starts full again)."""
    buckets = Buckets(Clock(), 1.0, max_keys=2)
    for key in ("a", "b", "c"):
        assert buckets.take(key) == 0
    assert buckets.take("c") > 0
    assert buckets.take("a") == 0


def test_register_is_limited_per_ip() -> None:
    """The register limit counts per address; another address is not held back."""
    broker = Broker(
        limits=_limits(register_per_ip=2.0, trusted_proxies=parse_networks([PEER]))
    )
    body = {
        "redirect_uris": ["https://app.example/callback"],
        "token_endpoint_auth_method": "none",
    }
    for _ in range(2):
        ok = broker.request(
            "POST", "/oauth/register", json=body, headers=_forwarded("10.0.0.1")
        )
        assert ok.code == 201
    refused = broker.request(
        "POST", "/oauth/register", json=body, headers=_forwarded("10.0.0.1")
    )
    assert _retry_after(refused) == 30
    assert broker.json_of(refused)["error"] == "temporarily_unavailable"
    other = broker.request(
        "POST", "/oauth/register", json=body, headers=_forwarded("10.0.0.2")
    )
    assert other.code == 201
    broker.clock.advance(30)
    again = broker.request(
        "POST", "/oauth/register", json=body, headers=_forwarded("10.0.0.1")
    )
    assert again.code == 201


def test_authorize_is_limited_per_ip_with_a_page() -> None:
    """Past the authorize limit the browser gets a 429 page with Retry-After."""
    broker = Broker(limits=_limits(authorize_per_ip=1.0))
    client = broker.register()
    _, challenge = pkce_pair()
    params = broker.authorize_params(client, challenge)
    assert broker.get("/oauth/authorize", params=params).code == 200
    refused = broker.get("/oauth/authorize", params=params)
    assert _retry_after(refused) == 60
    assert "Too many" in broker.text_of(refused)
    broker.clock.advance(60)
    assert broker.get("/oauth/authorize", params=params).code == 200


def _refresh(broker: Broker, client: dict[str, Any], token: str, ip: str) -> Any:
    return broker.token(
        {"grant_type": "refresh_token", "refresh_token": token},
        client,
        headers=_forwarded(ip),
    )


def test_a_public_client_is_limited_per_client_and_ip() -> None:
    """
    A public client's id is shared by all its users: its bucket is per
    (client, IP), so one address using it up leaves the others alone.
    """
    broker = Broker(
        limits=_limits(token_per_client=2.0, trusted_proxies=parse_networks([PEER]))
    )
    client = broker.register()
    tokens = broker.tokens_for(client)  # one token request (from PEER)
    refresh = tokens["refresh_token"]
    for _ in range(2):
        answer = _refresh(broker, client, refresh, "10.0.0.1")
        assert answer.code == 200, broker.text_of(answer)
        refresh = broker.json_of(answer)["refresh_token"]
    assert _retry_after(_refresh(broker, client, refresh, "10.0.0.1")) == 30
    answer = _refresh(broker, client, refresh, "10.0.0.2")
    assert answer.code == 200, broker.text_of(answer)


def test_a_confidential_client_is_limited_by_id_once_authenticated() -> None:
    """
    A confidential client is counted by its id from every address, but only
    for requests that authenticate: wrong secrets in its name count as
    failures of the sender's address and never use up the client's bucket.
    """
    broker = Broker(
        limits=_limits(
            token_per_client=2.0,
            token_failures_per_ip=5.0,
            trusted_proxies=parse_networks([PEER]),
        )
    )
    client = broker.register(token_endpoint_auth_method="client_secret_basic")
    impostor = {**client, "client_secret": "wrong"}
    for _ in range(4):
        wrong = _refresh(broker, impostor, "x", "10.6.6.6")
        assert wrong.code == 401
    tokens = broker.tokens_for(client)  # from PEER: the first of two
    answer = _refresh(broker, client, tokens["refresh_token"], "10.0.0.1")
    assert answer.code == 200, broker.text_of(answer)
    refresh = broker.json_of(answer)["refresh_token"]
    assert _retry_after(_refresh(broker, client, refresh, "10.0.0.2")) == 30


def test_failed_token_requests_are_limited_per_ip() -> None:
    """After the allowed failures an address is refused before its request
    is even checked; another address still gets through."""
    broker = Broker(
        limits=_limits(
            token_failures_per_ip=3.0, trusted_proxies=parse_networks([PEER])
        )
    )
    client = broker.register()
    for _ in range(3):
        assert _refresh(broker, client, "bogus", "10.0.0.9").code == 400
    refused = _refresh(broker, client, "bogus", "10.0.0.9")
    assert _retry_after(refused) == 20
    assert _refresh(broker, client, "bogus", "10.0.0.8").code == 400
    broker.clock.advance(20)
    assert _refresh(broker, client, "bogus", "10.0.0.9").code == 400


def test_the_global_token_ceiling() -> None:
    """The global ceiling holds whatever the address and the client."""
    broker = Broker(
        limits=_limits(token_global=2.0, trusted_proxies=parse_networks([PEER]))
    )
    client = broker.register()
    assert _refresh(broker, client, "bogus", "10.0.0.1").code == 400
    assert _refresh(broker, client, "bogus", "10.0.0.2").code == 400
    assert _retry_after(_refresh(broker, client, "bogus", "10.0.0.3")) == 30


def _request(peer: str, forwarded: list[str] | None = None) -> IRequest:
    request = DummyRequest([b""])
    request.client = _Peer(peer)  # type: ignore[assignment]
    if forwarded is not None:
        request.requestHeaders.setRawHeaders(
            b"x-forwarded-for", [f.encode() for f in forwarded]
        )
    return cast(IRequest, request)


class _Peer:
    """A peer address as `IRequest.getClientAddress` gives it."""

    def __init__(self, host: str) -> None:
        self.host = host


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    """
    From an untrusted peer the header is ignored; from a trusted proxy the
    right-most untrusted hop is the client (hops further left may be forged).
    """
    proxies = parse_networks(["10.1.0.0/16", "::1"])
    assert client_ip(_request("203.0.113.5", ["198.51.100.1"]), proxies) == (
        "203.0.113.5"
    )
    chain = ["6.6.6.6, 198.51.100.7", "10.1.2.3"]
    assert client_ip(_request("10.1.0.1", chain), proxies) == "198.51.100.7"
    assert client_ip(_request("10.1.0.1"), proxies) == "10.1.0.1"
    assert client_ip(_request("10.1.0.1", ["garbage"]), proxies) == "10.1.0.1"
    assert client_ip(_request("::1", ["[2001:db8::5]:443"]), proxies) == "2001:db8::5"
    assert client_ip(_request("10.1.0.1", chain), ()) == "10.1.0.1"


@given(st.lists(st.text(max_size=60), max_size=5))
def test_any_forwarded_header_gives_an_address(values: list[str]) -> None:
    """Whatever the header holds, the client IP is an address (never an error)."""
    proxies = parse_networks(["10.0.0.0/8"])
    ip = client_ip(
        _request(
            "10.0.0.1", [v.encode("utf-8", "replace").decode("latin-1") for v in values]
        ),
        proxies,
    )
    ipaddress.ip_address(ip)


def test_the_token_bucket_key() -> None:
    """A credential (Basic, client_secret) keys by client id; none keys by
    client id and IP; no client id gives no key."""
    basic = b"Basic " + base64.b64encode(b"conf%3Aid:secret")
    assert token_client_key({}, basic, "1.2.3.4") == ("client", "conf:id")
    assert token_client_key(
        {"client_id": "c", "client_secret": "s"}, None, "1.2.3.4"
    ) == ("client", "c")
    assert token_client_key({"client_id": "p"}, None, "1.2.3.4") == (
        "public",
        "p",
        "1.2.3.4",
    )
    assert token_client_key({}, None, "1.2.3.4") is None
    assert token_client_key({"client_id": "p"}, b"Basic !!!", "5.6.7.8") == (
        "public",
        "p",
        "5.6.7.8",
    )
