# -*- test-case-name: tests.web.test_site -*-
"""Tests for `fjmcp.web.site`: body limits before reading, deadlines, no access log."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from fjmcp.web.site import BrokerSite, LimitedRequest, SiteSettings

LIMIT = 1000


class Echo(Resource):
    """Counts renders; answers with the size of the body it got."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.rendered = 0

    def render_POST(self, request: Request) -> bytes:
        """Report the body size."""
        self.rendered += 1
        assert request.content is not None
        return b"got %d" % len(request.content.read())

    def render_GET(self, request: Request) -> bytes:
        """Answer ok."""
        self.rendered += 1
        return b"ok"


def _connect(
    limit: int = LIMIT, timeout: float = 30.0
) -> tuple[Echo, Clock, Any, StringTransport]:
    resource = Echo()
    clock = Clock()
    site = BrokerSite(
        resource,
        reactor=clock,
        settings=SiteSettings(max_request_bytes=limit, request_timeout=timeout),
    )
    # A _GenericHTTPChannelProtocol wrapping the HTTPChannel, as in production.
    channel: Any = site.buildProtocol(  # type: ignore[no-untyped-call]
        IPv4Address("TCP", "127.0.0.1", 1234)
    )
    transport = StringTransport()
    channel.makeConnection(transport)
    return resource, clock, channel, transport


def _post_head(length: int, target: bytes = b"/x") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (
        target,
        length,
    )


def _response(wire: bytes) -> tuple[bytes, dict[bytes, bytes], Any]:
    """The status line, headers (lower-cased names) and JSON body of a raw answer."""
    head, _, body = wire.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers[b"content-length"]) == len(body)
    return status, headers, json.loads(body)


#: What a too-large body to the MCP endpoint is answered with.
MCP_413 = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "request body over 1000 bytes"},
}


def test_content_length_over_limit_is_413_before_body() -> None:
    """A declared body over the limit is refused as soon as the headers end."""
    resource, _, channel, transport = _connect()
    channel.dataReceived(_post_head(LIMIT + 1))
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 413 ")
    assert b'"max_bytes": 1000' in value
    assert transport.disconnecting
    # The body that arrives afterwards is never processed nor rendered.
    channel.dataReceived(b"x" * (LIMIT + 1))
    assert resource.rendered == 0


@pytest.mark.parametrize("target", [b"/mcp", b"/mcp?x=1", b"/mcp/sub"])
def test_mcp_413_is_a_json_rpc_error(target: bytes) -> None:
    """
    A too-large body to /mcp is answered 413 with a JSON-RPC error object
    (null id, -32600, the limit in the message) as application/json.
    """
    resource, _, channel, transport = _connect()
    channel.dataReceived(_post_head(LIMIT + 1, target))
    status, headers, body = _response(transport.value())
    assert status.startswith(b"HTTP/1.1 413 ")
    assert headers[b"content-type"] == b"application/json"
    assert body == MCP_413
    assert transport.disconnecting
    assert resource.rendered == 0


def test_mcp_chunked_413_is_a_json_rpc_error() -> None:
    """A chunked body to /mcp cut off at the limit gets the JSON-RPC error too."""
    _, _, channel, transport = _connect()
    head = b"POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    channel.dataReceived(head + b"%x\r\n%s\r\n" % (LIMIT + 1, b"a" * (LIMIT + 1)))
    status, headers, body = _response(transport.value())
    assert status.startswith(b"HTTP/1.1 413 ")
    assert headers[b"content-type"] == b"application/json"
    assert body == MCP_413


@pytest.mark.parametrize("target", [b"/x", b"/mcpx", b"/oauth/token", b"/"])
def test_other_413_keeps_the_oauth_style_body(target: bytes) -> None:
    """Outside /mcp a too-large body gets the OAuth-style error object."""
    _, _, channel, transport = _connect()
    channel.dataReceived(_post_head(LIMIT + 1, target))
    status, headers, body = _response(transport.value())
    assert status.startswith(b"HTTP/1.1 413 ")
    assert headers[b"content-type"] == b"application/json"
    assert body == {"error": "request_too_large", "max_bytes": LIMIT}


def test_expect_continue_not_sent_after_413() -> None:
    """A client waiting for 100 Continue gets the 413 and nothing after it."""
    _, _, channel, transport = _connect()
    channel.dataReceived(
        b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % (LIMIT + 1)
    )
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in value


