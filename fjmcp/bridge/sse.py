# -*- test-case-name: tests.bridge.test_sse -*-
"""
Server-Sent Events: the encoding, and one writer per HTTP response.

The encoding is the WHATWG event-stream format: ``id:``, ``retry:`` and one
``data:`` line per line of payload, a blank line ending each event; comment
lines (``: ...``) keep idle connections alive through proxies.

`SseWriter` owns one streaming HTTP response. It never pauses the child:
when the client reads more slowly than the child writes, the transport asks
the writer to pause; bytes written while paused are counted, and a writer
that stays over ``buffer_cap`` for ``write_deadline`` seconds (or goes far
over it) has its connection cut. The stream it belonged to keeps its replay
buffer, so the client can come back with ``Last-Event-ID``. Keep-alive
comments are written only when nothing else was written for
``keepalive_interval`` seconds; the writer notices a client that went away
through ``notifyFinish`` and cleans up its timers.

A writer started ``lazy`` sends its event-stream headers only with its
first event (or keep-alive): until then its response can still become one
``application/json`` body (`finish_json`), which is what a POST whose
stream would carry nothing but its answer gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any, Final, Protocol

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from zope.interface import implementer

__all__ = [
    "SSE_HEADERS",
    "McpRequest",
    "StreamRequest",
    "SseWriter",
    "encode_comment",
    "encode_event",
]

#: Headers of every event-stream response.
SSE_HEADERS: Final = (
    (b"Content-Type", b"text/event-stream"),
    (b"Cache-Control", b"no-cache"),
    (b"X-Accel-Buffering", b"no"),
)

#: Past this multiple of the buffer cap a writer is cut at once.
HARD_LIMIT_FACTOR: Final = 4


class StreamRequest(Protocol):
    """The part of a twisted.web request a streaming response uses."""

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the status."""

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header."""

    def write(self, data: bytes) -> None:
        """Send body bytes."""

    def finish(self) -> None:
        """End the response."""

    def notifyFinish(self) -> Deferred[None]:
        """Fires when the response ends; fails when the connection is lost first."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register for flow control."""

    def unregisterProducer(self) -> None:
        """Stop flow control."""

    def loseConnection(self) -> None:
        """Close the connection."""


class McpRequest(StreamRequest, Protocol):
    """What ``/mcp`` reads of a twisted.web request, besides streaming."""

    @property
    def method(self) -> bytes:
        """The HTTP method."""

    @property
    def content(self) -> IO[bytes] | None:
        """The request body."""

    def getHeader(self, key: bytes) -> bytes | None:
        """One request header, or None."""

    @property
    def requestHeaders(self) -> Headers:
        """Every request header (a repeated one has several values)."""


#: Byte values looked for with ``in``: CPython 3.11's ``bytes.__contains__``
#: tries a one-byte *bytes* needle as an integer first and formats the
#: TypeError before searching (about 9x slower than an int needle).
_CR: Final = 0x0D
_LF: Final = 0x0A


def encode_event(
    data: bytes, event_id: str | None = None, *, retry_ms: int | None = None
) -> bytes:
    """
    One SSE event. ``data`` may hold line breaks (each line becomes its own
    ``data:`` field); empty ``data`` gives an event with an empty data field
    (the priming event of MCP 2025-11-25).
    """
    parts: list[bytes] = []
    if event_id is not None:
        parts.append(b"id: " + event_id.encode("ascii") + b"\n")
    if retry_ms is not None:
        parts.append(b"retry: %d\n" % retry_ms)
    if _LF in data or _CR in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        parts.extend(b"data: " + line + b"\n" for line in lines)
    elif data:
        parts.append(b"data: " + data + b"\n")
    else:
        parts.append(b"data:\n")
    parts.append(b"\n")
    return b"".join(parts)


def encode_comment(text: str = "") -> bytes:
    """An SSE comment (ignored by clients), e.g. a keep-alive."""
    clean = text.replace("\r", " ").replace("\n", " ")
    return b":" + (b" " + clean.encode("utf-8") if clean else b"") + b"\n\n"


_KEEPALIVE: Final = encode_comment("keep-alive")


