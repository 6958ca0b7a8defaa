# -*- test-case-name: tests.bridge.test_router -*-
"""
Tests for `fjmcp.bridge.router`: the routing rule (table-driven), and the
session bridge end to end through ``/mcp`` on an in-memory child:
interleaved requests, progress by token, sampling round trip, the GET
queue, disconnect and resume, child exit, id namespacing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent

from fjmcp.bridge.jsonrpc import parse_line
from fjmcp.bridge.replay import Stream
from fjmcp.bridge.router import BridgeSettings, Exchange, SessionBridge, Target, route
from fjmcp.interfaces import ChildExit
from tests.bridge.support import Harness, line, note, result, rpc


class _Writer:
    def __init__(self, closed: bool) -> None:
        self.closed = closed


def _exchange(name: str, mode: str, token: str | None = None) -> Exchange:
    """mode: 'open' (SSE, attached), 'gone' (SSE, detached), 'json' (no stream)."""
    stream = None
    if mode != "json":
        stream = Stream(1, False, 1000, 60.0, Clock(), lambda s: None)
        stream.writer = _Writer(closed=False) if mode == "open" else None  # type: ignore[assignment]
    return Exchange(
        id_json=json.dumps(name),
        method="tools/call",
        progress_json=json.dumps(token) if token else None,
        generation=1,
        stream=stream,
    )


PROGRESS_B = line(
    note("notifications/progress", {"progressToken": "tb", "progress": 1})
)
PROGRESS_X = line(
    note("notifications/progress", {"progressToken": "zz", "progress": 1})
)
LOG = line(note("notifications/message", {"level": "info", "data": "x"}))
SAMPLING = line(rpc(9, "sampling/createMessage", {"messages": []}))

# (message, in-flight exchanges "name:mode[:token]", GET stream open) -> target
ROUTES: list[tuple[bytes, list[str], bool, str]] = [
    # progress follows its token, whatever else is open
    (PROGRESS_B, ["a:open:ta", "b:open:tb"], True, "b"),
    (PROGRESS_B, ["a:open:ta", "b:gone:tb"], True, "b"),
    # unknown token: the general rule
    (PROGRESS_X, ["a:open:ta"], False, "a"),
    (PROGRESS_X, [], True, "GET"),
    # token of a JSON-mode request: the general rule
    (PROGRESS_B, ["b:json:tb"], True, "GET"),
    # the only request in flight gets it, even over an open GET stream
    (LOG, ["a:open"], True, "a"),
    (SAMPLING, ["a:open"], True, "a"),
    (LOG, ["a:gone"], True, "a"),
    # several in flight: the GET stream
    (LOG, ["a:open", "b:open"], True, "GET"),
    (SAMPLING, ["a:open", "b:open"], True, "GET"),
    # no GET stream: the latest request with an open stream
    (LOG, ["a:open", "b:open"], False, "b"),
    (LOG, ["a:open", "b:gone"], False, "a"),
    (SAMPLING, ["a:open", "b:json"], False, "a"),
    # the only request is JSON-mode: GET stream, else queue
    (LOG, ["a:json"], True, "GET"),
    (LOG, ["a:json"], False, "QUEUE"),
    # nothing open anywhere: queue
    (LOG, [], False, "QUEUE"),
    (SAMPLING, ["a:gone", "b:gone"], False, "QUEUE"),
]


@pytest.mark.parametrize(("raw", "flights", "get_open", "expected"), ROUTES)
def test_routing_rule_table(
    raw: bytes, flights: list[str], get_open: bool, expected: str
) -> None:
    """Each row of the routing rule sends the message where the issue says."""
    exchanges = []
    for spec in flights:
        parts = spec.split(":")
        exchanges.append(
            _exchange(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        )
    msg = parse_line(raw)[0]
    target, ex = route(msg, exchanges, get_open)
    if expected == "GET":
        assert target is Target.STANDALONE
    elif expected == "QUEUE":
        assert target is Target.QUEUE
    else:
        assert target is Target.EXCHANGE and ex is not None
        assert ex.id_json == json.dumps(expected)


def test_responses_route_by_raw_id() -> None:
    """A response goes to the exchange with its exact raw id, or is dropped."""
    exchanges = [_exchange("1", "open")]
    msg = parse_line(result(1))[0]
    assert route(msg, exchanges, False) == (Target.DROP, None)
    msg = parse_line(result("1"))[0]
    assert route(msg, exchanges, False)[1] is exchanges[0]


# -- end to end through /mcp ----------------------------------------------------


def _session(h: Harness) -> tuple[str, Any]:
    sid, child, _ = h.initialize()
    h.post(note("notifications/initialized"), session=sid)
    return sid, child


def test_interleaved_requests_each_get_their_own_answer() -> None:
    """Two concurrent calls answered out of order each end on their own stream."""
    h = Harness()
    sid, child = _session(h)
    a = h.post(rpc(1, "tools/call", {"name": "slow"}), session=sid)
    b = h.post(rpc("1", "tools/call", {"name": "fast"}), session=sid)
    child.emit(result("1", {"v": "b"}))
    assert (b.finished, a.finished) == (1, 0)
    child.emit(result(1, {"v": "a"}))
    assert a.finished == 1
    assert a.messages() == [{"jsonrpc": "2.0", "id": 1, "result": {"v": "a"}}]
    assert b.messages() == [{"jsonrpc": "2.0", "id": "1", "result": {"v": "b"}}]


def test_progress_goes_to_the_request_with_that_token() -> None:
    """Progress for each of two calls lands on the stream of its own call."""
    h = Harness()
    sid, child = _session(h)
    a = h.post(
        rpc(1, "tools/call", {"name": "x", "_meta": {"progressToken": "A"}}),
        session=sid,
    )
    b = h.post(
        rpc(2, "tools/call", {"name": "y", "_meta": {"progressToken": 7}}), session=sid
    )
    child.emit(
        line(note("notifications/progress", {"progressToken": 7, "progress": 1}))
    )
    child.emit(
        line(note("notifications/progress", {"progressToken": "A", "progress": 2}))
    )
    child.emit(result(1))
    child.emit(result(2))
    assert [m.get("params", {}).get("progress") for m in a.messages()] == [2, None]
    assert [m.get("params", {}).get("progress") for m in b.messages()] == [1, None]


def test_sampling_round_trip() -> None:
    """A child's sampling request reaches the call's stream; the answer goes back."""
    h = Harness()
    sid, child = _session(h)
    call = h.post(rpc(5, "tools/call", {"name": "ask"}), session=sid)
    child.emit(line(rpc(0, "sampling/createMessage", {"messages": []})))
    assert call.messages()[-1]["method"] == "sampling/createMessage"
    answer = {"jsonrpc": "2.0", "id": 0, "result": {"role": "assistant"}}
    reply = h.post(answer, session=sid)
    assert reply.status == 202 and reply.body == b""
    assert json.loads(child.written[-1]) == answer
    child.emit(result(5, {"content": [{"type": "text", "text": "done"}]}))
    assert call.finished and call.messages()[-1]["id"] == 5


def test_messages_without_any_stream_wait_for_the_next_get_stream() -> None:
    """With no stream open, notifications queue and flush into the next GET stream."""
    h = Harness()
    sid, child = _session(h)
    child.emit(line(note("notifications/tools/list_changed")))
    child.emit(line(note("notifications/message", {"level": "info", "data": 1})))
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert [m["method"] for m in get.messages()] == [
        "notifications/tools/list_changed",
        "notifications/message",
    ]
    child.emit(line(note("notifications/resources/updated", {"uri": "x"})))
    assert get.messages()[-1]["method"] == "notifications/resources/updated"


def test_queue_is_bounded() -> None:
    """The per-session queue keeps only the newest messages up to its limit."""
    h = Harness()
    sid, child = _session(h)
    bridge = h.registry.get(sid).router  # type: ignore[union-attr]
    assert isinstance(bridge, SessionBridge)
    limit = bridge.settings.queue_limit
    for n in range(limit + 5):
        child.emit(line(note("notifications/message", {"data": n})))
    assert bridge.queued() == limit and bridge.dropped == 5
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert get.messages()[0]["params"]["data"] == 5


def test_disconnect_then_resume_gets_the_missed_response() -> None:
    """A dropped POST stream keeps buffering; GET + Last-Event-ID replays the rest."""
    h = Harness()
    sid, child = _session(h)
    call = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    child.emit(line(note("notifications/message", {"data": "first"})))
    seen = call.events()
    last_id = seen[-1]["id"]
    call.disconnect()
    child.emit(line(note("notifications/message", {"data": "second"})))
    child.emit(result(1, {"ok": True}))
    assert len(call.events()) == len(seen)  # nothing written after the disconnect
    again = h.request(
        b"GET",
        session=sid,
        accept=b"text/event-stream",
        headers={b"last-event-id": last_id.encode()},
    )
    assert [m.get("params", {}).get("data") for m in again.messages()] == [
        "second",
        None,
    ]
    assert again.messages()[-1]["result"] == {"ok": True}
    assert again.finished


def test_resume_from_the_priming_event_replays_everything() -> None:
    """Resuming from the priming event's id replays every message of the stream."""
    h = Harness()
    sid, child = _session(h)
    call = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    priming = call.events()[0]
    assert priming["data"] == "" and priming["retry"] is not None
    call.disconnect()
    child.emit(result(1))
    again = h.request(
        b"GET",
        session=sid,
        accept=b"text/event-stream",
        headers={b"last-event-id": priming["id"].encode()},
    )
    assert again.messages() == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