def test_body_at_limit_is_accepted() -> None:
    """A body of exactly max_request_bytes is rendered normally."""
    resource, _, channel, transport = _connect()
    channel.dataReceived(_post_head(LIMIT) + b"y" * LIMIT)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert b"got 1000" in transport.value()
    assert resource.rendered == 1


def _chunked(parts: list[bytes], target: bytes = b"/x") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return (
        b"POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" % target
        + body
        + b"0\r\n\r\n"
    )


def test_chunked_body_cut_off_at_limit() -> None:
    """A chunked body is counted as it arrives and refused once past the limit."""
    resource, _, channel, transport = _connect()
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    channel.dataReceived(head + b"%x\r\n%s\r\n" % (600, b"a" * 600))
    assert transport.value() == b""
    channel.dataReceived(b"%x\r\n%s\r\n" % (600, b"b" * 600))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    channel.dataReceived(b"0\r\n\r\n")
    assert resource.rendered == 0


def test_refused_body_buffer_is_closed_at_once() -> None:
    """
    A refused chunked body's buffer (twisted.web spools it to a temporary
    file) is closed when the request is refused, not left to the garbage
    collector: the request may outlive its connection.
    """
    _, _, channel, transport = _connect()
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    channel.dataReceived(head + b"%x\r\n%s\r\n" % (600, b"a" * 600))
    request = channel._channel.requests[-1]
    assert not request.content.closed
    channel.dataReceived(b"%x\r\n%s\r\n" % (600, b"b" * 600))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert request.content.closed


def test_slow_request_buffer_is_closed_at_once() -> None:
    """A request cut off by the deadline has its body buffer closed too."""
    _, clock, channel, _ = _connect(timeout=5.0)
    channel.dataReceived(_post_head(10) + b"abc")
    request = channel._channel.requests[-1]
    clock.advance(5.1)
    assert request.rejected
    assert request.content.closed


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=8),
    split=st.integers(min_value=1, max_value=97),
    target=st.sampled_from([b"/x", b"/mcp"]),
)
def test_chunked_bodies_any_split(sizes: list[int], split: int, target: bytes) -> None:
    """
    However a chunked body is split on the wire, the limit decides the
    answer, and the target its form (JSON-RPC error for /mcp).
    """
    resource, _, channel, transport = _connect()
    wire = _chunked([b"z" * n for n in sizes], target)
    for i in range(0, len(wire), split):
        channel.dataReceived(wire[i : i + split])
    total = sum(sizes)
    if total > LIMIT:
        status, _, body = _response(transport.value())
        assert status.startswith(b"HTTP/1.1 413 ")
        assert (body == MCP_413) == (target == b"/mcp")
        assert resource.rendered == 0
    else:
        assert transport.value().startswith(b"HTTP/1.1 200 ")
        assert b"got %d" % total in transport.value()


def test_slow_request_times_out_with_408() -> None:
    """A request still arriving after request_timeout is answered 408 and closed."""
    resource, clock, channel, transport = _connect(timeout=5.0)
    channel.dataReceived(_post_head(10) + b"abc")
    clock.advance(4.9)
    assert transport.value() == b""
    channel.dataReceived(b"d")  # trickling does not extend the deadline
    clock.advance(0.2)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting
    channel.dataReceived(b"efghij")
    assert resource.rendered == 0


def test_deadline_cancelled_once_request_arrived() -> None:
    """A completely received request is not cut off later (long responses live)."""
    resource, clock, channel, transport = _connect(timeout=5.0)
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert resource.rendered == 1
    clock.advance(100)
    assert b"408" not in transport.value()
    assert not clock.getDelayedCalls() or all(
        c.getTime() > 5.0 for c in clock.getDelayedCalls()
    )


def _closing(transport: StringTransport) -> bool:
    return bool(transport.disconnecting)


def _deadlines(clock: Clock) -> list[float]:
    """The times of pending calls other than the connection's idle timeout."""
    return [c.getTime() for c in clock.getDelayedCalls() if c.getTime() < 75.0]


def test_a_request_arriving_whole_sets_no_deadline_timer() -> None:
    """One read holding the whole request: rendered, and no timer was ever set."""
    resource, clock, channel, transport = _connect(timeout=5.0)
    made: list[float] = []
    call_later = clock.callLater

    def counting(delay: float, *a: Any, **kw: Any) -> Any:
        made.append(delay)
        return call_later(delay, *a, **kw)

    clock.callLater = counting  # type: ignore[method-assign]
    channel.dataReceived(_post_head(3) + b"abc")
    assert resource.rendered == 1 and 5.0 not in made


