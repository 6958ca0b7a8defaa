# -*- test-case-name: tests.sessions.test_registry -*-
"""
The invisible child swap after a Forgejo token refresh.

A running child holds the old token in its environment, so the session gets
a new child (the next *generation*) started with the new token. The broker
replays to it, under ids of its own, the client's original ``initialize``,
``notifications/initialized``, the last ``logging/setLevel`` and the live
``resources/subscribe`` requests, and swallows the answers. If the new
child's initialize result differs from the old one in protocol version or
capabilities, the client could not be told, so the session ends instead
(its next request gets 404 and it initializes again). Otherwise the new
child becomes current at once: new requests go to it, requests in flight on
the old child finish there (up to ``drain_timeout``), and the old child is
stopped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from twisted.internet.defer import Deferred, TimeoutError
from twisted.logger import Logger

from fjmcp.bridge.jsonrpc import JsonRpcError, Kind, id_key, parse_line

if TYPE_CHECKING:
    from fjmcp.sessions.registry import SessionRegistry
    from fjmcp.sessions.session import Session

__all__ = ["HANDSHAKE_TIMEOUT", "respawn_session"]

#: How long a new child may take to answer the replayed messages.
HANDSHAKE_TIMEOUT: Final = 30.0

log = Logger()


class _HandshakeFailedError(Exception):
    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


def _replace_id(line: bytes, new_id: str) -> bytes:
    body = json.loads(line)
    body["id"] = new_id
    return json.dumps(body, separators=(",", ":")).encode("ascii")


class _Handshake:
    """Collects the new child's answers to the broker's replayed requests."""

    def __init__(self, generation: int) -> None:
        self.prefix = f"fjmcp-respawn-{generation}-"
        self.waiting: dict[str, Deferred[dict[str, Any]]] = {}

    def expect(self, name: str) -> tuple[str, Deferred[dict[str, Any]]]:
        broker_id = self.prefix + name
        d: Deferred[dict[str, Any]] = Deferred()
        self.waiting[id_key(broker_id)] = d
        return broker_id, d

    def intercept(self, line: bytes) -> bool:
        """Consume every line until the swap; answers fire their Deferreds."""
        try:
            messages = parse_line(line)
        except JsonRpcError:
            return True
        for msg in messages:
            if msg.kind is Kind.RESPONSE and msg.id_json in self.waiting:
                d = self.waiting.pop(msg.id_json)
                d.callback(dict(msg.body))
        return True


def _ended(session: Session) -> bool:
    return session.ended


async def respawn_session(registry: SessionRegistry, session: Session) -> None:
    """Give ``session`` a child with the user's current token (module docstring)."""
    token = await registry.tokens.current(session.user)
    if (
        registry.closing
        or session.ended
        or token.generation <= session.token_generation
    ):
        return
    replay = session.replay
    if replay.initialize is None or session.router is None:
        return
    old_generation = session.generation
    generation = max(session.children, default=old_generation) + 1
    child, receiver = registry._spawn_generation(session, token, generation)
    handshake = _Handshake(generation)
    receiver.intercept = handshake.intercept
    clock = registry.clock
    try:
        init_id, init_answer = handshake.expect("initialize")
        child.write_line(_replace_id(replay.initialize, init_id))
        ended = child.ended
        init_answer.addTimeout(HANDSHAKE_TIMEOUT, clock)

        def _child_ended(_: object) -> None:
            if not init_answer.called:
                init_answer.errback(
                    _HandshakeFailedError(
                        "the new child exited during the handshake", fatal=False
                    )
                )

        ended.addCallback(_child_ended)
        try:
            answer = await init_answer
        except TimeoutError:
            raise _HandshakeFailedError(
                "the new child did not answer initialize", fatal=False
            ) from None
        result = answer.get("result")
        old = session.init_result or {}
        if not isinstance(result, dict):
            raise _HandshakeFailedError("the new child refused initialize", fatal=True)
        if result.get("protocolVersion") != old.get("protocolVersion") or result.get(
            "capabilities"
        ) != old.get("capabilities"):
            raise _HandshakeFailedError(
                "the new child negotiated another protocol version or capabilities",
                fatal=True,
            )
        if replay.initialized is not None:
            child.write_line(replay.initialized)
        answers: list[Deferred[dict[str, Any]]] = []
        extra = [replay.log_level] if replay.log_level is not None else []
        extra += list(replay.subscriptions.values())
        for n, line in enumerate(extra):
            broker_id, d = handshake.expect(f"state-{n}")
            child.write_line(_replace_id(line, broker_id))
            answers.append(d.addTimeout(HANDSHAKE_TIMEOUT, clock))
        for d in answers:
            try:
                await d
            except TimeoutError:
                raise _HandshakeFailedError(
                    "the new child did not answer the replayed state", fatal=False
                ) from None
    except _HandshakeFailedError as e:
        receiver.intercept = None
        log.warn(
            "session {session}: respawn failed: {reason}",
            session=session.short_id,
            reason=e.reason,
        )
        session.children.pop(generation, None)
        await child.stop()
        if e.fatal:
            await registry.end(session, e.reason)
        return
    if _ended(session):  # it may have ended while we waited
        receiver.intercept = None
        await child.stop()
        return
    # The swap: atomic from the reactor's point of view.
    receiver.intercept = None
    session.generation = generation
    session.token_generation = token.generation
    log.info(
        "session {session}: child replaced (generation {generation}, token "
        "generation {token_generation})",
        session=session.short_id,
        generation=generation,
        token_generation=token.generation,
    )
    old_child = session.children.get(old_generation)
    if old_child is None:
        return
    idle = session.router.when_generation_idle(old_generation)
    idle.addTimeout(registry.drain_timeout, clock)
    try:
        await idle
    except TimeoutError:
        log.info(
            "session {session}: requests still on the old child after {timeout:g}s; "
            "stopping it",
            session=session.short_id,
            timeout=registry.drain_timeout,
        )
    await old_child.stop()
