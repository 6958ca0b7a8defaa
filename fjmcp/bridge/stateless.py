# -*- test-case-name: tests.bridge.test_stateless -*-
"""
One identity's child serving stateless (2026-07-28) requests.

The child speaks the 2025 session protocol; the broker initialized it
(`BrokerInitializer`) and is its only client. Every stateless request of
the identity, from any number of conversations at once, shares it, so:

- each request gets a child id of the broker's (an integer counter), and
  its progress token becomes that id too; both are mapped back on the way
  out (the response's id, ``notifications/progress``'s token), so that two
  clients' ``1`` never collide at the child;
- a request's answer goes to its own `StatelessReply`: one JSON body, or
  an SSE stream for that request only once a notification must go with it
  (or it runs past the keep-alive interval);
- ``notifications/message`` is relayed only when exactly one request in
  flight asked for logs (``_meta`` logLevel), at or above its level; the
  child's level (``logging/setLevel``) is the most verbose one asked for
  by requests in flight, and goes back to ``emergency`` once none asks;
- a client that closes its stream cancels its request: the child gets
  ``notifications/cancelled`` with the broker's id, the client nothing more;
- a request the child sends its client (sampling, elicitation, roots)
  during a ``tools/call``, ``prompts/get`` or ``resources/read`` needs that
  capability in the client's ``_meta``: otherwise the client gets -32021
  and the child an error plus ``notifications/cancelled`` for its call. The
  stdio pipe does not say which call asked, so only a child with exactly
  one such call in flight can be asked for input; with several, its
  request gets an error.

A cap on requests in flight per child answers the ones past it with 429.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from fjmcp.bridge.envelope import MISSING_CAPABILITY, Envelope, status_for
from fjmcp.bridge.handshake import BrokerInitializer, Negotiated
from fjmcp.bridge.jsonrpc import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    JsonRpcError,
    Kind,
    Message,
    error_body,
    id_key,
    parse_line,
)
from fjmcp.bridge.router import BridgeSettings
from fjmcp.bridge.sse import SseWriter, StreamRequest, encode_event
from fjmcp.bridge.translate import (
    METHOD_CAPABILITY,
    SERVER_REQUESTS,
    child_params,
    client_error,
    client_result,
    discover_result,
    missing_capability,
    server_capabilities,
    severity,
)
from fjmcp.bridge.versions import HANDSHAKE_VERSIONS
from fjmcp.interfaces import ChildExit
from fjmcp.sessions.owner import ChildOwner
from fjmcp.sessions.registry import describe_exit

__all__ = [
    "BROKER_CAPABILITIES",
    "IdentityBridge",
    "StatelessExchange",
    "StatelessReply",
    "StatelessSettings",
]

#: What the broker tells a child it can relay to stateless clients.
BROKER_CAPABILITIES: Final[Mapping[str, Any]] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {},
}
#: The methods during which a child may ask the client for input.
INPUT_METHODS: Final = frozenset({"tools/call", "prompts/get", "resources/read"})
_REASONS: Final = {429: b"Too Many Requests"}


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


@frozen
class StatelessSettings:
    """The stateless path's limits (from the configuration)."""

    max_in_flight: int = 64
    """Requests in flight per identity child (429 past it)."""
    ttl_ms: int = 0
    """``ttlMs`` on cacheable results."""
    retry_after: int = 1
    client_info: Mapping[str, Any] = field(factory=lambda: {"name": "fjmcp"})