def test_deadline_runs_from_the_first_bytes_of_a_pipelined_request() -> None:
    """The second of two pipelined requests, cut short, gets its deadline then."""
    resource, clock, channel, transport = _connect(timeout=5.0)
    clock.advance(1.0)
    channel.dataReceived(_post_head(3) + b"abc" + _post_head(10) + b"ab")
    assert resource.rendered == 1
    assert _deadlines(clock) == [6.0]
    clock.advance(5.0)
    assert b"HTTP/1.1 408 " in transport.value()
    assert resource.rendered == 1


def test_requests_after_stop_accepting_get_503_and_close() -> None:
    """
    Once the site stops accepting, a request on an open (keep-alive)
    connection is answered 503 and the connection closed, unrendered.
    """
    resource, _, channel, transport = _connect()
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert resource.rendered == 1
    assert not _closing(transport)
    transport.clear()
    channel.site.stop_accepting()
    channel.dataReceived(_post_head(5) + b"hello")
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 503 ")
    assert b'"shutting_down"' in value
    assert _closing(transport)
    assert resource.rendered == 1


def test_header_limits_kept() -> None:
    """Twisted's header count and size limits stay in force."""
    _, _, channel, transport = _connect()
    inner = channel._channel
    assert isinstance(inner, HTTPChannel)
    assert inner.maxHeaders == HTTPChannel.maxHeaders == 500
    assert inner.totalHeadersSize == HTTPChannel.totalHeadersSize == 16384
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(HTTPChannel.maxHeaders + 2))
    channel.dataReceived(b"GET /x HTTP/1.1\r\n" + many + b"\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")


class ShowHeaders(Resource):
    """Answers with every request header it got, and a few read back one by one."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render(self, request: Request) -> bytes:
        """JSON of the raw headers and of ``getHeader`` for some names."""
        raw = {
            name.decode("latin-1"): [v.decode("latin-1") for v in values]
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        asked = {
            name.decode(): (lambda v: None if v is None else v.decode("latin-1"))(
                request.getHeader(name)
            )
            for name in (b"host", b"X-A", b"x-a", b"CONTENT-LENGTH", b"x-b")
        }
        return json.dumps({"raw": raw, "asked": asked}, sort_keys=True).encode()


def _parse_with(site_factory: Any, wire: bytes) -> bytes:
    site = site_factory(ShowHeaders())
    channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(wire)
    wire_out: bytes = transport.value()
    status, _, rest = wire_out.partition(b"\r\n")
    return status + b" " + rest.partition(b"\r\n\r\n")[2]


_NAMES = st.sampled_from(
    [b"X-A", b"x-a", b"X-B", b"Host", b"content-length", b"X-A", b"X-B", b"X-C"]
    + [b"x a", b"", b"X-\x00", b"X:Y"]
)
_VALUES = st.one_of(
    st.sampled_from([b" v ", b"\tw", b"12", b"1 2", b"a\tb", b""]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8).map(
        str.encode
    ),
    st.binary(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(_NAMES, _VALUES, st.sampled_from([True, True, True, False])),
        max_size=5,
    )
)
def test_header_lines_parse_as_in_twisted(
    lines: list[tuple[bytes, bytes, bool]],
) -> None:
    """
    Whatever the header lines (bad names, NUL/CR/LF in values, no colon,
    repeats, a Content-Length), the broker's channel answers exactly as
    plain twisted.web does: the same 400s, the same headers seen.
    """
    block = b"".join(
        (name + b":" + value if colon else name + value) + b"\r\n"
        for name, value, colon in lines
    )
    wire = b"GET /x HTTP/1.1\r\nHost: h\r\n" + block + b"\r\n"
    ours = _parse_with(
        lambda r: BrokerSite(
            r,
            reactor=Clock(),
            settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30),
        ),
        wire,
    )
    theirs = _parse_with(lambda r: Site(r, reactor=Clock()), wire)
    assert ours.split(b" ", 2)[:2] == theirs.split(b" ", 2)[:2]
    if ours.startswith(b"HTTP/1.1 200"):
        assert ours == theirs


def test_repeated_header_reads_its_last_value() -> None:
    """``getHeader`` gives the last of repeated values, for any case of the name."""
    wire = b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    body = json.loads(
        _parse_with(
            lambda r: BrokerSite(
                r,
                reactor=Clock(),
                settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30),
            ),
            wire,
        )
        .partition(b" ")[2]
        .partition(b" ")[2]
        .partition(b" ")[2]
    )
    assert body["raw"]["X-A"] == ["1", "2"]
    assert body["asked"]["X-A"] == body["asked"]["x-a"] == "2"


def test_body_buffers_are_those_of_twisted_web() -> None:
    """A declared small body is kept in memory, a large or chunked one in a file."""
    site = BrokerSite(
        Echo(),
        reactor=Clock(),
        settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30),
    )
    small = site.getContentFile(10)
    assert isinstance(small, io.BytesIO)
    for length in (None, 100_000):
        buffer = site.getContentFile(length)
        try:
            assert not isinstance(buffer, io.BytesIO)
            buffer.write(b"x")
        finally:
            buffer.close()


def test_no_access_log_formatting() -> None:
    """Finishing a request does not format an access-log line."""
    _, _, channel, transport = _connect()
    site = channel._channel.site
    assert isinstance(site, BrokerSite)

    calls: list[object] = []

    def formatter(*args: object) -> str:
        calls.append(args)
        return ""

    site._logFormatter = formatter
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert calls == []


def test_request_factory_is_limited() -> None:
    """The site builds LimitedRequests."""
    _, _, channel, _ = _connect()
    assert channel._channel.requestFactory is LimitedRequest


class Broken(Resource):
    """Fails while rendering."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Raise, as a bug would."""
        raise RuntimeError("internal detail that must not leak")


