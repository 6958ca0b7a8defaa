# -*- test-case-name: tests.integration.test_bridge_real -*-
"""
``/mcp`` over real loopback HTTP with real child processes (the servers in
``tests/children/``): the echo round trip, the environment a child sees,
progress + logging + sampling + elicitation in the middle of a call, a
child that crashes mid-call, one that ignores SIGTERM, and the user's
Forgejo token kept out of the broker's log.

The bearer check is the fixed-identity authenticator of the unit tests (it
refuses unknown tokens); everything between it and the child is the
production code: `BrokerSite`, `McpResource`, `SessionRegistry`,
`Supervisor`, `child_spec`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent

from fjmcp.interfaces import UpstreamGrant, UpstreamToken
from fjmcp.policy.book import PolicyBook
from fjmcp.sessions.registry import SessionRegistry, SessionSettings
from fjmcp.settings import child_settings, mcp_settings, site_settings
from fjmcp.supervisor.environment import child_spec
from fjmcp.supervisor.supervisor import Supervisor
from fjmcp.web.mcp_resource import McpResource
from fjmcp.web.root import build_root
from fjmcp.web.site import BrokerSite
from tests.bridge.support import FixedAuthenticator, challenge, make_config, parse_sse

pytestmark = pytest.mark.integration

WAIT = 20.0
CHILDREN = Path(__file__).resolve().parent.parent / "children"
FORGEJO_TOKEN = "gto_bridge-REAL-token-7781"
BROKER_SECRET = "broker-client-secret-DO-NOT-LEAK"
AUTH: dict[bytes | str, bytes | str] = {b"authorization": b"Bearer alice-token"}
ACCEPT_BOTH = b"application/json, text/event-stream"


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class _Tokens:
    """The user's Forgejo token (one, fixed)."""

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        d: Deferred[UpstreamToken] = Deferred()
        d.callback(UpstreamToken(grant.user, FORGEJO_TOKEN, 1e12, 1, grant.scopes))
        return d


class Broker:
    """A listening ``/mcp`` on 127.0.0.1 with real children of one script."""

    def __init__(
        self,
        script: str,
        *,
        stop_grace: float = 3.0,
        auth: FixedAuthenticator | None = None,
        **settings: Any,
    ) -> None:
        reactor = _reactor()
        self.config = make_config(
            forgejo_client_secret=BROKER_SECRET,
            child_command=(sys.executable, "-B", str(CHILDREN / script)),
            child_env_passthrough=("ECHO_STDERR_TOKEN",),
            child_stop_grace=stop_grace,
            **settings,
        )
        environ = {
            "ECHO_STDERR_TOKEN": "FORGEJO_ACCESS_TOKEN",
            "FJMCP_FORGEJO_CLIENT_SECRET": BROKER_SECRET,
            "HOME": "/root",
        }
        self.supervisor = Supervisor(reactor)
        children = child_settings(self.config)
        self.registry = SessionRegistry(
            self.supervisor,
            _Tokens(),
            lambda token, label: child_spec(
                children, token=token, label=label, environ=environ
            ),
            reactor,
            SessionSettings(
                max_children=8, max_children_per_user=8, drain_timeout=120.0
            ),
        )
        self.resource = McpResource(
            settings=mcp_settings(self.config),
            authenticator=auth or FixedAuthenticator(),
            challenge=challenge,
            registry=self.registry,
            clock=reactor,
            policies=PolicyBook(self.config.policy),
        )
        self.site = BrokerSite(
            build_root([], {b"mcp": self.resource}),
            reactor=reactor,
            settings=site_settings(self.config),
        )
        self.port: Any = None
        self.url = ""

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self.port = _reactor().listenTCP(0, self.site, interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/mcp"

    async def stop(self) -> None:
        """Stop every child and the port."""
        await self.supervisor.stop_all()
        await self.port.stopListening()


class Stream:
    """An SSE response read incrementally; `next` awaits the next JSON message."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.buffer = b""
        self.messages: list[dict[str, Any]] = []
        self.waiters: list[Deferred[None]] = []
        self.done = treq.collect(response, self._feed)
        self.done.addBoth(self._finished)
        self._read = 0

    def _feed(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            for event in parse_sse(block + b"\n\n"):
                if event["data"]:
                    self.messages.append(json.loads(event["data"]))
        self._wake()

    def _finished(self, result: object) -> None:
        self._wake()

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(None)

    async def next(self) -> dict[str, Any]:
        """The next message (fails after WAIT seconds)."""
        while self._read >= len(self.messages):
            if self.done.called:
                raise AssertionError("stream ended")
            d: Deferred[None] = Deferred()
            self.waiters.append(d)
            await d.addTimeout(WAIT, _reactor())
        self._read += 1
        return self.messages[self._read - 1]


async def post(
    broker: Broker,
    message: Any,
    session: str | None = None,
    accept: bytes = ACCEPT_BOTH,
) -> Any:
    """POST one message; returns the (unread) response."""
    headers: dict[bytes | str, bytes | str] = {
        b"content-type": b"application/json",
        b"accept": accept,
        **AUTH,
    }
    if session:
        headers[b"mcp-session-id"] = session.encode()
    d = treq.post(
        broker.url, json.dumps(message).encode(), headers=headers, unbuffered=True
    )
    return await d.addTimeout(WAIT, _reactor())


async def open_session(broker: Broker) -> tuple[str, dict[str, Any]]:
    """initialize + notifications/initialized; (session id, initialize result)."""
    response = await post(
        broker,
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"sampling": {}, "elicitation": {}},
                "clientInfo": {"name": "it", "version": "1"},
            },
        },
    )
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
    sid = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
    init = await Stream(response).next()
    assert init["id"] == 0
    ack = await post(
        broker, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid
    )
    assert ack.code == 202
    await treq.content(ack)
    return sid, init["result"]


def _call(rid: int, name: str, arguments: dict[str, Any], token: Any = None) -> Any:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


async def _with_broker(script: str, test: Any, **kw: Any) -> None:
    broker = Broker(script, **kw)
    await broker.start()
    try:
        await test(broker)
    finally:
        await broker.stop()


@pytest_twisted.ensureDeferred
async def test_echo_round_trip_with_the_users_token_only(logged: Any) -> None:
    """A call goes through; the child has its token and none of the broker's secrets."""

    async def run(broker: Broker) -> None:
        sid, init = await open_session(broker)
        assert init["protocolVersion"] == "2025-11-25"
        response = await post(broker, _call(1, "echo", {"message": "héllo"}), sid)
        answer = await Stream(response).next()
        assert answer == {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"content": [{"type": "text", "text": "héllo"}]},
        }
        response = await post(broker, _call(2, "whoami_env", {}), sid)
        info = (await Stream(response).next())["result"]["structuredContent"]
        assert info["token_set"] is True
        names = set(info["env_names"])
        assert "FORGEJO_ACCESS_TOKEN" in names and "FORGEJO_URL" in names
        assert "FJMCP_FORGEJO_CLIENT_SECRET" not in names and "HOME" not in names
        # JSON mode: one application/json body.
        response = await post(
            broker,
            _call(3, "echo", {"message": "json"}),
            sid,
            accept=b"application/json",
        )
        assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
        body = json.loads(await treq.content(response))
        assert body["result"]["content"][0]["text"] == "json"
        gone = await treq.delete(
            broker.url, headers={**AUTH, b"mcp-session-id": sid.encode()}
        )
        assert gone.code == 204
        await treq.content(gone)

    await _with_broker("echo_server.py", run)
    text = "\n".join(formatEvent(e) or "" for e in logged)
    assert "echo_server: starting with token" in text  # the child did log it ...
    assert FORGEJO_TOKEN not in text  # ... and the broker redacted it
    assert BROKER_SECRET not in text


