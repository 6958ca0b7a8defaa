# -*- test-case-name: tests.test_fdwrite -*-
"""
Write to a Twisted file descriptor at once when nothing is queued.

Twisted's `FileDescriptor.write` always buffers: it arms the descriptor for
writing, waits for the reactor to say it is writable, writes, and disarms
it again; two ``epoll_ctl`` calls, one more ``epoll_wait`` and a reactor
iteration for every response, although a socket or pipe whose buffer is
empty nearly always takes the bytes at once. `write_now` tries the
descriptor's own `writeSomeData` first when its buffer is empty, and hands
whatever was not taken (all of it on ``EAGAIN``, which ``writeSomeData``
reports as 0 bytes) to the ordinary buffered `write`, so the order of bytes,
flow control (producers, ``bufferSize``) and the reporting of a lost
connection stay Twisted's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.abstract import FileDescriptor

__all__ = ["write_now", "direct_target"]


def direct_target(transport: object) -> FileDescriptor | None:
    """
    The `FileDescriptor` that can be written directly, or None for any
    other transport (TLS, a test's fake, an old-style ``startTLS``).
    """
    if not isinstance(transport, FileDescriptor) or getattr(transport, "TLS", False):
        return None
    return transport


def _idle(fd: Any) -> bool:
    """Whether ``fd`` is open for writing with nothing buffered."""
    return bool(
        fd.connected
        and not fd.disconnecting
        and not fd._writeDisconnected
        and not fd._tempDataBuffer
        and len(fd.dataBuffer) == fd.offset
    )


def write_now(fd: FileDescriptor, chunks: Sequence[bytes]) -> None:
    """
    Write ``chunks`` to ``fd``: straight to the file descriptor when its
    buffer is empty, the rest (or everything) through ``fd.writeSequence``.
    """
    if not chunks:
        return
    if _idle(fd):
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not data:
            return
        sent = fd.writeSomeData(data)
        if isinstance(sent, int) and sent > 0:
            if sent >= len(data):
                return
            chunks = [data[sent:]]
        # 0 (EAGAIN) or a lost connection: the buffered path queues the
        # bytes and its doWrite meets (and reports) the same condition.
    fd.writeSequence(chunks)