@implementer(IPushProducer)
@define(eq=False)
class SseWriter:
    """
    One open event-stream response.

    :param on_lost: called once with the writer and a reason when the
        response ends other than by `finish` (the client went away, or the
        writer was cut as a slow reader).
    """

    _request: StreamRequest
    _clock: IReactorTime
    keepalive_interval: float
    buffer_cap: int
    write_deadline: float
    on_lost: Callable[[SseWriter, str], None]
    closed: bool = field(default=False, init=False)
    _paused: bool = field(default=False, init=False)
    _queued: int = field(default=0, init=False)
    _last_write: float = field(default=0.0, init=False)
    _keepalive: IDelayedCall | None = field(default=None, init=False)
    _deadline: IDelayedCall | None = field(default=None, init=False)
    _producing: bool = field(default=False, init=False)
    _committed: bool = field(default=False, init=False)

    log = Logger()

    def start(
        self, headers: Iterable[tuple[bytes, bytes]] = (), *, lazy: bool = False
    ) -> None:
        """
        Set the status and headers and begin watching the connection; with
        ``lazy``, the event-stream headers wait for the first event.
        """
        request = self._request
        request.setResponseCode(200)
        for name, value in headers:
            request.setHeader(name, value)
        request.notifyFinish().addBoth(self._request_done)
        if not lazy:
            self._commit()
        self._last_write = self._clock.seconds()
        self._schedule_keepalive(self.keepalive_interval)

    def _commit(self) -> None:
        """
        From now on the response is an event stream: its headers, and the
        flow control of a stream (a JSON body is written whole, unwatched).
        """
        if self._committed:
            return
        self._committed = True
        request = self._request
        for name, value in SSE_HEADERS:
            request.setHeader(name, value)
        if self.closed:
            return
        try:
            request.registerProducer(self, True)
            self._producing = True
        except (AttributeError, RuntimeError, ValueError):
            # A request without a channel (already gone): nothing to watch.
            self._producing = False

    @property
    def fresh(self) -> bool:
        """Open and nothing sent yet: the response may still be plain JSON."""
        return not self._committed and not self.closed

    # -- writing -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send encoded SSE bytes now (never blocks, never pauses the child)."""
        if self.closed:
            return
        self._commit()
        self._request.write(data)
        self._last_write = self._clock.seconds()
        if self._paused:
            self._queued += len(data)
            if self._queued > self.buffer_cap * HARD_LIMIT_FACTOR:
                self.cut("slow reader: far over the buffer cap")
            elif self._queued > self.buffer_cap and self._deadline is None:
                self._deadline = self._clock.callLater(
                    self.write_deadline, self._deadline_passed
                )

    def write_many(self, chunks: Iterable[bytes]) -> None:
        """Send several encoded events."""
        for chunk in chunks:
            self.write(chunk)

    def finish(self) -> None:
        """End the response normally (the stream is complete)."""
        if self.closed:
            return
        self._commit()
        self._close_timers()
        self.closed = True
        self._unregister()
        self._request.finish()

    def finish_json(self, body: bytes) -> None:
        """
        Answer with one ``application/json`` body instead of a stream; only
        while `fresh` (otherwise ``body`` is sent as an event and the
        stream finished).
        """
        if self.closed:
            return
        if self._committed:
            self.write(encode_event(body))
            self.finish()
            return
        self._committed = True
        request = self._request
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        self._close_timers()
        self.closed = True
        self._unregister()
        request.write(body)
        request.finish()

    def cut(self, reason: str) -> None:
        """
        Drop the connection without ending the stream (slow reader, or a newer
        connection took the stream over); the client may resume.
        """
        if self.closed:
            return
        self._close_timers()
        self.closed = True
        self._unregister()
        channel: Any = getattr(self._request, "channel", None)
        transport = getattr(channel, "transport", None)
        if transport is not None and hasattr(transport, "abortConnection"):
            transport.abortConnection()
        else:
            self._request.loseConnection()
        self.on_lost(self, reason)

    # -- IPushProducer (the transport's flow control) ----------------------

    def pauseProducing(self) -> None:
        """The client's buffer is full: count what is written meanwhile."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The client caught up."""
        self._paused = False
        self._queued = 0
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def stopProducing(self) -> None:
        """The connection is going away; `_request_done` does the cleanup."""
        self._paused = False

    # -- internals ---------------------------------------------------------

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._paused and self._queued > self.buffer_cap:
            self.cut("slow reader: over the buffer cap past the write deadline")

    def _schedule_keepalive(self, delay: float) -> None:
        self._keepalive = self._clock.callLater(max(delay, 0.0), self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive = None
        if self.closed:
            return
        idle = self._clock.seconds() - self._last_write
        if idle >= self.keepalive_interval:
            self.write(_KEEPALIVE)
            idle = 0.0
        if not self.closed:
            self._schedule_keepalive(self.keepalive_interval - idle)

    def _close_timers(self) -> None:
        for call in (self._keepalive, self._deadline):
            if call is not None and call.active():
                call.cancel()
        self._keepalive = None
        self._deadline = None

    def _unregister(self) -> None:
        if not self._producing:
            return
        self._producing = False
        if getattr(self._request, "channel", True) is None:
            return
        try:
            self._request.unregisterProducer()
        except AttributeError:  # the channel went away meanwhile
            pass

    def _request_done(self, result: object) -> None:
        if isinstance(result, Failure) or not self.closed:
            if not self.closed:
                self._close_timers()
                self.closed = True
                self._producing = False
                self.on_lost(self, "client disconnected")
        return None
