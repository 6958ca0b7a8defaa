# -*- test-case-name: tests.web.test_site -*-
"""
The broker's `Site`: request bodies and slow clients are limited up front.

Plain twisted.web spools a whole request body to memory or a temporary file
before any resource sees it, and a client that sends a byte a minute keeps
its connection forever (the idle timeout restarts on every byte). Here:

- a ``Content-Length`` over ``max_request_bytes`` is answered ``413`` as soon
  as the headers are in, and the connection is closed without reading the
  body (for ``/mcp`` the body is a JSON-RPC error with a null id, which MCP
  clients understand; elsewhere an OAuth-style error object);
- a chunked body is counted as it arrives and cut off the same way the moment
  it passes the limit;
- a request must arrive completely (line, headers, body) within
  ``request_timeout`` seconds of its first line, or it is answered ``408``
  and the connection closed; once a request has arrived, its response may
  take as long as it needs (SSE streams live for hours). The deadline's
  timer is set only for a request still incomplete when the bytes at hand
  are parsed: one that arrives whole (nearly all) costs no timer;
- once the broker is shutting down (`BrokerSite.stop_accepting`), a request
  that arrives on a connection still open (keep-alive) is answered ``503``
  and the connection closed: closing the listening port alone would let a
  kept-alive client start new sessions, and children, during the drain;
- Twisted's header limits (count and total size) stay as they are;
- responses carry no ``Server: TwistedWeb/<version>`` banner, and a failed
  render never shows its traceback to the client (it is logged);
- the per-request access-log line is not formatted at all (it cost ~7% of
  the per-call CPU of ``/mcp``); requests are logged by the components that
  know what they mean;
- a response goes straight to the socket when nothing is queued on it
  (`BrokerChannel`, `fjmcp.fdwrite`): headers are held until the first
  body bytes (or the end of ``Request.write``) and sent with them in one
  ``send``; ``EAGAIN`` or a partial send falls back to Twisted's buffer
  (with ``TCP_NODELAY``, as a stream's closing chunk is a second ``send``);
- the ``Date`` header is formatted once a second (`BrokerSite.http_date`),
  and the connection's addresses are asked of the kernel once per
  connection, not once per request;
- a header line is checked as Twisted checks it (``name: value``, the name
  a token, no NUL, CR or LF in the value, the count limit, the length
  headers choosing the body's decoder) in one step
  (`BrokerChannel.headerReceived`), and stored under its canonical name
  once (`RequestHeaders`); `LimitedRequest.getHeader` reads it back
  without re-encoding anything.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from io import BytesIO
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes as _unquote

from attrs import frozen
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    ITCPTransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import (
    HTTPChannel,
    _GenericHTTPChannelProtocol,
    datetimeToString,
)
from twisted.web.http_headers import Headers, InvalidHeaderName, _nameEncoder
from twisted.web.resource import IResource, _IEncodingResource
from twisted.web.server import Request, Site

from fjmcp.bridge.jsonrpc import INVALID_REQUEST, error_body
from fjmcp.fdwrite import direct_target, write_now
from fjmcp.interfaces import IResponseObserver
from fjmcp.observers import NO_OBSERVER

__all__ = [
    "BrokerChannel",
    "BrokerSite",
    "LimitedRequest",
    "DEFAULT_IDLE_TIMEOUT",
    "RequestHeaders",
    "SiteSettings",
]

#: How long a keep-alive connection may sit idle between requests.
DEFAULT_IDLE_TIMEOUT: Final = 75.0


@frozen(kw_only=True)
class SiteSettings:
    """
    The limits every request meets before any resource sees it.

    :param max_request_bytes: largest body accepted (413 past it).
    :param request_timeout: seconds a request may take to arrive (408 past it).
    :param idle_timeout: seconds a keep-alive connection may idle between
        requests.
    """

    max_request_bytes: int
    request_timeout: float
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


def _raw_response(status: int, reason: bytes, body: dict[str, Any] | bytes) -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n"
        b"\r\n" % (status, reason, len(payload))
    ) + payload


#: The request headers that say how long the body is.
_LENGTH_HEADERS: Final = frozenset((b"Content-Length", b"Transfer-Encoding"))


class RequestHeaders(Headers):
    """
    A request's `Headers` as `BrokerChannel` fills them: each name already
    canonical and each value already checked, so neither is encoded or
    cleaned again on the way in or out.
    """

    __slots__ = ()

    def add_checked(self, canonical: bytes, value: bytes) -> None:
        """Add a value under a canonical name (no CR, LF or NUL in it)."""
        values = self._rawHeaders.get(canonical)
        if values is None:
            self._rawHeaders[canonical] = [value]
        else:
            values.append(value)

    def last(self, name: bytes) -> bytes | None:
        """The last value of ``name`` (any case), or None."""
        values = self._rawHeaders.get(_nameEncoder.encode(name))
        return values[-1] if values else None


class BrokerChannel(HTTPChannel):
    """
    An `HTTPChannel` that writes a response straight to its socket when
    nothing is queued there, and remembers its local address.

    ``writeHeaders`` only holds the header block; the next ``write`` or
    ``writeSequence`` (the first body bytes) sends both in one go, and
    `LimitedRequest.write` sends a header block that no body followed. One
    ``send`` replaces Twisted's arm-for-writing, wait, write, disarm; on a
    transport that is not a plain socket (TLS, a test's fake) every write
    takes Twisted's ordinary path.
    """

    _held: list[bytes] | None = None
    _local: IAddress | None = None
    _peer: IAddress | None = None

    def connectionMade(self) -> None:
        """
        No Nagle delay: a stream's closing chunk follows its last event in a
        second ``send``, which must not wait for the client's ACK.
        """
        super().connectionMade()  # type: ignore[no-untyped-call]
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        """
        Parse what arrived; a request begun but not complete by then gets
        its arrival deadline now (the time of its first line's bytes).
        """
        super().dataReceived(data)  # type: ignore[no-untyped-call]
        requests = self.requests
        if requests:
            last = requests[-1]
            if isinstance(last, LimitedRequest):
                last.arriving()

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Any
    ) -> None:
        """Hold the status line and headers for the first body bytes."""
        if not isinstance(headers, Headers):
            self.flush_held()
            super().writeHeaders(version, code, reason, headers)  # type: ignore[no-untyped-call]
            return
        block = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                block.extend((name, b": ", value, b"\r\n"))
        block.append(b"\r\n")
        self.flush_held()
        self._held = block

    def write(self, data: bytes) -> None:
        """Response bytes (after any held headers), sent at once if possible."""
        self._send([data])

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        """Response bytes (after any held headers), sent at once if possible."""
        self._send(list(iovec))

    def flush_held(self) -> None:
        """Send a held header block now (a response without body bytes yet)."""
        if self._held is not None:
            self._send([])

    def _send(self, chunks: list[bytes]) -> None:
        if self._held is not None:
            chunks = self._held + chunks
            self._held = None
        if not chunks:
            return
        target = direct_target(self.transport)
        if target is None:
            self.transport.writeSequence(chunks)  # type: ignore[union-attr]
        else:
            write_now(target, chunks)

    def requestDone(self, request: Any) -> None:
        """A response is complete: nothing of it may stay held."""
        self.flush_held()
        super().requestDone(request)  # type: ignore[no-untyped-call]

    def loseConnection(self) -> None:
        """Close after sending what is held (as Twisted sends its buffer)."""
        self.flush_held()
        super().loseConnection()  # type: ignore[no-untyped-call]

    def getHost(self) -> IAddress:
        """The local address, asked of the kernel once per connection."""
        if self._local is None:
            self._local = super().getHost()  # type: ignore[no-untyped-call]
        return self._local

    def getPeer(self) -> IAddress:
        """The client's address, built once per connection."""
        if self._peer is None:
            self._peer = super().getPeer()  # type: ignore[no-untyped-call]
        return self._peer

    def headerReceived(self, line: bytes) -> bool:
        """
        Twisted's ``headerReceived`` in fewer steps: the same checks and the
        same 400 on a bad line, the value stored once under its canonical
        name when the request keeps `RequestHeaders`.
        """
        name, colon, value = line.partition(b":")
        if not colon:
            self._respondToBadRequestAndDisconnect()  # type: ignore[no-untyped-call]
            return False
        try:
            canonical = _nameEncoder.encode(name)
        except InvalidHeaderName:
            self._respondToBadRequestAndDisconnect()  # type: ignore[no-untyped-call]
            return False
        value = value.strip(b" \t")
        # int needles: a one-byte bytes needle costs ~9x more on CPython 3.11
        if 0x00 in value or 0x0D in value or 0x0A in value:
            self._respondToBadRequestAndDisconnect()  # type: ignore[no-untyped-call]
            return False
        if canonical in _LENGTH_HEADERS:
            choose = self._maybeChooseTransferDecoder
            if not choose(canonical, value):  # type: ignore[no-untyped-call]
                return False
        headers = self.requests[-1].requestHeaders
        if type(headers) is RequestHeaders:
            headers.add_checked(canonical, value)
        else:
            headers.addRawHeader(canonical, value)
        self._receivedHeaderCount += 1
        if self._receivedHeaderCount > self.maxHeaders:
            self._respondToBadRequestAndDisconnect()  # type: ignore[no-untyped-call]
            return False
        return True


def _broker_channel(factory: Any) -> _GenericHTTPChannelProtocol:
    """`Site.protocol`: Twisted's protocol wrapper around a `BrokerChannel`."""
    return _GenericHTTPChannelProtocol(BrokerChannel())  # type: ignore[no-untyped-call]


def _is_mcp(target: bytes) -> bool:
    """Whether a request target is the MCP endpoint (with a query or below)."""
    return target == b"/mcp" or target.startswith((b"/mcp?", b"/mcp/"))


class LimitedRequest(Request):
    """
    A `Request` that enforces the site's body limit and arrival deadline.

    Rejection bypasses the normal response machinery on purpose: the request
    has not been fully read, so it cannot go through ``render``; a complete
    raw response is written and the connection closed, which also stops
    further reads.
    """

    _log = Logger()
    _rejected: bool = False
    _settled: bool = False
    _received: int = 0
    _limit: int = 0
    _timeout: float | None = None
    _deadline: IDelayedCall | None = None

    def __init__(self, channel: Any, *args: Any, **kw: Any) -> None:
        super().__init__(channel, *args, **kw)  # type: ignore[no-untyped-call]
        self.requestHeaders = RequestHeaders()
        site = getattr(channel, "site", None)
        if isinstance(site, BrokerSite):
            self._limit = site.max_request_bytes
            self._timeout = site.request_timeout

    def arriving(self) -> None:
        """
        The channel parsed all it has and this request is not complete: its
        deadline starts now (once; a request that arrived needs none).
        """
        if self._settled or self._rejected or self._deadline is not None:
            return
        site = getattr(self.channel, "site", None)
        if self._timeout is not None and isinstance(site, BrokerSite):
            self._deadline = site.reactor.callLater(self._timeout, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _reject(self, status: int, reason: bytes, body: dict[str, Any] | bytes) -> None:
        if self._rejected:
            return
        self._rejected = True
        self._cancel_deadline()
        # Nothing more is read into the body: free its buffer (a temporary
        # file for a chunked body) now, not when the connection is gone; the
        # request itself may outlive the connection (a log event holds it).
        if self.content is not None:
            self.content.close()
        transport = self.channel.transport if self.channel else None
        if transport is None:
            return
        transport.write(_raw_response(status, reason, body))
        self.channel.loseConnection()

    def _too_slow(self) -> None:
        self._deadline = None
        self._log.info("request not received within the deadline; closing")
        self._reject(408, b"Request Timeout", {"error": "request_timeout"})

    def _too_large(self) -> None:
        self._log.info("request body over {limit} bytes refused", limit=self._limit)
        body: dict[str, Any] | bytes
        if _is_mcp(self._target()):
            message = f"request body over {self._limit} bytes"
            body = error_body(None, INVALID_REQUEST, message)
        else:
            body = {"error": "request_too_large", "max_bytes": self._limit}
        self._reject(413, b"Content Too Large", body)

    def _target(self) -> bytes:
        """
        The request target as sent. A body is refused before the request is
        complete, and twisted.web sets ``path`` only then; until then the
        channel holds the target (``HTTPChannel._path``, from the first line).
        """
        target = getattr(self.channel, "_path", None)
        return target if isinstance(target, bytes) else b""

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared body over the limit before reading any of it."""
        if self._limit and length is not None and length > self._limit:
            # No "100 Continue" after the refusal: the body is not wanted.
            self.requestHeaders.removeHeader(b"Expect")
            self._too_large()
            # Nothing will be read into it; keep the attribute valid anyway.
            super().gotLength(0)  # type: ignore[no-untyped-call]
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        """Count the body as it arrives; cut a chunked body off at the limit."""
        if self._rejected:
            return
        self._received += len(data)
        if self._limit and self._received > self._limit:
            self._too_large()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The whole request is in: stop the deadline, render unless refused."""
        self._settled = True
        self._cancel_deadline()
        if self._rejected:
            return
        site = getattr(self.channel, "site", None)
        if isinstance(site, BrokerSite) and not site.accepting:
            self._reject(503, b"Service Unavailable", {"error": "shutting_down"})
            return
        if _is_mcp(path):
            # /mcp reads JSON only: skip twisted.web's form parsing, whose
            # Content-Type parser builds an EmailMessage for every POST.
            self._parsePOSTFormSubmission = False
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Any) -> None:
        """The client went away: drop the deadline with the request."""
        self._settled = True
        self._cancel_deadline()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def process(self) -> None:
        """
        Twisted's ``Request.process`` without the ``Server`` banner and with
        the site's once-a-second ``Date``.
        """
        site = getattr(self.channel, "site", None)
        if not isinstance(site, BrokerSite):
            super().process()  # type: ignore[no-untyped-call]
            return
        self.site = site
        self.responseHeaders.setRawHeaders(b"Date", [site.http_date()])
        self.prepath = []
        self.postpath = [_unquote(part) for part in self.path[1:].split(b"/")]
        if self.path == b"*":
            self._handleStar()  # type: ignore[no-untyped-call]
            return
        try:
            resrc = site.getResourceFor(self)  # type: ignore[no-untyped-call]
            if _IEncodingResource.providedBy(resrc):
                encoder = resrc.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(resrc)
        except BaseException:
            self.processingFailed(Failure())  # type: ignore[no-untyped-call]

    def render(self, resrc: IResource) -> None:
        """Render without twisted.web's ``Server`` banner (set in ``process``)."""
        self.responseHeaders.removeHeader(b"server")
        super().render(resrc)  # type: ignore[no-untyped-call]

    def write(self, data: bytes) -> None:
        """Twisted's write; a header block no body followed goes out now."""
        super().write(data)  # type: ignore[no-untyped-call]
        channel = self.channel
        if isinstance(channel, BrokerChannel):
            channel.flush_held()

    def getHeader(self, key: Any) -> Any:
        """One request header (the last value), read without re-encoding."""
        headers = self.requestHeaders
        if type(key) is bytes and type(headers) is RequestHeaders:
            return headers.last(key)
        return super().getHeader(key)

    @property
    def rejected(self) -> bool:
        """Whether this request was refused before it was rendered."""
        return self._rejected


class BrokerSite(Site):
    """
    The `Site` every listener of the broker serves, with the limits of its
    `SiteSettings`; ``reactor`` is the clock of the arrival deadlines.
    """

    requestFactory = LimitedRequest
    protocol = _broker_channel
    noisy = False
    displayTracebacks = False

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        settings: SiteSettings,
        responses: IResponseObserver = NO_OBSERVER,
    ) -> None:
        super().__init__(resource, timeout=settings.idle_timeout, reactor=reactor)  # type: ignore[no-untyped-call]
        self.max_request_bytes = settings.max_request_bytes
        self.request_timeout = settings.request_timeout
        self.accepting = True
        self._responses = responses
        self._date_second = -1
        self._date = b""

    def getContentFile(self, length: int | None) -> IO[bytes]:
        """
        A request body's buffer, as twisted.web picks it (memory for a
        declared length under 100 kB, else a temporary file); defined here
        because twisted.web looks this method up on the site for every
        request and raises (and catches) an AttributeError when it is missing.
        """
        if length is not None and length < 100_000:
            return BytesIO()
        return tempfile.TemporaryFile()

    def http_date(self) -> bytes:
        """The ``Date`` header's value, formatted once a second."""
        second = int(self.reactor.seconds())
        if second != self._date_second:
            self._date = datetimeToString(second)
            self._date_second = second
        return self._date

    def stop_accepting(self) -> None:
        """
        Shutdown: answer every request from now on with 503 and close its
        connection (requests already rendering are not affected).
        """
        self.accepting = False

    def log(self, request: Any) -> None:
        """
        No access-log line (formatting one per request is too costly); the
        status is counted (twisted.web calls this as each response ends).
        """
        self._responses.responded(request.code)
