# -*- test-case-name: tests.integration.test_standin_forgejo -*-
"""
The stand-in Forgejo over real loopback sockets: started on the running
reactor (as the demo and other integration tests do) and driven by the real
Forgejo client, and started as its own process with ``fjmcp standin-forgejo``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

from fjmcp.standin.app import start_standin
from fjmcp.upstream.errors import ForgejoAuthError
from fjmcp.upstream.forgejo import ForgejoClient, ForgejoSettings
from tests.standin.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    pkce_pair,
    query_of,
    standin_config,
)

pytestmark = pytest.mark.integration

WAIT = 30.0
FJMCP = Path(sys.executable).with_name("fjmcp")


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def plain_http(reactor: Any) -> HTTPClient:
    """A treq client without connection reuse, so nothing lingers after a test."""
    pool = HTTPConnectionPool(reactor, persistent=False)  # type: ignore[no-untyped-call, unused-ignore]
    return HTTPClient(Agent(reactor, pool=pool))  # type: ignore[no-untyped-call, unused-ignore]


@pytest_twisted.ensureDeferred
async def test_started_standin_serves_the_forgejo_client_over_loopback() -> None:
    """start_standin listens on 127.0.0.1 with a free port; the real client logs
    in, reads the user, refreshes; the loopback-only expire hook then makes the
    user's token fail with ForgejoAuthError."""
    reactor = _reactor()
    standin, port = await start_standin(
        reactor, standin_config(auto_approve="alice"), host="127.0.0.1", port=0
    )
    client = ForgejoClient.from_reactor(
        reactor,
        ForgejoSettings(
            base_url=standin.base_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            timeout=WAIT,
        ),
    )
    http = plain_http(reactor)
    try:
        assert port.getHost().host == "127.0.0.1"  # type: ignore[attr-defined]
        assert await client.version() == standin.config.version
        verifier, challenge = pkce_pair()
        answer = await http.get(
            client.authorize_url(REDIRECT_URI, "st", challenge), allow_redirects=False
        )
        await answer.content()
        assert answer.code == 303
        code = query_of(answer.headers.getRawHeaders("location")[0])["code"]
        tokens = await client.exchange_code(code, REDIRECT_URI, verifier)
        assert (await client.get_user(tokens.access_token)).login == "alice"
        fresh = await client.refresh(tokens.refresh_token or "")
        assert standin.refresh_count("alice") == 1
        hook = await http.post(f"{standin.base_url}/_standin/users/alice/expire")
        assert (hook.code, await hook.json()) == (200, {"login": "alice", "expired": 2})
        with pytest.raises(ForgejoAuthError):
            await client.get_user(fresh.access_token)
    finally:
        await client.close()
        stopped = port.stopListening()
        if stopped is not None:
            await stopped


@pytest_twisted.ensureDeferred
async def test_start_standin_refuses_a_public_address() -> None:
    """start_standin refuses a non-loopback host before binding anything."""
    with pytest.raises(ValueError, match="loopback"):
        await start_standin(_reactor(), standin_config(), host="0.0.0.0", port=0)  # noqa: S104


class _Watcher(ProcessProtocol):
    """Collects a child's stdout; fires ``first_line`` and ``ended``."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.first_line: Deferred[str] = Deferred()
        self.ended: Deferred[int | None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        """Fire ``first_line`` once a whole line has arrived."""
        self.out += data
        if b"\n" in self.out and not self.first_line.called:
            self.first_line.callback(self.out.split(b"\n", 1)[0].decode())

    def errReceived(self, data: bytes) -> None:
        """Keep stderr for the failure message."""
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        """Fire ``ended`` with the exit code."""
        if not self.first_line.called:
            self.first_line.errback(RuntimeError(self.err.decode(errors="replace")))
        self.ended.callback(getattr(reason.value, "exitCode", None))


@pytest_twisted.ensureDeferred
async def test_standin_command_runs_as_its_own_process() -> None:
    """``fjmcp standin-forgejo --port 0`` prints its URL, serves Forgejo's
    version and user endpoints there, and exits cleanly on SIGINT."""
    reactor = _reactor()
    watcher = _Watcher()
    argv = [
        str(FJMCP),
        "standin-forgejo",
        "--port",
        "0",
        "--user",
        "alice:pw",
        "--client",
        f"{CLIENT_ID}:{CLIENT_SECRET}:{REDIRECT_URI}",
    ]
    process = reactor.spawnProcess(watcher, argv[0], argv, env=dict(os.environ))
    try:
        line = await watcher.first_line.addTimeout(WAIT, reactor)
        assert line.startswith("stand-in Forgejo")
        base_url = line.rsplit(" ", 1)[1]
        assert base_url.startswith("http://127.0.0.1:")
        http = plain_http(reactor)
        version = await http.get(f"{base_url}/api/v1/version")
        assert version.code == 200 and "version" in await version.json()
        user = await http.get(f"{base_url}/api/v1/user")
        assert user.code == 401
        await user.content()
    finally:
        if watcher.ended.called is False:
            process.signalProcess("INT")
    code = await watcher.ended.addTimeout(WAIT, reactor)
    assert code == 0, watcher.err.decode(errors="replace")
