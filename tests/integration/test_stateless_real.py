# -*- test-case-name: tests.integration.test_stateless_real -*-
"""
Stateless (2026-07-28) requests over real loopback HTTP with real child
processes, beside a 2025-11-25 session of the same user on the same
broker at the same time: each kind gets its own child, neither sees the
other's ids, and text no UTF-8 carries never reaches (or crashes) either
child. Also progress and logs of a stateless call, and the -32021 answer
when a child asks a client for a capability it did not declare.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.defer import Deferred, gatherResults

from tests.bridge.stateless_support import envelope, routing_headers
from tests.integration.test_bridge_real import (
    ACCEPT_BOTH,
    AUTH,
    WAIT,
    Broker,
    Stream,
    _call,
    _reactor,
    _with_broker,
    open_session,
    post,
)

pytestmark = pytest.mark.integration


async def stateless(broker: Broker, body: dict[str, Any]) -> Any:
    """POST a stateless request with its routing headers; the unread response."""
    headers: dict[bytes | str, bytes | str] = {
        b"content-type": b"application/json",
        b"accept": ACCEPT_BOTH,
        **AUTH,
    }
    for name, value in routing_headers(body).items():
        headers[name] = value
    d = treq.post(
        broker.url, json.dumps(body).encode(), headers=headers, unbuffered=True
    )
    return await d.addTimeout(WAIT, _reactor())


async def json_of(response: Any) -> Any:
    """A JSON response's body."""
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    return json.loads(await treq.content(response))


async def first_answer(response: Any) -> dict[str, Any]:
    """The answer of a request: its JSON body, or the last message of its stream."""
    kind = response.headers.getRawHeaders(b"content-type")[0]
    if kind == b"application/json":
        return dict(json.loads(await treq.content(response)))
    stream = Stream(response)
    while True:
        msg = await stream.next()
        if "id" in msg:
            return msg


