# -*- test-case-name: tests.test_fdwrite -*-
"""Tests for `fjmcp.fdwrite`: straight to the descriptor, else Twisted's buffer."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.abstract import FileDescriptor
from twisted.internet.error import ConnectionLost
from twisted.internet.process import ProcessWriter
from twisted.internet.testing import StringTransport

from fjmcp.fdwrite import direct_target, write_now


class Recording(FileDescriptor):
    """A descriptor whose kernel takes ``accept`` bytes per write (None: all)."""

    def __init__(self, accept: int | None = None, lost: bool = False) -> None:
        super().__init__(reactor=object())  # type: ignore[arg-type]
        self.connected = 1
        self.accept = accept
        self.lost = lost
        self.sent: list[bytes] = []
        self.armed = 0

    def writeSomeData(self, data: bytes) -> int | BaseException:
        """Take what the test allows."""
        if self.lost:
            return ConnectionLost()
        taken = len(data) if self.accept is None else min(self.accept, len(data))
        self.sent.append(bytes(data[:taken]))
        return taken

    def startWriting(self) -> None:
        """Count the arming Twisted's buffered path does."""
        self.armed += 1

    def queued(self) -> bytes:
        """What waits in Twisted's buffer."""
        return self.dataBuffer[self.offset :] + b"".join(self._tempDataBuffer)


def test_idle_descriptor_written_at_once_in_one_call() -> None:
    """With nothing queued, the chunks go out joined, in one call, unarmed."""
    fd = Recording()
    write_now(fd, [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])
    assert fd.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert fd.armed == 0 and fd.queued() == b""


def test_eagain_falls_back_to_the_buffer() -> None:
    """A full kernel buffer (0 bytes taken) leaves everything to Twisted."""
    fd = Recording(accept=0)
    write_now(fd, [b"abc", b"def"])
    assert fd.queued() == b"abcdef" and fd.armed == 1


def test_partial_send_buffers_the_rest() -> None:
    """What the kernel did not take is queued, in order."""
    fd = Recording(accept=2)
    write_now(fd, [b"abc", b"def"])
    assert fd.sent == [b"ab"] and fd.queued() == b"cdef" and fd.armed == 1


def test_queued_bytes_keep_their_place() -> None:
    """Bytes already buffered are never overtaken by a direct write."""
    fd = Recording()
    fd.writeSequence([b"first"])
    write_now(fd, [b"second"])
    assert fd.sent == [] and fd.queued() == b"firstsecond"


def test_lost_connection_goes_through_twisted() -> None:
    """A failing descriptor's bytes go to the buffered path, which reports it."""
    fd = Recording(lost=True)
    write_now(fd, [b"x"])
    assert fd.queued() == b"x" and fd.armed == 1


def test_closed_or_closing_descriptor_not_written() -> None:
    """No direct write once the descriptor is closing or gone."""
    closing = Recording()
    closing.disconnecting = True
    write_now(closing, [b"x"])
    gone = Recording()
    gone.connected = 0
    write_now(gone, [b"x"])
    assert closing.sent == [] and gone.sent == [] and gone.queued() == b""


def test_empty_writes_do_nothing() -> None:
    """No chunks, or only empty ones: no call at all."""
    fd = Recording()
    write_now(fd, [])
    write_now(fd, [b"", b""])
    assert fd.sent == [] and fd.armed == 0


@given(
    chunks=st.lists(st.binary(max_size=64), max_size=8),
    accept=st.one_of(st.none(), st.integers(min_value=0, max_value=600)),
    queued=st.binary(max_size=32),
)
def test_every_byte_goes_out_once_in_order(
    chunks: list[bytes], accept: int | None, queued: bytes
) -> None:
    """Sent then queued bytes are exactly the earlier queue and the chunks."""
    fd = Recording(accept=accept)
    if queued:
        fd.writeSequence([queued])
    write_now(fd, chunks)
    assert b"".join(fd.sent) + fd.queued() == queued + b"".join(chunks)


def test_direct_target_only_for_plain_descriptors() -> None:
    """TLS, fakes and other objects keep Twisted's path."""
    plain = Recording()
    tls = Recording()
    tls.TLS = True  # type: ignore[attr-defined]
    assert direct_target(plain) is plain
    assert direct_target(tls) is None
    assert direct_target(StringTransport()) is None
    assert direct_target(None) is None


class Registrations:
    """The reactor calls a descriptor makes, counted (no event loop)."""

    def __init__(self) -> None:
        self.writers = 0

    def addReader(self, fd: object) -> None:
        """Ignored."""

    def removeReader(self, fd: object) -> None:
        """Ignored."""

    def addWriter(self, fd: object) -> None:
        """Counted: an arming for writing."""
        self.writers += 1

    def removeWriter(self, fd: object) -> None:
        """Ignored."""


def test_a_real_pipe_gets_the_bytes() -> None:
    """Against a real pipe the kernel takes the line at once, never armed."""
    read_end, write_end = os.pipe()
    try:
        reactor = Registrations()
        proc: Any = object()
        writer = ProcessWriter(reactor, proc, 0, write_end)
        write_now(writer, [b'{"jsonrpc":"2.0"}', b"\n"])
        assert not writer._tempDataBuffer and reactor.writers == 0
        assert os.read(read_end, 100) == b'{"jsonrpc":"2.0"}\n'
    finally:
        os.close(read_end)
        os.close(write_end)