def test_replay_buffer_is_dropped_after_the_resume_window() -> None:
    """After stream_resume_window a dropped stream cannot be resumed any more."""
    h = Harness()
    sid, child = _session(h)
    call = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    last = call.events()[-1]["id"]
    call.disconnect()
    child.emit(result(1))
    bridge = h.registry.get(sid).router  # type: ignore[union-attr]
    assert isinstance(bridge, SessionBridge)
    assert bridge.resumable(last.encode())
    h.clock.advance(h.config.stream_resume_window + 1)
    assert not bridge.resumable(last.encode())
    assert bridge.stream_count() == 0


def test_child_exit_fails_every_waiting_stream_and_ends_the_session() -> None:
    """-32603 with a reason on each waiting stream; the session id then gets 404."""
    h = Harness()
    sid, child = _session(h)
    a = h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    b = h.post(
        rpc(2, "tools/call", {"name": "y"}), session=sid, accept=b"application/json"
    )
    child.exit(ChildExit("exited", exit_code=3))
    for req in (a,):
        err = req.messages()[-1]
        assert err["id"] == 1 and err["error"]["code"] == -32603
        assert "status 3" in err["error"]["message"]
        assert req.finished
    assert b.json()["error"]["code"] == -32603 and b.json()["id"] == 2
    assert h.post(rpc(3, "ping"), session=sid).status == 404


