# -*- test-case-name: tests.bridge.test_router -*-
"""
Where each message goes, between one session's HTTP streams and its child.

Client -> child: requests are registered as *exchanges* (one per request id,
matched as raw JSON) before they are written to the child's stdin, so an
answer can never arrive for an unknown request. A duplicate id while one is
in flight is refused. The client's responses to the child's own requests
go back to the child generation that asked (ids of later generations are
namespaced so they cannot collide with an older child's still pending).

Child -> client, decided per message when the child emits it (`route`):

1. a response goes to the stream (or buffered JSON reply) of its request;
2. ``notifications/progress`` goes to the stream of the request whose
   ``_meta.progressToken`` matches (the token is not touched);
3. any other notification, and every server->client request (sampling,
   elicitation, roots), goes to the only request in flight, if it has a
   stream; else to the session's open GET stream; else to the request that
   arrived last and still has an open stream; else it waits in a bounded
   per-session queue for the next GET stream.

A stream whose client went away keeps collecting its messages in its replay
buffer (`fjmcp.bridge.replay`) for ``stream_resume_window`` seconds.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from attrs import Factory, define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fjmcp.bridge.handshake import Negotiated, ReplayHandshaker, ReplayState
from fjmcp.bridge.idle import IdleWaiters
from fjmcp.bridge.jsonrpc import (
    INTERNAL_ERROR,
    JsonRpcError,
    Kind,
    Message,
    error_body,
    id_key,
    parse_line,
    with_id,
)
from fjmcp.bridge.policy import PolicyEnforcer
from fjmcp.bridge.replay import Stream, parse_event_id
from fjmcp.bridge.sse import SseWriter, StreamRequest
from fjmcp.interfaces import ChildExit, ICallObserver
from fjmcp.observers import NO_OBSERVER
from fjmcp.sessions.owner import ChildOwner
from fjmcp.sessions.registry import describe_exit

__all__ = [
    "BridgeSettings",
    "DuplicateRequestError",
    "Exchange",
    "JsonReply",
    "SessionBridge",
    "StreamConflictError",
    "Target",
    "route",
]

#: Server->client requests remembered for mapping the client's answers back.
MAX_PENDING_SERVER_REQUESTS: Final = 1024


@frozen
class BridgeSettings:
    """The stream settings of every session (from the configuration)."""

    keepalive_interval: float = 15.0
    buffer_cap: int = 4 * 1024 * 1024
    write_deadline: float = 30.0
    resume_window: float = 60.0
    replay_bytes: int = 4 * 1024 * 1024
    queue_limit: int = 1000
    """Messages the per-session queue holds at most (oldest dropped first)."""
    queue_bytes: int = 4 * 1024 * 1024
    """Bytes the per-session queue holds at most (the newest message is kept)."""
    retry_ms: int = 1000


class DuplicateRequestError(Exception):
    """A request id already in flight in this session."""

    def __init__(self, id_json: str) -> None:
        super().__init__(f"request id {id_json} is already in flight in this session")
        self.id_json = id_json


class StreamConflictError(Exception):
    """A standalone GET stream is already open for this session (409)."""


class Target(enum.Enum):
    """Where `route` sends a message from the child."""

    EXCHANGE = "exchange"
    STANDALONE = "standalone"
    QUEUE = "queue"
    DROP = "drop"


@define(eq=False)
class JsonReply:
    """
    A request answered as one ``application/json`` body: responses are
    collected until every request of the POST is answered.
    """

    request: StreamRequest
    batch: bool
    pending: set[str] = field(factory=set)
    parts: list[bytes] = field(factory=list)
    done: bool = False

    def watch(self) -> None:
        """Notice a client that goes away before the answer."""
        self.request.notifyFinish().addBoth(self._gone)

    def _gone(self, _: object) -> None:
        self.done = True

    def add(self, id_json: str, line: bytes) -> None:
        """One response; the body is sent once all are in."""
        if id_json not in self.pending:
            return
        self.pending.discard(id_json)
        self.parts.append(line)
        if not self.pending:
            self._send()

    def _send(self) -> None:
        if self.done:
            return
        self.done = True
        body = b"[" + b",".join(self.parts) + b"]" if self.batch else self.parts[0]
        self.request.setResponseCode(200)
        self.request.setHeader(b"Content-Type", b"application/json")
        self.request.setHeader(b"Content-Length", b"%d" % len(body))
        self.request.write(body)
        self.request.finish()


#: Longest tool name kept for the audit log.
MAX_TOOL_NAME: Final = 128


def tool_name(msg: Message) -> str | None:
    """The tool a ``tools/call`` request names (cut short), else None."""
    if msg.method != "tools/call":
        return None
    name = msg.params.get("name")
    return name[:MAX_TOOL_NAME] if isinstance(name, str) else None


@define(eq=False)
class Exchange:
    """One client request waiting for the child's answer."""

    id_json: str
    method: str
    progress_json: str | None
    generation: int
    stream: Stream | None = None
    reply: JsonReply | None = None
    started: float = 0.0
    tool: str | None = None
    """The tool a ``tools/call`` names (for the audit log; never its arguments)."""

    @property
    def open_stream(self) -> bool:
        """Whether its stream is carried by a live connection now."""
        return self.stream is not None and self.stream.attached


