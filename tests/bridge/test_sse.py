# -*- test-case-name: tests.bridge.test_sse -*-
"""Tests for `fjmcp.bridge.sse` and `fjmcp.bridge.replay`: encoding, slow readers."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from fjmcp.bridge.replay import Stream, parse_event_id
from fjmcp.bridge.sse import SseWriter, encode_comment, encode_event
from tests.bridge.support import TestRequest, parse_sse


def _strs() -> list[str]:
    return []


def _anys() -> list[Any]:
    return []


def _closed(writer: SseWriter) -> bool:
    return writer.closed


def _writer(
    clock: Clock, lost: list[str], cap: int = 100
) -> tuple[SseWriter, TestRequest]:
    req = TestRequest(b"GET", {})
    writer = SseWriter(
        req,
        clock,
        keepalive_interval=15.0,
        buffer_cap=cap,
        write_deadline=5.0,
        on_lost=lambda _w, reason: lost.append(reason),
    )
    writer.start()
    return writer, req


def test_event_encoding() -> None:
    """id, retry and one data line per payload line; empty data is a priming event."""
    assert encode_event(b'{"a":1}', "3-1") == b'id: 3-1\ndata: {"a":1}\n\n'
    assert encode_event(b"", "3-2", retry_ms=500) == b"id: 3-2\nretry: 500\ndata:\n\n"
    assert encode_event(b"x\ny\r\nz") == b"data: x\ndata: y\ndata: z\n\n"
    assert encode_comment("keep\nalive") == b": keep alive\n\n"


@given(st.binary(max_size=200).filter(lambda b: b"\r" not in b))
def test_encoded_events_parse_back(payload: bytes) -> None:
    """Whatever the payload (without CR), a standard parser gets it back intact."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return
    events = parse_sse(encode_event(payload, "1-1"))
    assert len(events) == 1 and events[0]["data"] == text and events[0]["id"] == "1-1"


def test_slow_reader_is_cut_after_the_deadline_but_not_before() -> None:
    """Over the cap while paused starts the deadline; still over it then: cut."""
    clock, lost = Clock(), _strs()
    writer, req = _writer(clock, lost)
    writer.pauseProducing()
    writer.write(b"x" * 150)
    clock.advance(4.9)
    assert not _closed(writer)
    clock.advance(0.2)
    assert _closed(writer) and req.aborted and "slow reader" in lost[0]


def test_reader_that_catches_up_is_kept() -> None:
    """Resuming before the deadline cancels it."""
    clock, lost = Clock(), _strs()
    writer, _ = _writer(clock, lost)
    writer.pauseProducing()
    writer.write(b"x" * 150)
    writer.resumeProducing()
    clock.advance(10)
    assert not writer.closed and lost == []


def test_far_over_the_cap_is_cut_at_once() -> None:
    """A writer that piles up several caps while paused is cut immediately."""
    clock, lost = Clock(), _strs()
    writer, _ = _writer(clock, lost)
    writer.pauseProducing()
    writer.write(b"x" * 1000)
    assert writer.closed and lost


def test_client_disconnect_stops_timers_and_reports_once() -> None:
    """notifyFinish failing ends the writer once; no keep-alive afterwards."""
    clock, lost = Clock(), _strs()
    writer, req = _writer(clock, lost)
    req.disconnect()
    assert writer.closed and lost == ["client disconnected"]
    assert clock.getDelayedCalls() == []
    writer.write(b"ignored")
    assert b"ignored" not in req.body


def test_finish_does_not_report_a_loss() -> None:
    """A normal end is not a lost connection."""
    clock, lost = Clock(), _strs()
    writer, req = _writer(clock, lost)
    writer.finish()
    assert req.finished == 1 and lost == [] and clock.getDelayedCalls() == []


def _stream(clock: Clock, gone: list[Any], max_bytes: int = 1000) -> Stream:
    return Stream(7, False, max_bytes, 60.0, clock, gone.append)