def test_responses_carry_no_server_banner() -> None:
    """The site's answers do not name twisted.web or its version."""
    _, _, channel, transport = _connect()
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    head = transport.value().partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 ")
    assert b"\r\nserver:" not in head and b"twisted" not in head


def test_a_failed_render_shows_no_traceback(logged: list[Any]) -> None:
    """A resource that raises gives a 500 without the traceback; it is logged."""
    site = BrokerSite(
        Broken(),  # type: ignore[no-untyped-call]
        reactor=Clock(),
        settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30.0),
    )
    channel: Any = site.buildProtocol(  # type: ignore[no-untyped-call]
        IPv4Address("TCP", "127.0.0.1", 1234)
    )
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    wire = transport.value()
    assert wire.startswith(b"HTTP/1.1 500 ")
    assert b"internal detail" not in wire and b"Traceback" not in wire
    assert b"twisted" not in wire.lower()
    assert any(e.get("log_failure") is not None for e in logged)


class Streaming(Resource):
    """Sends its headers at once and the body later (as an SSE stream does)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.open: list[Request] = []

    def render_GET(self, request: Request) -> int:
        """Headers now, body when the test says."""
        request.setHeader(b"content-type", b"text/event-stream")
        request.write(b"")
        self.open.append(request)
        return NOT_DONE_YET

    def render_POST(self, request: Request) -> bytes:
        """An empty 202, as an accepted notification gets."""
        request.setResponseCode(202)
        return b""


def _streaming(clock: Clock | None = None) -> tuple[Streaming, Any, StringTransport]:
    resource = Streaming()
    site = BrokerSite(
        resource,
        reactor=clock or Clock(),
        settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30.0),
    )
    channel: Any = site.buildProtocol(  # type: ignore[no-untyped-call]
        IPv4Address("TCP", "127.0.0.1", 1234)
    )
    transport = StringTransport()
    channel.makeConnection(transport)
    return resource, channel, transport


def test_headers_without_body_go_out_at_once() -> None:
    """A stream's headers are sent before any of its body exists."""
    resource, channel, transport = _streaming()
    channel.dataReceived(b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n")
    head = transport.value()
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    resource.open[0].write(b"data: x\n\n")
    resource.open[0].finish()
    assert transport.value().endswith(b"0\r\n\r\n")


def test_empty_response_is_complete() -> None:
    """A response with no body bytes (202, Content-Length 0) is sent whole."""
    _, channel, transport = _streaming()
    channel.dataReceived(
        b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    )
    answers = transport.value().split(b"HTTP/1.1 202 ")
    assert answers[0] == b"" and len(answers) == 3
    assert all(b"content-length: 0\r\n\r\n" in a.lower() for a in answers[1:])


def test_headers_and_body_leave_in_one_write() -> None:
    """The header block and the first body bytes reach the transport together."""
    _, _, channel, transport = _connect()
    writes: list[list[bytes]] = []
    original: Any = transport.writeSequence

    def record(seq: Any) -> None:
        writes.append(list(seq))
        original(seq)

    transport.writeSequence = record  # type: ignore[method-assign]
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(writes) == 1
    assert b"".join(writes[0]).endswith(b"\r\n\r\nok")


def test_date_formatted_once_a_second() -> None:
    """Requests within one second share the Date; the next second has its own."""
    clock = Clock()
    clock.advance(1_700_000_000.25)
    _, channel, transport = _streaming(clock)

    def date() -> bytes:
        channel.dataReceived(
            b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        )
        head: bytes = transport.value().split(b"\r\n\r\n")[-2]
        transport.clear()
        return next(
            bytes(line.split(b": ", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"date:")
        )

    first = date()
    assert first == b"Tue, 14 Nov 2023 22:13:20 GMT"
    clock.advance(0.5)
    assert date() == first
    clock.advance(0.5)
    assert date() == b"Tue, 14 Nov 2023 22:13:21 GMT"


def test_local_address_asked_once_per_connection() -> None:
    """The kernel is asked for the local address once, however many requests."""
    _, channel, transport = _streaming()
    asked: list[int] = []
    original: Any = transport.getHost

    def get_host() -> Any:
        asked.append(1)
        return original()

    transport.getHost = get_host  # type: ignore[method-assign]
    for _ in range(3):
        channel.dataReceived(
            b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        )
    assert transport.value().count(b"HTTP/1.1 202 ") == 3
    assert len(asked) == 1


def test_tcp_connections_have_no_nagle_delay() -> None:
    """A TCP connection is switched to TCP_NODELAY when it is made."""

    class TcpTransport(StringTransport):
        nodelay: bool | None = None

        def setTcpNoDelay(self, enabled: bool) -> None:
            self.nodelay = enabled

    implementer(ITCPTransport)(TcpTransport)  # only the call the site makes

    site = BrokerSite(
        Streaming(),
        reactor=Clock(),
        settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30.0),
    )
    channel: Any = site.buildProtocol(  # type: ignore[no-untyped-call]
        IPv4Address("TCP", "127.0.0.1", 1234)
    )
    transport = TcpTransport()  # type: ignore[no-untyped-call]
    channel.makeConnection(transport)
    assert transport.nodelay is True


@pytest_twisted.ensureDeferred
async def test_real_socket_keep_alive_and_streams() -> None:
    """Over a real loopback socket: kept-alive answers and a stream's early headers."""
    import treq
    from twisted.internet import reactor as global_reactor
    from twisted.web.client import HTTPConnectionPool

    reactor: Any = global_reactor
    resource = Streaming()
    site = BrokerSite(
        resource,
        reactor=reactor,
        settings=SiteSettings(max_request_bytes=LIMIT, request_timeout=30.0),
    )
    port: Any = reactor.listenTCP(0, site, interface="127.0.0.1")
    pool = HTTPConnectionPool(reactor, persistent=True)
    url = f"http://127.0.0.1:{port.getHost().port}/s"
    try:
        for _ in range(3):
            response = await treq.post(url, b"", pool=pool)
            assert response.code == 202
            assert await treq.content(response) == b""
        stream = await treq.get(url, pool=pool, unbuffered=True)
        assert stream.code == 200 and resource.open
        resource.open[0].write(b"data: x\n\n")
        resource.open[0].finish()
        assert await treq.content(stream) == b"data: x\n\n"
    finally:
        closing: Any = pool.closeCachedConnections()
        await closing
        await port.stopListening()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    """Requests postpone the idle timeout; quiet for idle_timeout closes."""
    clock = Clock()
    resource, channel, transport = _streaming(clock)
    get = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    for _ in range(3):
        clock.advance(50)
        channel.dataReceived(get)
        resource.open[-1].finish()
    assert not transport.disconnecting
    clock.advance(74)
    assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting


def test_a_long_response_is_not_cut_by_the_idle_timeout() -> None:
    """While a request is answered (an SSE stream for hours) nothing times out."""
    clock = Clock()
    resource, channel, transport = _streaming(clock)
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    for _ in range(10):
        clock.advance(60)
    assert not transport.disconnecting
    resource.open[0].finish()
    clock.advance(74)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting
