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
- ``subscriptions/listen`` streams carry the child's change notifications
  (`fjmcp.bridge.subscriptions`);
- a client that closes its stream cancels its request: the child gets
  ``notifications/cancelled`` with the broker's id, the client nothing more;
- a request the child sends its client (sampling, elicitation, roots)
  during a ``tools/call``, ``prompts/get`` or ``resources/read`` needs that
  capability in the client's ``_meta``: otherwise the client gets -32021
  and the child an error plus ``notifications/cancelled`` for its call.
  With it, the child's call is *held* (`HeldCall`) and the client gets an
  input-required result: the child's requests under their ids as keys, and
  a sealed ``requestState`` (`fjmcp.bridge.request_state`). The client's
  retry with ``inputResponses`` and that state resumes the held call: the
  answers are written back to the child under its own ids, and the call's
  answer (or the next round of input) goes to the retry. A held call no
  retry resumes is cancelled at the child after ``held_call_timeout``;
  ``max_held_calls`` calls of the identity may wait at once. The stdio pipe
  does not say which call asked: the oldest such call whose client waits
  (and declared the capability) is taken (`IdentityBridge._asker`), which
  is exact for a child that serves one call at a time.

A cap on requests in flight per child answers the ones past it with 429.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from attrs import Factory, define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from fjmcp.bridge.envelope import (
    MISSING_CAPABILITY,
    SERVER_INFO_KEY,
    Envelope,
    EnvelopeError,
    check_param_headers,
    header_params,
    status_for,
)
from fjmcp.bridge.handshake import BrokerInitializer, Negotiated
from fjmcp.bridge.idle import IdleWaiters
from fjmcp.bridge.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    JsonRpcError,
    Kind,
    Message,
    error_body,
    id_key,
    parse_line,
)
from fjmcp.bridge.policy import PolicyEnforcer
from fjmcp.bridge.request_state import (
    RequestStateError,
    RequestStateSealer,
    StateClaims,
    request_digest,
)
from fjmcp.bridge.router import BridgeSettings, tool_name
from fjmcp.bridge.sse import SseWriter, StreamRequest, encode_event
from fjmcp.bridge.subscriptions import Subscriptions
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
from fjmcp.interfaces import ChildExit, ICallObserver
from fjmcp.observers import NO_OBSERVER
from fjmcp.policy.gate import POLICY_REFUSED
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
    held_call_timeout: float = 300.0
    """How long a call waits for the client's input before it is cancelled."""
    max_held_calls: int = 16
    """Calls of one identity waiting for input at once."""
    gather_window: float = 0.05
    """How long requests for input are collected into one result."""
    node: str | None = None
    """This broker's name in requestState (None: the host name)."""


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
    reply: StatelessReply | None
    capabilities: Mapping[str, Any]
    log_level: str | None
    started: float = 0.0
    """When the broker took the request (the reactor's clock)."""
    tool: str | None = None
    """The tool of a ``tools/call``, for the audit log and the metrics."""
    client_progress: Any = None
    params: Mapping[str, Any] = field(factory=dict)
    """The client's params (what a retry must repeat)."""
    held: HeldCall | None = None
    retried: bool = False
    """Answering a retry with input (its result carries no cache hints)."""
    presupplied: dict[str, Any] = field(factory=dict)
    """Answers the client sent with a fresh call (``inputResponses`` without
    a state): a request of the child under one of these keys is answered
    from them, without asking the client."""

    @property
    def child_key(self) -> str:
        """The child id as raw JSON (how the child's answer is matched)."""
        return id_key(self.child_id)


@define(eq=False)
class HeldCall:
    """
    A child's call that waits for its client's input: the child's requests
    not yet answered, by the key the client answers them under.
    """

    id: str
    ex: StatelessExchange
    pending: dict[str, tuple[Any, str, Any]] = field(factory=dict)
    """key -> (the child's request id, method, params)."""
    timer: IDelayedCall | None = None
    gather: IDelayedCall | None = None

    def stop_timers(self) -> None:
        """Cancel the expiry and the gathering."""
        for call in (self.timer, self.gather):
            if call is not None and call.active():
                call.cancel()
        self.timer = self.gather = None