@define(eq=False)
class StatelessReply:
    """
    The HTTP answer to one stateless request: one JSON body, or an SSE
    stream of its own once something must be sent before the answer.

    :param on_gone: called once if the client goes away before the answer.
    """

    request: StreamRequest
    _clock: IReactorTime
    settings: BridgeSettings
    on_gone: Callable[[], None] = lambda: None
    done: bool = False
    _writer: SseWriter | None = None
    _timer: IDelayedCall | None = None

    def watch(self) -> None:
        """Notice a client that goes away; switch to SSE if the answer is slow."""
        self.request.notifyFinish().addBoth(self._finished)
        self._timer = self._clock.callLater(
            self.settings.keepalive_interval, self._slow
        )

    @property
    def streaming(self) -> bool:
        """Whether the response is an SSE stream (its status already sent)."""
        return self._writer is not None

    def _slow(self) -> None:
        self._timer = None
        if not self.done:
            self._stream()

    def _stream(self) -> SseWriter:
        if self._writer is None:
            s = self.settings
            self._writer = SseWriter(
                self.request,
                self._clock,
                keepalive_interval=s.keepalive_interval,
                buffer_cap=s.buffer_cap,
                write_deadline=s.write_deadline,
                on_lost=lambda _w, _r: self._finished(None),
            )
            self._writer.start()
        return self._writer

    def _finished(self, _: object) -> None:
        if self.done:
            return
        self.done = True
        self._stop_timer()
        self.on_gone()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def notify(self, line: bytes) -> None:
        """Send a notification that belongs to this request (opens the stream)."""
        if not self.done:
            self._stream().write(encode_event(line))

    def complete(
        self,
        line: bytes,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """
        Send the answer and end the response (``status`` only counts while
        no stream has started; on a stream the answer is its last event).
        """
        if self.done:
            return
        self.done = True
        self._stop_timer()
        if self._writer is not None:
            self._writer.write(encode_event(line))
            self._writer.finish()
            return
        request = self.request
        request.setResponseCode(status, _REASONS.get(status))
        for name, value in headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(line))
        request.write(line)
        request.finish()

    def fail(
        self,
        id_json: str | None,
        code: int,
        message: str,
        *,
        data: Any = None,
        status: int | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Answer a JSON-RPC error (HTTP status from the code unless given)."""
        self.complete(
            error_body(id_json, code, message, data),
            status if status is not None else status_for(code),
            headers,
        )


@define(eq=False)
class StatelessExchange:
    """One stateless request waiting for the child."""

    child_id: int
    client_id: Any
    method: str
    generation: int
    reply: StatelessReply
    capabilities: Mapping[str, Any]
    log_level: str | None
    client_progress: Any = None

    @property
    def child_key(self) -> str:
        """The child id as raw JSON (how the child's answer is matched)."""
        return id_key(self.child_id)


@define(eq=False)
class IdentityBridge:
    """
    The bridge's state for one identity's child (implements
    `fjmcp.sessions.owner.OwnerRouter`; module docstring).
    """

    owner: ChildOwner
    _clock: IReactorTime
    settings: BridgeSettings
    limits: StatelessSettings = field(factory=StatelessSettings)
    negotiated: Negotiated = field(factory=Negotiated)
    _in_flight: dict[str, StatelessExchange] = field(factory=dict)
    _progress: dict[str, StatelessExchange] = field(factory=dict)
    _next_id: int = 0
    _child_level: tuple[int, str] | None = None
    """(generation, level) last set at the child with ``logging/setLevel``."""
    _handshaker: BrokerInitializer | None = None
    _idle_waiters: list[tuple[int | None, Deferred[None]]] = field(factory=list)
    closed: bool = False
    dropped: int = 0

    log = Logger()

    # -- OwnerRouter -----------------------------------------------------------

    @property
    def handshaker(self) -> BrokerInitializer:
        """The broker's own ``initialize`` towards every child of this identity."""
        if self._handshaker is None:
            self._handshaker = BrokerInitializer(
                self.negotiated,
                self._clock,
                versions=HANDSHAKE_VERSIONS,
                client_info=self.limits.client_info,
                capabilities=BROKER_CAPABILITIES,
            )
        return self._handshaker

    @property
    def busy(self) -> bool:
        """A request in flight."""
        return bool(self._in_flight)

    @property
    def in_flight(self) -> int:
        """Requests waiting for the child."""
        return len(self._in_flight)

    # -- the client side -----------------------------------------------------

    def _capabilities(self) -> dict[str, Any]:
        return server_capabilities(self.negotiated.init_result or {})

    def serve(self, envelope: Envelope, reply: StatelessReply) -> None:
        """Answer ``envelope``'s request, from memory or through the child."""
        if reply.done or self.closed:
            return
        msg = envelope.message
        method = envelope.method
        client_id = msg.body.get("id")
        if method == "server/discover":
            result = discover_result(
                self.negotiated.init_result or {}, self.limits.ttl_ms
            )
            reply.complete(_dump({"jsonrpc": "2.0", "id": client_id, "result": result}))
            return
        needed = METHOD_CAPABILITY.get(method)
        if method == "subscriptions/listen" or (
            needed is not None and needed not in self._capabilities()
        ):
            reply.fail(msg.id_json, METHOD_NOT_FOUND, "Method not found", data=method)
            return
        if len(self._in_flight) >= self.limits.max_in_flight:
            reply.fail(
                msg.id_json,
                INTERNAL_ERROR,
                "too many requests in flight for this identity's MCP server; "
                "retry later",
                data={"limit": self.limits.max_in_flight},
                status=429,
                headers=[(b"Retry-After", b"%d" % self.limits.retry_after)],
            )
            return
        self._next_id += 1
        child_id = self._next_id
        meta = msg.params.get("_meta")
        client_progress = meta.get("progressToken") if isinstance(meta, dict) else None
        has_progress = isinstance(client_progress, str | int) and not isinstance(
            client_progress, bool
        )
        ex = StatelessExchange(
            child_id=child_id,
            client_id=client_id,
            method=method,
            generation=self.owner.generation,
            reply=reply,
            capabilities=envelope.capabilities,
            log_level=envelope.log_level,
            client_progress=client_progress if has_progress else None,
        )
        self._in_flight[ex.child_key] = ex
        if has_progress:
            self._progress[ex.child_key] = ex
        reply.on_gone = lambda: self.cancel(ex, "the client closed the stream")
        self._set_child_level()
        line = _dump(
            {
                "jsonrpc": "2.0",
                "id": child_id,
                "method": method,
                "params": child_params(msg.params, child_id if has_progress else None),
            }
        )
        if not self.owner.write(line, ex.generation):
            self._fail(ex, "the MCP server process is gone")

    def cancel(self, ex: StatelessExchange, reason: str) -> None:
        """
        The client gave ``ex`` up: tell the child (under the broker's id)
        and send nothing more for it.
        """
        if self._in_flight.get(ex.child_key) is not ex:
            return
        self._forget(ex)
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": ex.child_id, "reason": reason},
        }
        self.owner.write(_dump(notice), ex.generation)

    # -- the child side ------------------------------------------------------

    def line_received(self, generation: int, line: bytes) -> None:
        """Route one line of the child's stdout."""
        try:
            messages = parse_line(line)
        except JsonRpcError as e:
            self.log.warn(
                "{owner}: the MCP server wrote a line that is not JSON-RPC "
                "({error}); dropped",
                owner=self.owner.described,
                error=e.message[:200],
            )
            return
        for msg in messages:
            if msg.kind is Kind.RESPONSE:
                self._response(generation, msg)
            elif msg.kind is Kind.NOTIFICATION:
                self._notification(msg)
            else:
                self._child_request(generation, msg)

    def _response(self, generation: int, msg: Message) -> None:
        ex = self._in_flight.get(msg.id_json or "")
        if ex is None or ex.generation != generation:
            # The answers to the broker's own requests (logging/setLevel),
            # and late answers to cancelled requests.
            return
        body = msg.body
        if "error" in body:
            error = client_error(body["error"])
            line = _dump({"jsonrpc": "2.0", "id": ex.client_id, "error": error})
            status = status_for(error["code"])
        else:
            init = self.negotiated.init_result or {}
            server_info = init.get("serverInfo")
            result = client_result(
                ex.method,
                body.get("result"),
                server_info=server_info if isinstance(server_info, dict) else None,
                ttl_ms=self.limits.ttl_ms,
            )
            line = _dump({"jsonrpc": "2.0", "id": ex.client_id, "result": result})
            status = 200
        self._forget(ex)
        ex.reply.complete(line, status)

    def _notification(self, msg: Message) -> None:
        method = msg.method
        if method == "notifications/progress":
            ex = self._progress.get(msg.progress_token_json or "")
            if ex is None:
                return
            params = dict(msg.params)
            params["progressToken"] = ex.client_progress
            ex.reply.notify(_dump({**msg.body, "params": params}))
        elif method == "notifications/message":
            asking = [e for e in self._in_flight.values() if e.log_level is not None]
            if len(asking) != 1:
                return
            level = msg.params.get("level")
            ex = asking[0]
            if isinstance(level, str) and severity(level) >= severity(
                ex.log_level or "debug"
            ):
                ex.reply.notify(msg.line)

    def _child_request(self, generation: int, msg: Message) -> None:
        method = msg.method or ""
        if method == "ping":
            self._answer_child(generation, msg, result={})
            return
        if method not in SERVER_REQUESTS:
            self._answer_child(
                generation, msg, error=(METHOD_NOT_FOUND, "Method not found")
            )
            return
        asking = [
            e
            for e in self._in_flight.values()
            if e.generation == generation and e.method in INPUT_METHODS
        ]
        if len(asking) != 1:
            self._answer_child(
                generation,
                msg,
                error=(
                    INTERNAL_ERROR,
                    f"{method} is only relayed during a single tools/call, "
                    "prompts/get or resources/read",
                ),
            )
            return
        ex = asking[0]
        needed = missing_capability(method, msg.params, ex.capabilities)
        if needed is not None:
            self._answer_child(
                generation,
                msg,
                error=(MISSING_CAPABILITY, "the client did not declare " + method),
            )
            self.cancel(ex, "the client lacks a capability the call needs")
            ex.reply.fail(
                id_key(ex.client_id),
                MISSING_CAPABILITY,
                f"the server needs a client capability the request did not "
                f"declare ({method})",
                data={"requiredCapabilities": needed},
            )
            return
        self.input_required(ex, generation, msg)

    def input_required(
        self, ex: StatelessExchange, generation: int, msg: Message
    ) -> None:
        """The child asks ``ex``'s client for input: not relayed (yet)."""
        self._answer_child(
            generation,
            msg,
            error=(INTERNAL_ERROR, "the broker cannot relay this request"),
        )

    def _answer_child(
        self,
        generation: int,
        msg: Message,
        *,
        result: Any = None,
        error: tuple[int, str] | None = None,
    ) -> None:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": msg.body.get("id")}
        if error is not None:
            answer["error"] = {"code": error[0], "message": error[1]}
        else:
            answer["result"] = result
        self.owner.write(_dump(answer), generation)

    # -- logging -------------------------------------------------------------

    def _set_child_level(self) -> None:
        """Keep the child's log level at the most verbose one asked for."""
        if "logging" not in self._capabilities():
            return
        asked = [e.log_level for e in self._in_flight.values() if e.log_level]
        generation = self.owner.generation
        current = self._child_level
        if asked:
            want = min(asked, key=severity)
        elif current is not None and current[0] == generation:
            want = "emergency"
        else:
            return
        if current == (generation, want):
            return
        self._child_level = (generation, want)
        self._next_id += 1
        request = {
            "jsonrpc": "2.0",
            "id": f"fjmcp-log-{self._next_id}",
            "method": "logging/setLevel",
            "params": {"level": want},
        }
        self.owner.write(_dump(request), generation)

    # -- ending ----------------------------------------------------------------

    def _forget(self, ex: StatelessExchange) -> None:
        self._in_flight.pop(ex.child_key, None)
        self._progress.pop(ex.child_key, None)
        if not self.closed:
            self._set_child_level()
        self._check_idle()

    def _fail(self, ex: StatelessExchange, reason: str) -> None:
        self._forget(ex)
        ex.reply.fail(id_key(ex.client_id), INTERNAL_ERROR, reason)

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """Every request still waiting on that child gets a -32603 error."""
        reason = describe_exit(exit) + " before answering"
        for ex in [e for e in self._in_flight.values() if e.generation == generation]:
            self._fail(ex, reason)

    def close(self, reason: str) -> None:
        """The owner ended: fail what is in flight."""
        if self.closed:
            return
        self.closed = True
        for ex in list(self._in_flight.values()):
            self._fail(ex, f"the MCP server process ended: {reason}")
        self._check_idle()

    # -- waiting for quiet ---------------------------------------------------

    def when_idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""
        return self._waiter(None)

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Fires once no request waits for the child of ``generation``."""
        return self._waiter(generation)

    def drain(self) -> Deferred[None]:
        """Shutdown: fire once nothing is in flight."""
        return self.when_idle()

    def _waiter(self, generation: int | None) -> Deferred[None]:
        if not self._waiting_on(generation):
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append((generation, d))
        return d

    def _waiting_on(self, generation: int | None) -> bool:
        if generation is None:
            return bool(self._in_flight)
        return any(e.generation == generation for e in self._in_flight.values())

    def _check_idle(self) -> None:
        if not self._idle_waiters:
            return
        ready = [(g, d) for g, d in self._idle_waiters if not self._waiting_on(g)]
        self._idle_waiters = [w for w in self._idle_waiters if w not in ready]
        for _, d in ready:
            d.callback(None)