@pytest_twisted.ensureDeferred
async def test_chatty_call_with_progress_logging_sampling_and_elicitation() -> None:
    """Mid-call messages reach the call's stream; the answers reach the child."""

    async def run(broker: Broker) -> None:
        sid, _ = await open_session(broker)
        response = await post(broker, _call(7, "chatty", {}, token="tok-7"), sid)
        stream = Stream(response)
        seen: list[str] = []
        while True:
            msg = await stream.next()
            method = msg.get("method")
            if method == "notifications/progress":
                assert msg["params"]["progressToken"] == "tok-7"
                seen.append("progress")
            elif method == "notifications/message":
                seen.append("log")
            elif method == "sampling/createMessage":
                seen.append("sampling")
                reply = {
                    "jsonrpc": "2.0",
                    "id": msg["id"],
                    "result": {
                        "role": "assistant",
                        "content": {"type": "text", "text": "hi there"},
                        "model": "test",
                    },
                }
                ack = await post(broker, reply, sid)
                assert ack.code == 202
                await treq.content(ack)
            elif method == "elicitation/create":
                seen.append("elicitation")
                reply = {
                    "jsonrpc": "2.0",
                    "id": msg["id"],
                    "result": {"action": "accept", "content": {"name": "Ada"}},
                }
                ack = await post(broker, reply, sid)
                assert ack.code == 202
                await treq.content(ack)
            else:
                assert msg["id"] == 7
                structured = msg["result"]["structuredContent"]
                assert structured["sampled"] == "hi there"
                assert structured["elicited"] == {
                    "action": "accept",
                    "content": {"name": "Ada"},
                }
                break
        assert seen[:2] == ["progress", "log"]
        assert "sampling" in seen and "elicitation" in seen
        assert seen.count("progress") == 4
        await stream.done

    await _with_broker("chatty_server.py", run)


@pytest_twisted.ensureDeferred
async def test_child_crash_mid_call_fails_the_stream_and_ends_the_session() -> None:
    """The waiting stream gets -32603 naming the exit; the session then answers 404."""

    async def run(broker: Broker) -> None:
        sid, _ = await open_session(broker)
        response = await post(broker, _call(3, "crash", {"code": 9}), sid)
        stream = Stream(response)
        first = await stream.next()
        assert first["method"] == "notifications/message"
        error = await stream.next()
        assert error["id"] == 3 and error["error"]["code"] == -32603
        assert "status 9" in error["error"]["message"]
        await stream.done
        after = await post(broker, {"jsonrpc": "2.0", "id": 4, "method": "ping"}, sid)
        assert after.code == 404
        await treq.content(after)

    await _with_broker("crash_server.py", run)


@pytest_twisted.ensureDeferred
async def test_delete_kills_a_child_that_ignores_sigterm() -> None:
    """DELETE answers 204 at once; the stubborn child is killed after the grace."""

    async def run(broker: Broker) -> None:
        sid, _ = await open_session(broker)
        session = broker.registry.get(sid)
        assert session is not None and session.child is not None
        ended = session.child.ended
        gone = await treq.delete(
            broker.url, headers={**AUTH, b"mcp-session-id": sid.encode()}
        )
        assert gone.code == 204
        await treq.content(gone)
        exit = await ended.addTimeout(WAIT, _reactor())
        assert exit.signal == 9 or exit.reason in ("signalled", "stopped")
        assert broker.supervisor.live == 0

    await _with_broker("stubborn_server.py", run, stop_grace=0.5)
