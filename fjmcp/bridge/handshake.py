# -*- test-case-name: tests.bridge.test_handshake -*-
"""
Bringing a new child up in MCP terms: the two `Handshaker`\\ s the registry
calls (``fjmcp.sessions.handshake``).

- `ReplayHandshaker`, for a session's child respawned after a token
  refresh: the broker replays to it, under ids of its own, the client's
  original ``initialize``, ``notifications/initialized``, the last
  ``logging/setLevel`` and the live ``resources/subscribe`` requests
  (`ReplayState`, kept as the client sends them), and swallows the answers.
  If the new child's initialize result differs from the old one in protocol
  version or capabilities, the client could not be told, so the failure is
  fatal (the session ends; its next request gets 404).
- `BrokerInitializer`, for a child no client initializes (a child owned by
  an identity): the broker acts as the MCP client, sends ``initialize``
  with the newest version it speaks, accepts any version it knows in the
  answer, records the result (`Negotiated`), then sends
  ``notifications/initialized``.

Every answer the handshake waits for is bounded by `HANDSHAKE_TIMEOUT`; a
child that exits meanwhile aborts it (not fatal: the old child, if any,
keeps serving).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

from attrs import define, field
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime

from fjmcp.bridge.jsonrpc import (
    JsonRpcError,
    Kind,
    Message,
    id_key,
    parse_line,
    with_id,
)
from fjmcp.interfaces import IChild
from fjmcp.sessions.handshake import HandshakeFailedError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "BrokerInitializer",
    "Negotiated",
    "ReplayHandshaker",
    "ReplayState",
]

#: How long a new child may take to answer each of the broker's requests.
HANDSHAKE_TIMEOUT: Final = 30.0


@define(eq=False)
class Negotiated:
    """What a child answered ``initialize`` with (None until it has)."""

    protocol_version: str | None = None
    init_result: dict[str, Any] | None = None

    def record(self, result: Any) -> bool:
        """Keep an initialize result; False when it names no protocol version."""
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.protocol_version = result["protocolVersion"]
            self.init_result = result
            return True
        return False


@define(eq=False)
class ReplayState:
    """The client's messages a new child must see to be in the same state."""

    initialize: Message | None = None
    initialized: Message | None = None
    log_level: Message | None = None
    subscriptions: dict[str, Message] = field(factory=dict)
    """``resources/subscribe`` requests by URI (an unsubscribe removes one)."""

    def remember(self, message: Message) -> None:
        """Keep ``message`` if a respawned child must be told it."""
        method = message.method
        if method is None or message.kind is Kind.RESPONSE:
            return
        if method == "initialize":
            self.initialize = message
        elif method == "notifications/initialized":
            self.initialized = message
        elif method == "logging/setLevel":
            self.log_level = message
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            uri = message.params.get("uri")
            if not isinstance(uri, str):
                return
            if method == "resources/subscribe":
                self.subscriptions[uri] = message
            else:
                self.subscriptions.pop(uri, None)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


class _Handshake:
    """
    One bring-up (implements `fjmcp.sessions.handshake.Handshake`): sends
    requests under broker ids, consumes every line of the child, and fires
    each awaited answer, or fails on timeout or abort.
    """

    def __init__(
        self, child: IChild, clock: IReactorTime, prefix: str, timeout: float
    ) -> None:
        self._child = child
        self._clock = clock
        self._prefix = prefix
        self._timeout = timeout
        self._waiting: dict[str, Deferred[Mapping[str, Any]]] = {}
        self.done: Deferred[None] = Deferred()

    def start(self, steps: Coroutine[Any, Any, None]) -> _Handshake:
        """Run ``steps`` (it writes the first lines now); its outcome fires `done`."""
        Deferred.fromCoroutine(self._guarded(steps)).chainDeferred(self.done)
        return self

    async def _guarded(self, steps: Coroutine[Any, Any, None]) -> None:
        try:
            await steps
        except HandshakeFailedError:
            raise
        except Exception as e:  # a child that answers nonsense, not a crash
            raise HandshakeFailedError(
                f"the handshake failed ({type(e).__name__})", fatal=False
            ) from e
        finally:
            self._forget()

    def _forget(self) -> None:
        """Cancel the answers no step will wait for any more (and their timers)."""
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.addErrback(lambda _: None)
            d.cancel()

    def line_received(self, line: bytes) -> None:
        """Consume the line; a response to a broker id fires its waiter."""
        try:
            messages = parse_line(line)
        except JsonRpcError:
            return
        for msg in messages:
            if msg.kind is Kind.RESPONSE and msg.id_json in self._waiting:
                self._waiting.pop(msg.id_json).callback(msg.body)

    def abort(self, reason: str) -> None:
        """Fail the waiting steps, and so `done`, as not fatal."""
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(HandshakeFailedError(reason, fatal=False))
            d.addErrback(lambda _: None)  # the steps after the first never wait

    def request(
        self, name: str, message: Message | dict[str, Any]
    ) -> Deferred[Mapping[str, Any]]:
        """Send a request under the broker id ``<prefix><name>``; its answer."""
        broker_id = self._prefix + name
        d: Deferred[Mapping[str, Any]] = Deferred()
        self._waiting[id_key(broker_id)] = d
        if isinstance(message, Message):
            self.send(with_id(message, broker_id))
        else:
            self.send(_dump({**message, "id": broker_id}))
        return d.addTimeout(self._timeout, self._clock)

    def send(self, line: bytes) -> None:
        """Write one line to the child (a dead child fails the handshake)."""
        try:
            self._child.write_line(line)
        except Exception:
            raise HandshakeFailedError(
                "the new child exited during the handshake", fatal=False
            ) from None

    async def answer(
        self, d: Deferred[Mapping[str, Any]], what: str
    ) -> Mapping[str, Any]:
        """Wait for one answer; a timeout is a non-fatal failure."""
        try:
            return await d
        except TimeoutError:
            raise HandshakeFailedError(
                f"the new child did not answer {what}", fatal=False
            ) from None


@define(eq=False)
class ReplayHandshaker:
    """
    A session's `Handshaker`: replays the client's state to a respawned
    child (module docstring).
    """

    replay: ReplayState
    negotiated: Negotiated
    _clock: IReactorTime
    timeout: float = HANDSHAKE_TIMEOUT

    @property
    def ready(self) -> bool:
        """Only once the client has sent ``initialize`` is there anything to replay."""
        return self.replay.initialize is not None

    def begin(self, child: IChild, generation: int) -> _Handshake:
        """Replay the client's handshake and state to ``child``."""
        handshake = _Handshake(
            child, self._clock, f"fjmcp-respawn-{generation}-", self.timeout
        )
        return handshake.start(self._steps(handshake))

    async def _steps(self, handshake: _Handshake) -> None:
        replay = self.replay
        if replay.initialize is None:
            raise HandshakeFailedError("the client never initialized", fatal=False)
        answer = await handshake.answer(
            handshake.request("initialize", replay.initialize), "initialize"
        )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise HandshakeFailedError("the new child refused initialize", fatal=True)
        old = self.negotiated.init_result or {}
        if result.get("protocolVersion") != old.get("protocolVersion") or result.get(
            "capabilities"
        ) != old.get("capabilities"):
            raise HandshakeFailedError(
                "the new child negotiated another protocol version or capabilities",
                fatal=True,
            )
        if replay.initialized is not None:
            handshake.send(replay.initialized.line)
        state = [replay.log_level] if replay.log_level is not None else []
        state += list(replay.subscriptions.values())
        answers = [
            handshake.request(f"state-{n}", message) for n, message in enumerate(state)
        ]
        for d in answers:
            await handshake.answer(d, "the replayed state")


@define(eq=False)
class BrokerInitializer:
    """
    The `Handshaker` of a child no client initializes: the broker is its
    MCP client (module docstring).

    :param versions: the protocol versions the broker speaks, oldest first;
        the newest is offered.
    :param capabilities: the client capabilities announced to the child
        (what the broker can relay).
    """

    negotiated: Negotiated
    _clock: IReactorTime
    versions: Sequence[str]
    client_info: Mapping[str, Any]
    capabilities: Mapping[str, Any] = field(factory=dict)
    timeout: float = HANDSHAKE_TIMEOUT
    state: Callable[[], Sequence[Mapping[str, Any]]] = lambda: ()
    """Requests that put a new child in its owner's state (e.g. live
    ``resources/subscribe``), sent after ``initialized``; answers swallowed."""

    @property
    def ready(self) -> bool:
        """The broker can always initialize a child."""
        return True

    def begin(self, child: IChild, generation: int) -> _Handshake:
        """Send ``initialize``, record the answer, send ``initialized``."""
        handshake = _Handshake(
            child, self._clock, f"fjmcp-init-{generation}-", self.timeout
        )
        return handshake.start(self._steps(handshake))

    async def _steps(self, handshake: _Handshake) -> None:
        request = {
            "jsonrpc": "2.0",
            "method": "initialize",
            "params": {
                "protocolVersion": self.versions[-1],
                "capabilities": dict(self.capabilities),
                "clientInfo": dict(self.client_info),
            },
        }
        answer = await handshake.answer(
            handshake.request("initialize", request), "initialize"
        )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise HandshakeFailedError("the child refused initialize", fatal=True)
        if result.get("protocolVersion") not in self.versions:
            raise HandshakeFailedError(
                "the child answered with a protocol version the broker does not speak",
                fatal=True,
            )
        self.negotiated.record(result)
        handshake.send(_dump({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        answers = [
            handshake.request(f"state-{n}", {"jsonrpc": "2.0", **message})
            for n, message in enumerate(self.state())
        ]
        for d in answers:
            await handshake.answer(d, "the owner's state")
