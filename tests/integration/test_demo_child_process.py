# -*- test-case-name: tests.integration.test_demo_child_process -*-
"""
``python -m fjmcp.demo_child`` as a real process against a real (stand-in)
Forgejo on loopback: ``whoami`` answers the login the token belongs to, a
bad token is an error result that does not contain it, and the child ends
when its stdin closes, after answering the calls in flight.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from fjmcp.standin.app import (
    StandinClient,
    StandinConfig,
    StandinUser,
    start_standin,
)

pytestmark = pytest.mark.integration

reactor: Any = _reactor
REDIRECT = "http://127.0.0.1:9/cb"


class Child(ProcessProtocol):
    """Feeds lines to the child, closes its stdin, collects what it writes."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[int | None] = Deferred()

    def connectionMade(self) -> None:
        """Send every line, then end of input."""
        assert self.transport is not None
        for line in self.lines:
            self.transport.write(json.dumps(line).encode() + b"\n")
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        """Keep stdout."""
        self.out += data

    def errReceived(self, data: bytes) -> None:
        """Keep stderr."""
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        """Fire with the exit code."""
        if isinstance(reason.value, ProcessDone):
            self.ended.callback(0)
        else:
            self.ended.callback(getattr(reason.value, "exitCode", None))


async def _token(base_url: str) -> str:
    """A Forgejo access token for alice, through the stand-in's OAuth flow."""
    import treq

    response = await treq.get(
        base_url + "/login/oauth/authorize",
        params={
            "client_id": "c",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "state": "s",
            "code_challenge": "verifier-verifier-verifier-verifier-verifier-x",
            "code_challenge_method": "plain",
        },
        allow_redirects=False,
        timeout=5,
    )
    location = response.headers.getRawHeaders("location")[0]
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = await treq.post(
        base_url + "/login/oauth/access_token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "c",
            "client_secret": "client-secret",
            "redirect_uri": REDIRECT,
            "code_verifier": "verifier-verifier-verifier-verifier-verifier-x",
        },
        timeout=5,
    )
    body = await response.json()
    token: str = body["access_token"]
    return token


async def _run_child(env: dict[str, str], lines: list[dict[str, Any]]) -> Child:
    child = Child(lines)
    argv = [sys.executable, "-m", "fjmcp.demo_child"]
    reactor.spawnProcess(child, argv[0], argv, env=env)
    ended = child.ended
    ended.addTimeout(30, reactor)
    code = await ended
    assert code == 0, child.err.decode()
    return child


def _answers(child: Child) -> dict[Any, dict[str, Any]]:
    return {a["id"]: a for a in map(json.loads, child.out.decode().splitlines())}


CALLS: list[dict[str, Any]] = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}},
    },
]


@pytest_twisted.ensureDeferred
async def test_whoami_answers_the_forgejo_login_of_the_token() -> None:
    """The real child asks the stand-in's /api/v1/user with its token: alice."""
    config = StandinConfig(
        users=(StandinUser("alice", "pw"),),
        clients=(StandinClient("c", "client-secret", (REDIRECT,)),),
        auto_approve="alice",
    )
    standin, port = await start_standin(reactor, config)
    try:
        token = await _token(standin.base_url)
        env = {"FORGEJO_URL": standin.base_url, "FORGEJO_ACCESS_TOKEN": token}
        child = await _run_child(env, CALLS)
        answers = _answers(child)
        assert answers[1]["result"]["protocolVersion"] == "2025-06-18"
        assert answers[2]["result"] == {
            "content": [{"type": "text", "text": "alice"}],
            "isError": False,
        }

        bad = {"FORGEJO_URL": standin.base_url, "FORGEJO_ACCESS_TOKEN": "nope-token"}
        child = await _run_child(bad, CALLS)
        result = _answers(child)[2]["result"]
        assert result["isError"] is True
        assert "401" in result["content"][0]["text"]
        assert b"nope-token" not in child.out + child.err
    finally:
        stopped = port.stopListening()
        if isinstance(stopped, Deferred):
            await stopped