def _input_key(child_request_id: Any) -> str:
    """The key a request for input goes under: the child's id, as text."""
    return (
        child_request_id if isinstance(child_request_id, str) else str(child_request_id)
    )


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
    sealer: RequestStateSealer = field(
        factory=lambda: RequestStateSealer.local("local")
    )
    negotiated: Negotiated = field(factory=Negotiated)
    _held: dict[str, HeldCall] = field(factory=dict)
    _header_params: dict[str, dict[str, tuple[str, str]]] = field(factory=dict)
    """Tools whose arguments go in ``Mcp-Param-*`` headers (from tools/list)."""
    _in_flight: dict[str, StatelessExchange] = field(factory=dict)
    _progress: dict[str, StatelessExchange] = field(factory=dict)
    _next_id: int = 0
    _child_level: tuple[int, str] | None = None
    """(generation, level) last set at the child with ``logging/setLevel``."""
    _handshaker: BrokerInitializer | None = None
    _idle: IdleWaiters = field(
        default=Factory(lambda self: IdleWaiters(self._in_flight), takes_self=True),
        init=False,
    )
    closed: bool = False
    dropped: int = 0
    subscriptions: Subscriptions = field(init=False)
    enforcer: PolicyEnforcer | None = None
    """The identity's tool policy (`fjmcp.bridge.policy`)."""
    calls: ICallObserver = field(default=NO_OBSERVER, kw_only=True)
    """Hears of every request the child answered or failed (audit, metrics)."""

    log = Logger()

    def __attrs_post_init__(self) -> None:
        self.subscriptions = Subscriptions(
            lambda line: self.owner.write(line), self._capabilities
        )

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
                state=self.subscriptions.replay,
            )
        return self._handshaker

    @property
    def busy(self) -> bool:
        """A request in flight or a listen stream open (not idle)."""
        return bool(self._in_flight) or self.subscriptions.open > 0

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
        if needed is not None and needed not in self._capabilities():
            reply.fail(msg.id_json, METHOD_NOT_FOUND, "Method not found", data=method)
            return
        if method == "subscriptions/listen":
            if self.subscriptions.open >= self.limits.max_in_flight:
                reply.fail(
                    msg.id_json,
                    INTERNAL_ERROR,
                    "too many listen streams for this identity; retry later",
                    status=429,
                    headers=[(b"Retry-After", b"%d" % self.limits.retry_after)],
                )
                return
            self.subscriptions.listen(envelope, reply)
            return
        if not self._input_shape_ok(envelope, reply):
            return
        if method == "tools/call":
            try:
                check_param_headers(envelope, self._header_params)
            except EnvelopeError as e:
                reply.fail(e.id_json, e.code, e.message, data=e.data)
                return
        if method in INPUT_METHODS and "requestState" in msg.params:
            self._resume(envelope, reply)
            return
        if self.enforcer is None:
            self._send(envelope, reply)
            return

        def forward() -> None:
            if not self.closed:
                self._send(envelope, reply)

        def refuse(line: bytes) -> None:
            reply.complete(line, status_for(POLICY_REFUSED))

        self.enforcer.admit(msg, forward, refuse)

    def _send(self, envelope: Envelope, reply: StatelessReply) -> None:
        """Hand an admitted request to the child under the broker's id."""
        msg = envelope.message
        method = envelope.method
        client_id = msg.body.get("id")
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
            started=self._clock.seconds(),
            tool=tool_name(msg),
            client_progress=client_progress if has_progress else None,
            params=msg.params,
        )
        responses = msg.params.get("inputResponses")
        if method in INPUT_METHODS and isinstance(responses, dict):
            ex.presupplied = dict(responses)
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
            if self.enforcer is not None and self.enforcer.from_child(msg):
                continue
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
            error = client_error(body["error"], ex.params.get("uri"))
            line = _dump({"jsonrpc": "2.0", "id": ex.client_id, "error": error})
            status = status_for(error["code"])
        else:
            if ex.method == "tools/list":
                self._learn_tools(body.get("result"))
            init = self.negotiated.init_result or {}
            server_info = init.get("serverInfo")
            result = client_result(
                "" if ex.retried else ex.method,
                body.get("result"),
                server_info=server_info if isinstance(server_info, dict) else None,
                ttl_ms=self.limits.ttl_ms,
            )
            if self.enforcer is not None and not ex.retried:
                result = self.enforcer.filter_result(ex.method, result)
            line = _dump({"jsonrpc": "2.0", "id": ex.client_id, "result": result})
            status = 200
        self._forget(ex)
        self._done(ex, "error" if "error" in body else "ok")
        if ex.reply is not None:
            ex.reply.complete(line, status)

    def _learn_tools(self, result: Any) -> None:
        """Remember which tools mirror arguments into headers."""
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                mirrored = header_params(tool.get("inputSchema"))
                if mirrored:
                    self._header_params[tool["name"]] = mirrored
                else:
                    self._header_params.pop(tool["name"], None)

    def _notification(self, msg: Message) -> None:
        method = msg.method
        if method == "notifications/progress":
            ex = self._progress.get(msg.progress_token_json or "")
            if ex is None:
                return
            if ex.reply is None:
                return
            params = dict(msg.params)
            params["progressToken"] = ex.client_progress
            ex.reply.notify(_dump({**msg.body, "params": params}))
        elif method == "notifications/cancelled":
            self._child_cancelled(msg.params.get("requestId"))
        elif method is not None and self.subscriptions.relay(method, msg.params):
            return
        elif method == "notifications/message":
            asking = [e for e in self._in_flight.values() if e.log_level is not None]
            if len(asking) != 1:
                return
            level = msg.params.get("level")
            ex = asking[0]
            if (
                ex.reply is not None
                and isinstance(level, str)
                and severity(level) >= severity(ex.log_level or "debug")
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
        candidates = [
            e
            for e in self._in_flight.values()
            if e.generation == generation and e.method in INPUT_METHODS
        ]
        ex = self._asker(candidates, method, msg.params)
        if ex is None:
            self._answer_child(
                generation,
                msg,
                error=(
                    INTERNAL_ERROR,
                    f"{method} is only relayed during a tools/call, prompts/get "
                    "or resources/read",
                ),
            )
            return
        needed = missing_capability(method, msg.params, ex.capabilities)
        if needed is not None and ex.reply is None:
            # Between rounds: the client can no longer be told; the child can.
            self._answer_child(
                generation,
                msg,
                error=(MISSING_CAPABILITY, "the client did not declare " + method),
            )
            return
        if needed is not None and ex.reply is not None:
            self._answer_child(
                generation,
                msg,
                error=(MISSING_CAPABILITY, "the client did not declare " + method),
            )
            reply = ex.reply
            self.cancel(ex, "the client lacks a capability the call needs")
            reply.fail(
                id_key(ex.client_id),
                MISSING_CAPABILITY,
                f"the server needs a client capability the request did not "
                f"declare ({method})",
                data={"requiredCapabilities": needed},
            )
            return
        self.input_required(ex, generation, msg)

    @staticmethod
    def _asker(
        candidates: list[StatelessExchange], method: str, params: Mapping[str, Any]
    ) -> StatelessExchange | None:
        """
        The call a child's request for input belongs to. The pipe does not
        say: a call whose client waits comes first (a held call only when
        none waits), one whose client declared the capability next, then
        the oldest. Exact for a child that serves one call at a time (the
        oldest call still in flight is the one it runs).
        """
        waiting = [e for e in candidates if e.reply is not None] or candidates
        able = [
            e
            for e in waiting
            if missing_capability(method, params, e.capabilities) is None
        ]
        pool = able or waiting
        return min(pool, key=lambda e: e.child_id) if pool else None

    def input_required(
        self, ex: StatelessExchange, generation: int, msg: Message
    ) -> None:
        """
        The child asks ``ex``'s client for input: hold the call, and (after
        a short window gathering requests sent together) answer the client
        with an input-required result.
        """
        key = _input_key(msg.body.get("id"))
        if key in ex.presupplied:
            self._answer_child(generation, msg, result=ex.presupplied.pop(key))
            return
        held = ex.held
        if held is None:
            if len(self._held) >= self.limits.max_held_calls:
                self._answer_child(
                    generation,
                    msg,
                    error=(
                        INTERNAL_ERROR,
                        "too many calls of this identity wait for input",
                    ),
                )
                return
            held = HeldCall(id=secrets.token_urlsafe(12), ex=ex)
            ex.held = held
            self._held[held.id] = held
        held.pending[key] = (
            msg.body.get("id"),
            msg.method or "",
            msg.params,
        )
        if ex.reply is not None and held.gather is None:
            held.gather = self._clock.callLater(
                self.limits.gather_window, self._ask, held
            )

    def _ask(self, held: HeldCall) -> None:
        """Answer the client with what the child waits for; start the expiry."""
        held.gather = None
        ex = held.ex
        reply = ex.reply
        if reply is None or self._in_flight.get(ex.child_key) is not ex:
            return
        claims = StateClaims(
            user=self.owner.user,
            client_id=self.owner.client_id,
            digest=request_digest(ex.method, ex.params),
            held=held.id,
            node=self.sealer.node,
            expires=self._clock.seconds() + self.limits.held_call_timeout,
        )
        result: dict[str, Any] = {
            "resultType": "input_required",
            "inputRequests": {
                key: {"method": method, "params": params}
                for key, (_, method, params) in held.pending.items()
            },
            "requestState": self.sealer.seal(claims),
        }
        server_info = (self.negotiated.init_result or {}).get("serverInfo")
        if isinstance(server_info, dict):
            result["_meta"] = {SERVER_INFO_KEY: server_info}
        ex.reply = None
        ex.log_level = None
        self._progress.pop(ex.child_key, None)
        self._set_child_level()
        if held.timer is None:
            held.timer = self._clock.callLater(
                self.limits.held_call_timeout, self._expire, held
            )
        reply.complete(_dump({"jsonrpc": "2.0", "id": ex.client_id, "result": result}))

    def _expire(self, held: HeldCall) -> None:
        """Nobody came back with the input: cancel the call at the child."""
        held.stop_timers()
        ex = held.ex
        if ex.reply is not None:
            return
        for child_id, _, _ in held.pending.values():
            self._answer_child_id(
                ex.generation, child_id, (INTERNAL_ERROR, "no input came in time")
            )
        held.pending.clear()
        self.cancel(ex, "the client did not answer the request for input in time")

    def _input_shape_ok(self, envelope: Envelope, reply: StatelessReply) -> bool:
        """``inputResponses`` is an object of objects, ``requestState`` a string."""
        params = envelope.message.params
        problem = None
        if "inputResponses" in params:
            responses = params["inputResponses"]
            if not isinstance(responses, dict):
                problem = "inputResponses must be an object"
            elif not all(isinstance(v, dict) for v in responses.values()):
                problem = "every value of inputResponses must be an object"
        if "requestState" in params and not isinstance(params["requestState"], str):
            problem = "requestState must be a string"
        if problem is None:
            return True
        reply.fail(envelope.message.id_json, INVALID_PARAMS, problem)
        return False

    def _resume(self, envelope: Envelope, reply: StatelessReply) -> None:
        """A retry with input: check its state, write the answers to the child."""
        msg = envelope.message
        params = msg.params
        try:
            claims = self.sealer.open(
                params.get("requestState"),
                user=self.owner.user,
                client_id=self.owner.client_id,
                digest=request_digest(envelope.method, params),
                now=self._clock.seconds(),
            )
        except RequestStateError as e:
            self.log.info(
                "{owner}: requestState refused: {reason}",
                owner=self.owner.described,
                reason=e.reason,
            )
            data: dict[str, Any] = {"reason": "invalid_request_state"}
            if e.node is not None:
                data = {"reason": "held_elsewhere", "node": e.node}
            reply.fail(
                msg.id_json,
                INVALID_PARAMS,
                "Invalid or expired requestState",
                data=data,
            )
            return
        held = self._held.get(claims.held)
        if held is None or self._in_flight.get(held.ex.child_key) is not held.ex:
            reply.fail(
                msg.id_json,
                INVALID_PARAMS,
                "the call waiting for this input is gone; call again",
                data={"reason": "expired"},
            )
            return
        ex = held.ex
        if ex.reply is not None:
            reply.fail(
                msg.id_json,
                INVALID_PARAMS,
                "this call is already being resumed",
                data={"reason": "invalid_request_state"},
            )
            return
        held.stop_timers()
        responses = params.get("inputResponses") or {}
        for key, value in responses.items():
            entry = held.pending.pop(key, None)
            if entry is not None:  # keys not asked for are ignored
                answer = {"jsonrpc": "2.0", "id": entry[0], "result": value}
                self.owner.write(_dump(answer), ex.generation)
        meta = params.get("_meta")
        progress = meta.get("progressToken") if isinstance(meta, dict) else None
        ex.reply = reply
        ex.client_id = msg.body.get("id")
        ex.capabilities = envelope.capabilities
        ex.log_level = envelope.log_level
        ex.retried = True
        if progress is not None and ex.client_progress is not None:
            ex.client_progress = progress
            self._progress[ex.child_key] = ex
        reply.on_gone = lambda: self.cancel(ex, "the client closed the stream")
        self._set_child_level()
        if held.pending:  # some answers are missing: ask again for those
            held.gather = self._clock.callLater(
                self.limits.gather_window, self._ask, held
            )

    def _child_cancelled(self, request_id: Any) -> None:
        """The child withdrew one of its requests for input."""
        for held in self._held.values():
            for key, entry in list(held.pending.items()):
                if entry[0] == request_id and type(entry[0]) is type(request_id):
                    del held.pending[key]

    def _answer_child_id(
        self, generation: int, child_id: Any, error: tuple[int, str]
    ) -> None:
        answer = {
            "jsonrpc": "2.0",
            "id": child_id,
            "error": {"code": error[0], "message": error[1]},
        }
        self.owner.write(_dump(answer), generation)

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
        if ex.held is not None:
            ex.held.stop_timers()
            self._held.pop(ex.held.id, None)
        if not self.closed:
            self._set_child_level()
        self._idle.check()

    def _done(self, ex: StatelessExchange, outcome: str) -> None:
        self.calls.call_done(
            self.owner.identity,
            self.owner.short_id,
            ex.method,
            ex.tool,
            outcome,
            self._clock.seconds() - ex.started,
        )

    def _fail(self, ex: StatelessExchange, reason: str) -> None:
        self._forget(ex)
        self._done(ex, "failed")
        if ex.reply is not None:
            ex.reply.fail(id_key(ex.client_id), INTERNAL_ERROR, reason)

    def child_exited(self, generation: int, exit: ChildExit) -> None:
        """Every request still waiting on that child gets a -32603 error."""
        reason = describe_exit(exit) + " before answering"
        for ex in [e for e in self._in_flight.values() if e.generation == generation]:
            self._fail(ex, reason)
        if self.enforcer is not None:
            self.enforcer.child_exited()

    def close(self, reason: str) -> None:
        """The owner ended: fail what is in flight."""
        if self.closed:
            return
        self.closed = True
        for ex in list(self._in_flight.values()):
            self._fail(ex, f"the MCP server process ended: {reason}")
        self.subscriptions.close_all()
        self._idle.check()

    # -- waiting for quiet ---------------------------------------------------

    def when_idle(self) -> Deferred[None]:
        """Fires once no request is in flight."""
        return self._idle.wait(None)

    def when_generation_idle(self, generation: int) -> Deferred[None]:
        """Fires once no request waits for the child of ``generation``."""
        return self._idle.wait(generation)

    def drain(self) -> Deferred[None]:
        """
        Shutdown: end the listen streams and the held calls (no client
        waits for those) now; fire once nothing is in flight.
        """
        self.subscriptions.close_all()
        for held in list(self._held.values()):
            if held.ex.reply is None:
                self._expire(held)
        return self.when_idle()
