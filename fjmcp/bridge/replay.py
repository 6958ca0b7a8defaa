# -*- test-case-name: tests.bridge.test_replay -*-
"""
Logical SSE streams with bounded replay buffers, for ``Last-Event-ID``.

An MCP stream outlives the HTTP connection that carries it: a client that
loses its connection (or is cut as a slow reader) comes back with ``GET`` and
``Last-Event-ID`` and must receive what it missed, including the response
of a request whose POST stream dropped. So every event of a stream is kept
(up to ``max_bytes``, oldest dropped first) until the stream is complete and
delivered; a stream without a connection keeps filling its buffer for
``resume_window`` seconds and is then dropped.

Event ids are ``<stream>-<seq>``: unique within the session (stream numbers
are), and they name the stream a ``Last-Event-ID`` belongs to, as the
specification suggests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from attrs import define, field
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from fjmcp.bridge.sse import SseWriter, encode_event

__all__ = ["Stream", "parse_event_id"]

_MAX_ID_LENGTH: Final = 40


def parse_event_id(text: bytes | str) -> tuple[int, int] | None:
    """``b"3-17"`` -> ``(3, 17)``; None for anything this broker did not mint."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = text.strip()
    if len(text) > _MAX_ID_LENGTH:
        return None
    stream, sep, seq = text.partition("-")
    if not sep or not stream.isdigit() or not seq.isdigit():
        return None
    if not stream.isascii() or not seq.isascii():
        return None
    return int(stream), int(seq)


@define(eq=False)
class Stream:
    """
    One logical stream of a session: a POST request's answer, or the
    session's standalone GET stream.

    :param on_gone: called once when the stream is finished with (delivered
        completely, expired, or closed), so the session forgets it.
    """

    key: int
    standalone: bool
    max_bytes: int
    resume_window: float
    _clock: IReactorTime
    on_gone: Callable[[Stream], None]
    pending: set[str] = field(factory=set)
    """Raw JSON ids of the requests whose responses this stream still awaits."""
    writer: SseWriter | None = None
    complete: bool = False
    gone: bool = False
    _events: deque[tuple[int, bytes]] = field(factory=deque)
    _size: int = 0
    _next_seq: int = 1
    _expiry: IDelayedCall | None = None

    def event_id(self, seq: int) -> str:
        """The SSE id of this stream's event ``seq``."""
        return f"{self.key}-{seq}"

    @property
    def attached(self) -> bool:
        """Whether an HTTP connection carries the stream now."""
        return self.writer is not None and not self.writer.closed

    @property
    def buffered(self) -> int:
        """Bytes held for replay."""
        return self._size

    def send(self, payload: bytes) -> None:
        """Add one message (a JSON-RPC line) to the stream and send it if attached."""
        if self.gone:
            return
        seq = self._next_seq
        self._next_seq += 1
        event = encode_event(payload, self.event_id(seq))
        self._events.append((seq, event))
        self._size += len(event)
        while self._size > self.max_bytes and len(self._events) > 1:
            _, old = self._events.popleft()
            self._size -= len(old)
        if self.writer is not None:
            self.writer.write(event)

    def attach(
        self,
        writer: SseWriter,
        after: int | None = None,
        *,
        prime_retry_ms: int | None = None,
    ) -> None:
        """
        Carry the stream on ``writer``: replay what came after event ``after``
        (None: nothing is replayed), then keep sending. A complete stream is
        finished once replayed. A connection still attached is cut first.

        With ``prime_retry_ms``, an unfinished stream then gets a priming
        event (an id and empty data, with that ``retry`` hint; not kept for
        replay). It comes after the replayed events, so its id is always the
        newest the client has seen.
        """
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        old, self.writer = self.writer, writer
        if old is not None and old is not writer and not old.closed:
            old.cut("superseded by a newer connection")
        if after is not None:
            writer.write_many(event for seq, event in self._events if seq > after)
        if writer.closed:  # the client was gone before the stream started
            self.detach(writer)
            return
        if self.complete:
            self.finish_if_complete()
            return
        if prime_retry_ms is not None:
            seq = self._next_seq
            self._next_seq += 1
            writer.write(encode_event(b"", self.event_id(seq), retry_ms=prime_retry_ms))

    def detach(self, writer: SseWriter) -> None:
        """``writer`` lost its connection: keep the buffer for the resume window."""
        if self.writer is not writer:
            return
        self.writer = None
        if self.gone:
            return
        self._expiry = self._clock.callLater(self.resume_window, self._expired)

    def answer(self, id_json: str, payload: bytes) -> None:
        """
        The response for ``id_json``: when it is all this stream will ever
        carry and its connection has sent nothing yet, the connection
        answers it as one JSON body (no event, nothing kept for replay);
        otherwise it is sent as an event like any other message.
        """
        writer = self.writer
        if (
            writer is not None
            and writer.fresh
            and not self.standalone
            and not self._events
            and self.pending == {id_json}
        ):
            self.pending.clear()
            self.complete = True
            self.writer = None
            writer.finish_json(payload)
            self._drop()
            return
        self.send(payload)
        self.mark_answered(id_json)

    def mark_answered(self, id_json: str) -> None:
        """The response for ``id_json`` was sent; complete when none is left."""
        self.pending.discard(id_json)
        if not self.pending and not self.standalone:
            self.complete = True
            self.finish_if_complete()

    def finish_if_complete(self) -> None:
        """A complete stream on a live connection is ended and forgotten."""
        if self.complete and self.writer is not None and not self.writer.closed:
            writer, self.writer = self.writer, None
            writer.finish()
            self._drop()

    def close(self) -> None:
        """End the stream now (session ended): finish the connection, drop all."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.finish()
        self._drop()

    def _expired(self) -> None:
        self._expiry = None
        if self.writer is None:
            self._drop()

    def _drop(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self._events.clear()
        self._size = 0
        if not self.gone:
            self.gone = True
            self.on_gone(self)