def test_duplicate_in_flight_id_is_refused_without_reaching_the_child() -> None:
    """A request reusing an id in flight gets an error and never reaches the child."""
    h = Harness()
    sid, child = _session(h)
    h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    before = len(child.written)
    dup = h.post(rpc(1, "tools/list"), session=sid)
    assert dup.status == 400
    assert dup.json()["id"] == 1 and dup.json()["error"]["code"] == -32600
    assert len(child.written) == before
    child.emit(result(1))
    assert h.post(rpc(1, "tools/list"), session=sid).status == 200


def test_later_generations_server_requests_are_namespaced() -> None:
    """Server->client requests of child generation 2 get prefixed ids, mapped back."""
    h = Harness()
    sid, child = _session(h)
    session = h.registry.get(sid)
    assert session is not None
    bridge = session.router
    assert isinstance(bridge, SessionBridge)
    other = h.spawner.spawn(child.spec, child.receiver)
    session.children[2] = other
    session.generation = 2
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    bridge.line_received(2, line(rpc(0, "roots/list")))
    bridge.line_received(1, line(rpc(0, "roots/list")))
    ids = [m["id"] for m in get.messages()]
    assert ids == ["fjmcp-g2-0", 0]
    h.post({"jsonrpc": "2.0", "id": "fjmcp-g2-0", "result": {"roots": []}}, session=sid)
    h.post({"jsonrpc": "2.0", "id": 0, "result": {"roots": [1]}}, session=sid)
    assert json.loads(other.written[-1]) == {
        "jsonrpc": "2.0",
        "id": 0,
        "result": {"roots": []},
    }
    assert json.loads(child.written[-1])["result"] == {"roots": [1]}