def route(
    message: Message, in_flight: Sequence[Exchange], standalone_open: bool
) -> tuple[Target, Exchange | None]:
    """
    The routing rule for a notification or request from the child (module
    docstring, points 2 and 3). ``in_flight`` is in arrival order.
    """
    if message.kind is Kind.RESPONSE:
        for ex in in_flight:
            if ex.id_json == message.id_json:
                return Target.EXCHANGE, ex
        return Target.DROP, None
    if message.method == "notifications/progress":
        token = message.progress_token_json
        if token is not None:
            for ex in in_flight:
                if ex.progress_json == token and ex.stream is not None:
                    return Target.EXCHANGE, ex
    if len(in_flight) == 1 and in_flight[0].stream is not None:
        return Target.EXCHANGE, in_flight[0]
    if standalone_open:
        return Target.STANDALONE, None
    for ex in reversed(in_flight):
        if ex.open_stream:
            return Target.EXCHANGE, ex
    return Target.QUEUE, None


@define(eq=False)
class SessionBridge:
    """
    The bridge's state for one session (implements
    `fjmcp.sessions.owner.OwnerRouter`): its streams, what its child
    negotiated, and what a respawned child must be replayed.
    """

    session: ChildOwner
    _clock: IReactorTime
    settings: BridgeSettings
    calls: ICallObserver = field(default=NO_OBSERVER, kw_only=True)
    negotiated: Negotiated = field(factory=Negotiated)
    replay: ReplayState = field(factory=ReplayState)
    _in_flight: dict[str, Exchange] = field(factory=dict)
    _streams: dict[int, Stream] = field(factory=dict)
    _next_stream: int = 1
    _standalone: Stream | None = None
    _queue: deque[bytes] = field(factory=deque)
    _queue_size: int = 0
    _dropping: int = 0
    """Queued messages dropped since the last warning about it."""
    _server_requests: dict[str, tuple[int, Any]] = field(factory=dict)
    _idle: IdleWaiters = field(
        default=Factory(lambda self: IdleWaiters(self._in_flight), takes_self=True),
        init=False,
    )
    closed: bool = False
    dropped: int = 0
    """Messages dropped (queue overflow, unknown response ids)."""
    enforcer: PolicyEnforcer | None = None
    """The owner's tool policy (`fjmcp.bridge.policy`)."""

    log = Logger()

    # -- the MCP session -------------------------------------------------------

    @property
    def protocol_version(self) -> str | None:
        """The version the child answered ``initialize`` with (None until then)."""
        return self.negotiated.protocol_version

    @property
    def handshaker(self) -> ReplayHandshaker:
        """Brings a respawned child into this session's state."""
        return ReplayHandshaker(self.replay, self.negotiated, self._clock)

    # -- the HTTP side -------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A request in flight or a standalone stream attached."""
        return bool(self._in_flight) or (
            self._standalone is not None and self._standalone.attached
        )

    def new_writer(self, request: StreamRequest) -> SseWriter:
        """An `SseWriter` for ``request`` with this session's settings."""
        s = self.settings
        return SseWriter(
            request,
            self._clock,
            keepalive_interval=s.keepalive_interval,
            buffer_cap=s.buffer_cap,
            write_deadline=s.write_deadline,
            on_lost=lambda _w, _r: None,
        )

    def _new_stream(self, *, standalone: bool) -> Stream:
        key = self._next_stream
        self._next_stream += 1
        stream = Stream(
            key=key,
            standalone=standalone,
            max_bytes=self.settings.replay_bytes,
            resume_window=self.settings.resume_window,
            clock=self._clock,
            on_gone=self._stream_gone,
        )
        self._streams[key] = stream
        return stream

    def _stream_gone(self, stream: Stream) -> None:
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]
        if self._standalone is stream:
            self._standalone = None

    def _attach(
        self, stream: Stream, writer: SseWriter, after: int | None, prime: bool
    ) -> None:
        def lost(w: SseWriter, reason: str) -> None:
            if reason.startswith("slow reader"):
                self.log.info(
                    "session {session}: stream {stream} cut ({reason}); kept "
                    "for resumption",
                    session=self.session.short_id,
                    stream=stream.key,
                    reason=reason,
                )
            stream.detach(w)

        writer.on_lost = lost
        retry = self.settings.retry_ms if prime else None
        stream.attach(writer, after, prime_retry_ms=retry)

    def check_new_ids(self, requests: Sequence[Message]) -> None:
        """Raise `DuplicateRequestError` if any id is in flight (or repeated)."""
        seen: set[str] = set()
        for msg in requests:
            if msg.id_json is None:
                continue
            if msg.id_json in self._in_flight or msg.id_json in seen:
                raise DuplicateRequestError(msg.id_json)
            seen.add(msg.id_json)

    def begin(
        self,
        messages: Sequence[Message],
        *,
        writer: SseWriter | None = None,
        reply: JsonReply | None = None,
        prime: bool = False,
    ) -> None:
        """
        Carry a POST that holds at least one request: register an exchange
        per request on one new stream (``writer``) or one buffered ``reply``,
        then write every message to the child in order.
        """
        requests = [m for m in messages if m.kind is Kind.REQUEST]
        self.check_new_ids(requests)
        stream = None
        if writer is not None:
            stream = self._new_stream(standalone=False)
            stream.pending = {m.id_json for m in requests if m.id_json}
        if reply is not None:
            reply.pending = {m.id_json for m in requests if m.id_json}
        generation = self.session.generation
        now = self._clock.seconds()
        for msg in requests:
            if msg.id_json is None or msg.method is None:
                continue
            self._in_flight[msg.id_json] = Exchange(
                id_json=msg.id_json,
                method=msg.method,
                progress_json=msg.progress_token_json,
                generation=generation,
                stream=stream,
                reply=reply,
                started=now,
                tool=tool_name(msg),
            )
        if stream is not None and writer is not None:
            self._attach(stream, writer, None, prime)
        for msg in messages:
            self._admit(msg)

    def _admit(self, msg: Message) -> None:
        """Write ``msg`` to the child unless the policy refuses it (then answer it)."""
        enforcer = self.enforcer
        if enforcer is None or msg.kind is not Kind.REQUEST:
            self.to_child(msg)
            return
        ex = self._in_flight.get(msg.id_json or "")

        def forward() -> None:
            if not self.closed:
                self.to_child(msg)

        def refuse(line: bytes) -> None:
            if ex is not None and self._in_flight.get(ex.id_json) is ex:
                self._answer(ex, line, "refused")

        enforcer.admit(msg, forward, refuse)

    def to_child(self, msg: Message) -> None:
        """Write one client message to the right child (remembering state)."""
        session = self.session
        if msg.kind is Kind.RESPONSE:
            mapped = self._server_requests.pop(msg.id_json or "", None)
            if mapped is not None:
                asked_by, original = mapped
                line = (
                    msg.line
                    if id_key(original) == msg.id_json
                    else with_id(msg, original)
                )
                session.write(line, asked_by)
                return
            session.write(msg.line)
            return
        self.replay.remember(msg)
        if msg.kind is Kind.REQUEST:
            if not session.write(msg.line):
                self._fail(
                    self._in_flight.get(msg.id_json or ""),
                    "the MCP server process is gone",
                )
            return
        # A notification: a cancellation goes to the child that has the request.
        generation = None
        if msg.method == "notifications/cancelled":
            params = msg.params
            ex = self._in_flight.get(id_key(params.get("requestId")))
            if ex is not None:
                generation = ex.generation
        session.write(msg.line, generation)

    def open_standalone(self, writer: SseWriter, *, prime: bool) -> Stream:
        """
        Open the session's GET stream (409 via `StreamConflictError` if one is
        attached) and flush the queued messages into it.
        """
        current = self._standalone
        if current is not None and current.attached:
            raise StreamConflictError("a GET stream is already open for this session")
        if current is not None:
            current.close()
        stream = self._new_stream(standalone=True)
        self._standalone = stream
        self._attach(stream, writer, None, prime)
        self._flush_queue(stream)
        return stream

    @property
    def standalone_attached(self) -> bool:
        """Whether the session's GET stream is carried by a connection now."""
        return self._standalone_open

    def resumable(self, last_event_id: bytes) -> bool:
        """Whether a stream named by ``last_event_id`` is still kept."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return False
        stream = self._streams.get(parsed[0])
        return stream is not None and not stream.gone

    def resume(self, last_event_id: bytes, writer: SseWriter, *, prime: bool) -> bool:
        """
        Resume the stream a ``Last-Event-ID`` names: replay what followed it
        on ``writer`` and carry on. False when no such stream is kept.
        """
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return False
        stream = self._streams.get(parsed[0])
        if stream is None or stream.gone:
            return False
        if stream.standalone:
            self._standalone = stream
        self._attach(stream, writer, parsed[1], prime)
        if stream.standalone:
            self._flush_queue(stream)
        return True

    # -- the child side ----------------------------------------------------

    def line_received(self, generation: int, line: bytes) -> None:
        """Route one line of the child's stdout."""
        try:
            messages = parse_line(line)
        except JsonRpcError as e:
            self.log.warn(
                "session {session}: the MCP server wrote a line that is not "
                "JSON-RPC ({error}); dropped",
                session=self.session.short_id,
                error=e.message[:200],
            )
            return
        for msg in messages:
            self._from_child(generation, msg)

    def _from_child(self, generation: int, msg: Message) -> None:
        enforcer = self.enforcer
        if enforcer is not None and enforcer.from_child(msg):
            return
        if msg.kind is Kind.RESPONSE:
            ex = self._in_flight.get(msg.id_json or "")
            if ex is None or ex.generation != generation:
                self.dropped += 1
                self.log.info(
                    "session {session}: response to unknown request {id} dropped",
                    session=self.session.short_id,
                    id=(msg.id_json or "")[:64],
                )
                return
            line = msg.line
            if enforcer is not None:
                line = enforcer.filter_answer(ex.method, msg)
            self._answer(ex, line, "error" if "error" in msg.body else "ok")
            if ex.method == "initialize":
                self._initialized(msg)
            return
        line = msg.line
        if msg.kind is Kind.REQUEST:
            line = self._namespace(generation, msg)
        target, ex = route(msg, list(self._in_flight.values()), self._standalone_open)
        if target is Target.EXCHANGE and ex is not None and ex.stream is not None:
            ex.stream.send(line)
        elif target is Target.STANDALONE and self._standalone is not None:
            self._standalone.send(line)
        else:
            self._enqueue(line)

    @property
    def _standalone_open(self) -> bool:
        return self._standalone is not None and self._standalone.attached

    def _namespace(self, generation: int, msg: Message) -> bytes:
        """Record a server->client request; ids of later generations get a prefix."""
        original = msg.body.get("id")
        if generation == 1:
            client_id_json, line = msg.id_json or "null", msg.line
        else:
            client_id = f"fjmcp-g{generation}-{msg.id_json}"
            client_id_json, line = id_key(client_id), with_id(msg, client_id)
        self._server_requests[client_id_json] = (generation, original)
        while len(self._server_requests) > MAX_PENDING_SERVER_REQUESTS:
            del self._server_requests[next(iter(self._server_requests))]
        return line

    def _enqueue(self, line: bytes) -> None:
        """
        Keep a message for the next GET stream, within ``queue_limit``
        messages and ``queue_bytes`` bytes (oldest dropped first, the newest
        always kept). One warning per overflow: a child that floods a
        session without a stream must not flood the broker's log too.
        """
        self._queue.append(line)
        self._queue_size += len(line)
        s = self.settings
        while len(self._queue) > 1 and (
            len(self._queue) > s.queue_limit or self._queue_size > s.queue_bytes
        ):
            self._queue_size -= len(self._queue.popleft())
            self.dropped += 1
            self._dropping += 1
            if self._dropping == 1:
                self.log.warn(
                    "session {session}: no stream to carry the MCP server's "
                    "messages; dropping the oldest queued ones",
                    session=self.session.short_id,
                )

    def _flush_queue(self, stream: Stream) -> None:
        """Send the queued messages on the GET stream that just opened."""
        if self._dropping:
            self.log.warn(
                "session {session}: {count} queued messages were dropped before "
                "a GET stream opened",
                session=self.session.short_id,
                count=self._dropping,
            )
            self._dropping = 0
        while self._queue and stream.attached:
            message = self._queue.popleft()
            self._queue_size -= len(message)
            stream.send(message)

    def _initialized(self, msg: Message) -> None:
        if not self.negotiated.record(msg.body.get("result")):
            self.session.request_end(self.session, "initialize failed")

    def _answer(self, ex: Exchange, line: bytes, outcome: str) -> None:
        self._in_flight.pop(ex.id_json, None)
        session = self.session
        self.calls.call_done(
            session.identity,
            session.short_id,
            ex.method,
            ex.tool,
            outcome,
            self._clock.seconds() - ex.started,
        )
        if ex.stream is not None:
            ex.stream.answer(ex.id_json, line)
        elif ex.reply is not None:
            ex.reply.add(ex.id_json, line)
        self._idle.check()

    def _fail(self, ex: Exchange | None, reason: str) -> None:
        if ex is None:
            return
        self._answer(ex, error_body(ex.id_json, INTERNAL_ERROR, reason), "failed")

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """Every request still waiting on that child gets a -32603 error."""
        reason = describe_exit(exit) + " before answering"
        for ex in [e for e in self._in_flight.values() if e.generation == generation]:
            self._fail(ex, reason)
        for key in [k for k, v in self._server_requests.items() if v[0] == generation]:
            del self._server_requests[key]
        if self.enforcer is not None:
            self.enforcer.child_exited()

    def close(self, reason: str) -> None:
        """The session ended: fail what is in flight and close every stream."""
        if self.closed:
            return
        self.closed = True
        for ex in list(self._in_flight.values()):
            self._fail(ex, f"the MCP session ended: {reason}")
        for stream in list(self._streams.values()):
            stream.close()
        self._queue.clear()
        self._queue_size = 0
        self._server_requests.clear()
        self._idle.check()

    # -- waiting for quiet ---------------------------------------------------

    def when_idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""
        return self._idle.wait(None)

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Fires once no request waits for the child of ``generation``."""
        return self._idle.wait(generation)

    def drain(self) -> Deferred[None]:
        """Shutdown: close the standalone stream now; fire once nothing is in flight."""
        if self._standalone is not None:
            self._standalone.close()
        return self.when_idle()

    # -- for status and tests ------------------------------------------------

    def stream_count(self) -> int:
        """Streams kept (attached or awaiting resume)."""
        return len(self._streams)

    def queued(self) -> int:
        """Messages waiting for the next GET stream."""
        return len(self._queue)
