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
  take as long as it needs (SSE streams live for hours);
- once the broker is shutting down (`BrokerSite.stop_accepting`), a request
  that arrives on a connection still open (keep-alive) is answered ``503``
  and the connection closed: closing the listening port alone would let a
  kept-alive client start new sessions, and children, during the drain;
- Twisted's header limits (count and total size) stay as they are;
- responses carry no ``Server: TwistedWeb/<version>`` banner, and a failed
  render never shows its traceback to the client (it is logged);
- the per-request access-log line is not formatted at all (it cost ~7% of
  the per-call CPU of ``/mcp``); requests are logged by the components that
  know what they mean.
"""

from __future__ import annotations

import json
from typing import Any, Final

from attrs import frozen
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from fjmcp.bridge.jsonrpc import INVALID_REQUEST, error_body
from fjmcp.interfaces import IResponseObserver
from fjmcp.observers import NO_OBSERVER

__all__ = ["BrokerSite", "LimitedRequest", "DEFAULT_IDLE_TIMEOUT", "SiteSettings"]

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
    _received: int = 0
    _limit: int = 0
    _deadline: IDelayedCall | None = None

    def __init__(self, channel: Any, *args: Any, **kw: Any) -> None:
        super().__init__(channel, *args, **kw)  # type: ignore[no-untyped-call]
        site = getattr(channel, "site", None)
        if isinstance(site, BrokerSite):
            self._limit = site.max_request_bytes
            self._deadline = site.reactor.callLater(
                site.request_timeout, self._too_slow
            )

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
        self._cancel_deadline()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def render(self, resrc: IResource) -> None:
        """Render without twisted.web's ``Server`` banner (set in ``process``)."""
        self.responseHeaders.removeHeader(b"server")
        super().render(resrc)  # type: ignore[no-untyped-call]

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