def test_cancellation_goes_to_the_child_holding_the_request() -> None:
    """notifications/cancelled for a request on an old child goes to that child."""
    h = Harness()
    sid, child = _session(h)
    session = h.registry.get(sid)
    assert session is not None
    h.post(rpc(1, "tools/call", {"name": "x"}), session=sid)
    newer = h.spawner.spawn(child.spec, child.receiver)
    session.children[2] = newer
    session.generation = 2
    cancel = note("notifications/cancelled", {"requestId": 1})
    assert h.post(cancel, session=sid).status == 202
    assert json.loads(child.written[-1]) == cancel
    assert newer.written == []


def test_unparseable_child_output_is_dropped_not_fatal() -> None:
    """A line that is not JSON-RPC is logged and dropped; the call still completes."""
    h = Harness()
    sid, child = _session(h)
    call = h.post(rpc(1, "ping"), session=sid)
    child.emit(b"this is not json")
    child.emit(b'{"jsonrpc":"2.0","id":99,"result":{}}')  # unknown id
    child.emit(result(1))
    assert call.finished and call.messages() == [
        {"jsonrpc": "2.0", "id": 1, "result": {}}
    ]


def test_queue_is_bounded_in_bytes_too(logged: list[LogEvent]) -> None:
    """
    Big messages with no stream are dropped by size (oldest first, the newest
    kept), with one warning per overflow and a count when a GET stream opens.
    """
    h = Harness()
    sid, child = _session(h)
    bridge = h.registry.get(sid).router  # type: ignore[union-attr]
    assert isinstance(bridge, SessionBridge)
    bridge.settings = BridgeSettings(queue_bytes=3000)
    for n in range(10):
        child.emit(line(note("notifications/message", {"n": n, "data": "x" * 1000})))
    assert bridge.queued() == 2 and bridge.dropped == 8
    warnings = [e for e in logged if "dropping the oldest" in formatEvent(e)]
    assert len(warnings) == 1
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert [m["params"]["n"] for m in get.messages()] == [8, 9]
    assert any("8 queued messages were dropped" in formatEvent(e) for e in logged)
    bridge.settings = BridgeSettings(queue_bytes=10)
    get.disconnect()
    child.emit(line(note("notifications/message", {"data": "y" * 100})))
    assert bridge.queued() == 1  # one message over the bound is still kept


def test_slow_reader_cut_is_logged_and_resumable(logged: list[LogEvent]) -> None:
    """A GET stream cut as a slow reader is logged; Last-Event-ID resumes it."""
    h = Harness()
    sid, child = _session(h)
    bridge = h.registry.get(sid).router  # type: ignore[union-attr]
    assert isinstance(bridge, SessionBridge)
    bridge.settings = BridgeSettings(buffer_cap=500)
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    seen = get.events()[-1]["id"]  # the priming event (2025-11-25)
    get.producer.pauseProducing()
    for n in range(5):
        child.emit(line(note("notifications/message", {"n": n, "data": "x" * 500})))
    assert get.aborted
    assert any("cut (slow reader" in formatEvent(e) for e in logged)
    again = h.request(
        b"GET",
        session=sid,
        accept=b"text/event-stream",
        headers={b"last-event-id": seen.encode()},
    )
    assert [m["params"]["n"] for m in again.messages()] == [0, 1, 2, 3, 4]