def test_replay_buffer_is_bounded_oldest_first() -> None:
    """Past max_bytes the oldest events go; a resume replays what is left."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone, max_bytes=60)
    for n in range(5):
        stream.send(b'{"n":%d}' % n)
    assert stream.buffered <= 60
    lost: list[str] = []
    writer, req = _writer(clock, lost)
    stream.attach(writer, after=0)
    got = [e["data"] for e in req.events()]
    assert got and got[-1] == '{"n":4}' and '{"n":0}' not in got


def test_complete_stream_finishes_after_replay_and_is_forgotten() -> None:
    """A stream whose response is in finishes on resume and reports itself gone."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone)
    stream.pending = {"1"}
    stream.send(b'{"id":1}')
    stream.mark_answered("1")
    assert stream.complete and gone == []
    writer, req = _writer(clock, [])
    stream.attach(writer, after=0)
    assert req.finished == 1 and gone == [stream]


def test_newer_connection_supersedes_the_old_one() -> None:
    """Attaching a second connection cuts the first; events go to the new one."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone)
    first, req1 = _writer(clock, [])
    first.on_lost = lambda w, _r: stream.detach(w)
    stream.attach(first)
    second, req2 = _writer(clock, [])
    stream.attach(second, after=None)
    stream.send(b"{}")
    assert first.closed and req1.aborted
    assert req2.events()[-1]["data"] == "{}"


@given(st.binary(max_size=50))
def test_event_id_parsing_never_crashes(raw: bytes) -> None:
    """Any Last-Event-ID is either one of ours or None."""
    parsed = parse_event_id(raw)
    assert parsed is None or (parsed[0] >= 0 and parsed[1] >= 0)
    assert parse_event_id(b"12-34") == (12, 34)
    assert parse_event_id("x-1") is None


def test_connection_gone_before_attach_still_expires() -> None:
    """A stream attached to an already-closed connection is kept only for the window."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone)
    writer, req = _writer(clock, _strs())
    req.disconnect()
    stream.attach(writer)
    stream.send(b"{}")
    clock.advance(61)
    assert gone == [stream]


def test_a_lazy_writer_answers_json_until_it_has_sent_something() -> None:
    """Fresh, the answer is a JSON body; after an event, it is the last event."""
    clock = Clock()
    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda _w, _r: None)
    writer.start(lazy=True)
    assert writer.fresh and req.responseHeaders.getRawHeaders(b"content-type") is None
    writer.finish_json(b'{"id":1}')
    assert req.body == b'{"id":1}' and req.finished == 1
    assert req.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    assert clock.getDelayedCalls() == [] and req.producer is None

    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda _w, _r: None)
    writer.start(lazy=True)
    producers = [req.producer]  # a JSON body needs no flow control
    writer.write(encode_event(b'{"n":1}'))
    producers.append(req.producer)
    assert not writer.fresh and producers == [None, writer]
    writer.finish_json(b'{"id":1}')
    assert [e["data"] for e in req.events()] == ['{"n":1}', '{"id":1}']
    assert req.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream"]


def test_a_lazy_writer_finished_empty_is_an_empty_stream() -> None:
    """Ended before anything was sent: an event stream without events."""
    clock = Clock()
    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda _w, _r: None)
    writer.start(lazy=True)
    writer.finish()
    assert req.finished == 1 and req.body == b""
    assert req.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream"]


def test_stream_answer_is_json_only_when_it_is_all_the_stream_carries() -> None:
    """One pending answer on a fresh writer: JSON, and the stream is forgotten."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone)
    stream.pending = {"1", "2"}
    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda _w, _r: None)
    writer.start(lazy=True)
    stream.attach(writer)
    stream.answer("1", b'{"id":1}')
    stream.answer("2", b'{"id":2}')
    assert [e["data"] for e in req.events()] == ['{"id":1}', '{"id":2}']
    assert req.finished == 1 and gone == [stream]

    stream = _stream(clock, gone)
    stream.pending = {"3"}
    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda _w, _r: None)
    writer.start(lazy=True)
    stream.attach(writer)
    stream.answer("3", b'{"id":3}')
    assert req.body == b'{"id":3}' and gone[-1] is stream and stream.buffered == 0


def test_an_answer_without_a_connection_is_kept_for_replay() -> None:
    """The client went away first: the answer waits in the replay buffer."""
    clock, gone = Clock(), _anys()
    stream = _stream(clock, gone)
    stream.pending = {"1"}
    req = TestRequest(b"POST", {})
    writer = SseWriter(req, clock, 15.0, 100, 5.0, lambda w, _r: stream.detach(w))
    writer.start(lazy=True)
    stream.attach(writer)
    req.disconnect()
    stream.answer("1", b'{"id":1}')
    assert stream.complete and stream.buffered > 0 and gone == []
