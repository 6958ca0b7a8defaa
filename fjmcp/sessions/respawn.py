# -*- test-case-name: tests.sessions.test_registry -*-
"""
The invisible child swap after a Forgejo token refresh.

A running child holds the old token in its environment, so its owner gets
a new child (the next *generation*) started with the new token, through
the spawn gate like any first child (a rotation of a user with many
sessions is a burst of starts). The owner's
`Handshaker` brings it up (for a session, the bridge replays the client's
handshake and swallows the answers). A fatal handshake failure ends the
owner (its client could not be told what changed); any other leaves the old
child serving. Once the new child is ready it becomes current at once: new
requests go to it, requests in flight on the old child finish there (up to
``drain_timeout``), and the old child is stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import TimeoutError
from twisted.logger import Logger

from fjmcp.interfaces import IChild
from fjmcp.sessions.handshake import HandshakeFailedError

if TYPE_CHECKING:
    from fjmcp.sessions.owner import ChildOwner
    from fjmcp.sessions.registry import GenerationReceiver, SessionRegistry

__all__ = ["bring_up_child", "respawn_owner"]

log = Logger()


def _has_ended(owner: ChildOwner) -> bool:
    return owner.ended


def _is_closing(registry: SessionRegistry) -> bool:
    return registry.closing


async def bring_up_child(
    owner: ChildOwner, child: IChild, receiver: GenerationReceiver, generation: int
) -> None:
    """
    Run the owner's handshake on ``child``: its lines go to the handshake
    until it is done. Raises `HandshakeFailedError`.
    """
    if owner.router is None:
        raise HandshakeFailedError("the owner has no bridge", fatal=True)
    handshake = owner.router.handshaker.begin(child, generation)
    receiver.intercept = handshake
    try:
        await handshake.done
    finally:
        receiver.intercept = None


async def respawn_owner(registry: SessionRegistry, owner: ChildOwner) -> None:
    """Give ``owner`` a child with its grant's current token (module docstring)."""
    token = await registry.tokens.current(owner.grant)
    if registry.closing or owner.ended or token.generation <= owner.token_generation:
        return
    router = owner.router
    if router is None or not router.handshaker.ready:
        return
    # A respawn starts a process like a first spawn: it queues at the gate.
    slot = await registry.start_slot()
    if _is_closing(registry) or _has_ended(owner):  # meanwhile, while queued
        slot()
        return
    old_generation = owner.generation
    generation = max(owner.children, default=old_generation) + 1
    child, receiver = registry.spawn_generation(owner, token, generation, slot)
    try:
        await bring_up_child(owner, child, receiver, generation)
    except HandshakeFailedError as e:
        log.warn(
            "{owner}: respawn failed: {reason}", owner=owner.described, reason=e.reason
        )
        owner.children.pop(generation, None)
        await child.stop()
        if e.fatal:
            await registry.end(owner, e.reason)
        return
    if _has_ended(owner):  # it may have ended while we waited
        await child.stop()
        return
    # The swap: atomic from the reactor's point of view.
    owner.generation = generation
    owner.token_generation = token.generation
    log.info(
        "{owner}: child replaced (generation {generation}, token generation "
        "{token_generation})",
        owner=owner.described,
        generation=generation,
        token_generation=token.generation,
    )
    old_child = owner.children.get(old_generation)
    if old_child is None:
        return
    idle = router.when_generation_idle(old_generation)
    idle.addTimeout(registry.drain_timeout, registry.clock)
    try:
        await idle
    except TimeoutError:
        log.info(
            "{owner}: requests still on the old child after {timeout:g}s; stopping it",
            owner=owner.described,
            timeout=registry.drain_timeout,
        )
    await old_child.stop()