@pytest_twisted.ensureDeferred
async def test_a_session_client_and_a_stateless_client_at_the_same_time() -> None:
    """
    One user, one broker: a 2025-11-25 session and a 2026-07-28 client call
    the echo tool concurrently with the same request id; each gets its own
    answer from its own child; a lone surrogate from either is a parse error
    and both children keep serving.
    """

    async def run(broker: Broker) -> None:
        sid, init = await open_session(broker)
        assert init["protocolVersion"] == "2025-11-25"
        discover = await json_of(
            await stateless(broker, envelope(1, "server/discover"))
        )
        assert discover["result"]["supportedVersions"] == ["2026-07-28"]
        assert (
            discover["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
            == "fjmcp-test-echo"
        )
        session_call = post(broker, _call(7, "echo", {"message": "session"}), sid)
        modern_call = stateless(
            broker,
            envelope(
                7, "tools/call", {"name": "echo", "arguments": {"message": "new"}}
            ),
        )
        responses = await gatherResults(
            [
                Deferred.fromCoroutine(session_call),
                Deferred.fromCoroutine(modern_call),
            ]
        )
        session_answer, modern_answer = [await first_answer(r) for r in responses]
        assert session_answer["id"] == modern_answer["id"] == 7
        assert session_answer["result"]["content"][0]["text"] == "session"
        assert modern_answer["result"]["content"][0]["text"] == "new"
        assert modern_answer["result"]["resultType"] == "complete"
        assert "resultType" not in session_answer["result"]
        alice = broker.registry.owners_of("alice")
        assert len(alice) == 2
        assert broker.registry.identity_owners() == 1

        bad = (
            b'{"jsonrpc":"2.0","id":9,"method":"tools/call",'
            b'"params":{"name":"\\ud800"}}'
        )
        extras: list[dict[bytes | str, bytes | str]] = [
            {b"mcp-session-id": sid.encode()},
            dict(routing_headers(envelope(9, "tools/call", {"name": "x"})).items()),
        ]
        for extra in extras:
            headers: dict[bytes | str, bytes | str] = {
                b"content-type": b"application/json",
                b"accept": ACCEPT_BOTH,
                **AUTH,
                **extra,
            }
            refused = await treq.post(broker.url, bad, headers=headers).addTimeout(
                WAIT, _reactor()
            )
            assert refused.code == 400
            assert (await json_of(refused))["error"]["code"] == -32700

        again = await first_answer(
            await post(broker, _call(8, "echo", {"message": "still"}), sid)
        )
        assert again["result"]["content"][0]["text"] == "still"
        modern_again = await first_answer(
            await stateless(
                broker,
                envelope(
                    8, "tools/call", {"name": "echo", "arguments": {"message": "up"}}
                ),
            )
        )
        assert modern_again["result"]["content"][0]["text"] == "up"
        assert len(broker.registry.owners_of("alice")) == 2

    await _with_broker("echo_server.py", run)


@pytest_twisted.ensureDeferred
async def test_stateless_progress_and_logs_reach_that_requests_stream() -> None:
    """
    A stateless call with a progress token and logLevel info gets its
    progress (with its own token) and the info log, on its own SSE stream.
    """

    async def run(broker: Broker) -> None:
        body = envelope(
            "c1",
            "tools/call",
            {"name": "chatty", "arguments": {"sampling": False, "elicitation": False}},
            log_level="info",
            progress="mine",
        )
        response = await stateless(broker, body)
        assert response.headers.getRawHeaders(b"x-accel-buffering") == [b"no"]
        stream = Stream(response)
        seen = []
        while True:
            msg = await stream.next()
            if msg.get("method") == "notifications/progress":
                assert msg["params"]["progressToken"] == "mine"
                seen.append("progress")
            elif msg.get("method") == "notifications/message":
                seen.append(msg["params"]["level"])
            else:
                assert msg["id"] == "c1"
                assert msg["result"]["resultType"] == "complete"
                break
        assert seen.count("progress") == 4
        assert "info" in seen and "debug" not in seen
        await stream.done

    await _with_broker("chatty_server.py", run)


@pytest_twisted.ensureDeferred
async def test_an_undeclared_capability_is_refused_and_the_child_goes_on() -> None:
    """
    The child asks for sampling during a call from a client that declared
    no capability: 400 with -32021; the child then serves the next call.
    """

    async def run(broker: Broker) -> None:
        body = envelope(
            1,
            "tools/call",
            {"name": "chatty", "arguments": {"sampling": True, "elicitation": False}},
        )
        refused = await stateless(broker, body)
        assert refused.code == 400
        error = (await json_of(refused))["error"]
        assert error["code"] == -32021
        assert error["data"] == {"requiredCapabilities": {"sampling": {}}}
        listed = await json_of(await stateless(broker, envelope(2, "tools/list")))
        assert "chatty" in [t["name"] for t in listed["result"]["tools"]]

    await _with_broker("chatty_server.py", run)


@pytest_twisted.ensureDeferred
async def test_sampling_and_elicitation_through_input_required_results() -> None:
    """
    A real child asks for sampling, then elicitation, during one call: two
    input-required rounds; the retries' answers reach it and the call's
    answer carries them.
    """

    async def run(broker: Broker) -> None:
        caps: dict[str, Any] = {"sampling": {}, "elicitation": {}}
        params = {"name": "chatty", "arguments": {}}
        first = await json_of(
            await stateless(
                broker, envelope(1, "tools/call", params, capabilities=caps)
            )
        )
        asked = first["result"]["inputRequests"]
        [(key, request)] = asked.items()
        assert request["method"] == "sampling/createMessage"
        retry = envelope(2, "tools/call", params, capabilities=caps)
        retry["params"]["requestState"] = first["result"]["requestState"]
        retry["params"]["inputResponses"] = {
            key: {
                "role": "assistant",
                "content": {"type": "text", "text": "hi there"},
                "model": "test",
            }
        }
        second = await json_of(await stateless(broker, retry))
        [(key, request)] = second["result"]["inputRequests"].items()
        assert request["method"] == "elicitation/create"
        last = envelope(3, "tools/call", params, capabilities=caps)
        last["params"]["requestState"] = second["result"]["requestState"]
        last["params"]["inputResponses"] = {
            key: {"action": "accept", "content": {"name": "Ada"}}
        }
        final = await first_answer(await stateless(broker, last))
        assert final["id"] == 3
        structured = final["result"]["structuredContent"]
        assert structured["sampled"] == "hi there"
        assert structured["elicited"] == {
            "action": "accept",
            "content": {"name": "Ada"},
        }

    await _with_broker("chatty_server.py", run)
