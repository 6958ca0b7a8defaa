# -*- test-case-name: tests.web.test_mcp_resource -*-
"""
``/mcp``: the MCP Streamable HTTP endpoint, as a plain twisted.web resource.

Not a Klein route: on this path Klein costs 0.1-0.35 ms per call, more than
the whole per-call budget. The checks run in a fixed order, each answering
on its own: Host/Origin (403), bearer token (401 with ``WWW-Authenticate``),
session (400 missing, 404 unknown or ended, 403 another identity's), then
the message (415 Content-Type, 406 Accept, 400 JSON-RPC). Every error body
is a JSON-RPC error; a missing session header is ``-32600`` (never a code
of the stateless 2026-07-28 revision, which dual-protocol clients would
misread).

- ``POST``: one JSON-RPC message (a batch only for sessions that negotiated
  2025-03-26). Requests are answered with an SSE stream when the client
  accepts only that, with one buffered ``application/json`` body when it
  accepts only JSON; a client that accepts both gets JSON when the answer is
  the first thing the child sends for the request, else (a notification,
  a request of the child, a keep-alive, or the priming event of 2025-11-25
  sessions came first) an SSE stream; notifications and responses get 202.
  A POSTed ``initialize`` without ``Mcp-Session-Id`` starts a session (and
  a child).
- ``GET``: the session's standalone SSE stream (one at a time: 409), or,
  with ``Last-Event-ID``, the resumption of any stream of the session.
- ``DELETE``: ends the session (204).
- ``OPTIONS``: CORS preflight for allowed origins.

A POST from a stateless (2026-07-28) client is told apart by its body
first (``params._meta`` names a protocol version; `is_modern`), before any
of the revision's headers is checked, and served by its identity's child
(``fjmcp.bridge.stateless``): the envelope checks
(``fjmcp.bridge.envelope``) answer 400/404 with the revision's codes, the
child is obtained (or started and initialized by the broker) from the
registry, and the answer is one JSON body or an SSE stream of its own. A
body that is not UTF-8 or holds a lone surrogate is a parse error for both
kinds of client, before any child sees it.

``MCP-Protocol-Version`` (deliberately looser than "must equal the
negotiated version"): absent means the negotiated version; the negotiated
version or an *older* supported session-based one is accepted (never
2024-11-05 unless the child negotiated it, never a newer or unknown one:
400). The specification (2025-06-18, 2025-11-25) only requires 400 for an
"invalid or unsupported" version, the official TypeScript and Python SDK
servers accept any supported version, and the conformance suite 0.1.16
sends ``2025-03-26`` on sessions that negotiated ``2025-11-25``. The
session's behaviour (priming, batches) always follows the negotiated
version, never the header.

The per-message path never waits on the database: the bearer check answers
from its cache (an already-fired Deferred) and the rest is memory. Header
values are compared as bytes, and the Content-Type is checked by hand:
twisted.web's own parser builds an ``email.message.EmailMessage`` per
request.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fjmcp.bridge.envelope import (
    EnvelopeError,
    check_notification,
    check_request,
    is_modern,
)
from fjmcp.bridge.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    JsonRpcError,
    Kind,
    Message,
    error_body,
    parse_body,
)
from fjmcp.bridge.policy import PolicyEnforcer
from fjmcp.bridge.request_state import RequestStateSealer
from fjmcp.bridge.router import (
    BridgeSettings,
    DuplicateRequestError,
    JsonReply,
    SessionBridge,
    StreamConflictError,
)
from fjmcp.bridge.sse import McpRequest
from fjmcp.bridge.stateless import IdentityBridge, StatelessReply, StatelessSettings
from fjmcp.bridge.versions import SUPPORTED_VERSIONS, version_at_least
from fjmcp.config import is_loopback_host
from fjmcp.interfaces import (
    IAuthenticator,
    ICallObserver,
    Identity,
    InvalidToken,
    IPolicyObserver,
)
from fjmcp.observers import NO_OBSERVER
from fjmcp.policy.book import PolicyBook
from fjmcp.sessions.owner import ChildOwner, IdentityKey
from fjmcp.sessions.registry import SessionError, SessionRegistry, new_session_id

__all__ = [
    "SUPPORTED_VERSIONS",
    "McpResource",
    "McpSettings",
    "origin_of",
    "version_at_least",
]

PRIMING_SINCE: Final = "2025-11-25"
BATCH_VERSION: Final = "2025-03-26"

EXPOSED_HEADERS: Final = b"WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"
BATCH_REFUSED: Final = (
    "Invalid Request: batches are only accepted for protocol version "
    "2025-03-26; send one message per request"
)
ALLOWED_METHODS: Final = b"GET, POST, DELETE, OPTIONS"
ALLOWED_REQUEST_HEADERS: Final = (
    b"Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, "
    b"Last-Event-ID, Mcp-Method, Mcp-Name"
)
_TOKEN_CHARS: Final = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, "
)

Challenge = Callable[[bool], str | bytes]
"""``token_sent -> WWW-Authenticate value`` (the OAuth component builds it)."""


@frozen(kw_only=True)
class McpSettings:
    """
    Who may call ``/mcp`` from a browser, and how its streams behave.

    :param public_url: the broker's origin.
    :param public_is_loopback: whether it names a loopback host (then the
        ``Host`` header must too: DNS rebinding).
    :param allowed_origins: browser origins allowed besides ``public_url``'s;
        ``scheme://host:*`` allows any port.
    :param stateless: the limits of stateless (2026-07-28) requests.
    :param node_id: this node's name, the prefix of its session ids.
    """

    public_url: str
    public_is_loopback: bool
    allowed_origins: tuple[str, ...]
    streams: BridgeSettings
    stateless: StatelessSettings = StatelessSettings()
    node_id: str = ""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-case, default ports dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    if port is not None and port != default:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


@functools.lru_cache(maxsize=256)
def _loopback_host_header(host: bytes) -> bool:
    """Whether a ``Host`` value names a loopback host (the last few remembered)."""
    return is_loopback_host(_host_name(host))


def _host_name(host: bytes) -> str:
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else ""
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def _media_types(accept: bytes) -> Iterable[bytes]:
    """The media types an Accept header allows (q=0 removed)."""
    for item in accept.split(b","):
        media, _, params = item.partition(b";")
        media = media.strip().lower()
        if params and b"q=0" in params.replace(b" ", b""):
            q = params.replace(b" ", b"").split(b"q=", 1)[1].split(b";", 1)[0]
            try:
                if float(q) == 0:
                    continue
            except ValueError:
                pass
        yield media


@functools.lru_cache(maxsize=64)
def accepts(accept: bytes | None) -> tuple[bool, bool]:
    """
    ``(event-stream acceptable, application/json acceptable)``; the answers
    for the last few values are remembered (a client sends the same one on
    every request).
    """
    if accept is None:
        return True, True
    sse = json = False
    for media in _media_types(accept):
        if media in (b"*/*", b"text/*", b"text/event-stream"):
            sse = True
        if media in (b"*/*", b"application/*", b"application/json"):
            json = True
    return sse, json


@functools.lru_cache(maxsize=64)
def _is_json_content(ctype: bytes | None) -> bool:
    if ctype is None:
        return False
    media = ctype.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class McpResource(Resource):
    """
    The ``/mcp`` endpoint (see the module docstring).

    :param challenge: builds the ``WWW-Authenticate`` value of a 401 from
        whether a token was sent.
    :param calls: told of every request a child answered (metrics, audit).
    :param refusals: told of every call the policy refused (the audit log).
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        *,
        settings: McpSettings,
        authenticator: IAuthenticator,
        challenge: Challenge,
        registry: SessionRegistry,
        clock: IReactorTime,
        policies: PolicyBook,
        request_state_keys: Callable[[], tuple[bytes, ...]] | None = None,
        calls: ICallObserver = NO_OBSERVER,
        refusals: IPolicyObserver = NO_OBSERVER,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._auth = authenticator
        self._challenge = challenge
        self._registry = registry
        self._clock = clock
        self._policies = policies
        self._calls = calls
        self._refusals = refusals
        self._settings = settings.streams
        self._node_id = settings.node_id
        self._loopback = settings.public_is_loopback
        allowed = settings.allowed_origins
        origins = {origin_of(settings.public_url)}
        origins.update(origin_of(o) for o in allowed if not o.endswith(":*"))
        self._stateless = settings.stateless
        # Without keys from the token key ring (tests), a random one: the
        # states then only open in this process, which is all a node needs.
        node = self._stateless.node or socket.gethostname()
        self._sealer = (
            RequestStateSealer.local(node)
            if request_state_keys is None
            else RequestStateSealer(request_state_keys, node)
        )
        self._origins = frozenset(o.encode("ascii", "replace") for o in origins)
        self._any_port = frozenset(
            origin_of(o[:-2]) for o in allowed if o.endswith(":*")
        )

    def bridge_for(self, session: ChildOwner) -> SessionBridge:
        """
        The router factory given to the registry: one bridge per session,
        with the policy of its grant computed once, now.
        """
        enforcer = PolicyEnforcer(
            self._policies.gate_for(session.identity),
            session.identity,
            lambda line: session.write(line),
            session.short_id,
            self._refusals,
        )
        return SessionBridge(
            session, self._clock, self._settings, enforcer=enforcer, calls=self._calls
        )

    def identity_bridge_for(self, owner: ChildOwner) -> IdentityBridge:
        """The router factory of identity owners: one bridge per identity child."""
        enforcer = PolicyEnforcer(
            self._policies.gate_for(owner.identity),
            owner.identity,
            lambda line: owner.write(line),
            owner.short_id,
            self._refusals,
        )
        return IdentityBridge(
            owner,
            self._clock,
            self._settings,
            self._stateless,
            self._sealer,
            enforcer=enforcer,
            calls=self._calls,
        )

    # -- entry ---------------------------------------------------------------

    def render(self, request: McpRequest) -> int:
        """Run the checks in order; every branch answers on its own."""
        request.setHeader(b"Cache-Control", b"no-cache")
        host = request.getHeader(b"host")
        if self._loopback and (host is None or not _loopback_host_header(host)):
            return self._fail(request, 403, INVALID_REQUEST, "Forbidden: bad Host")
        origin = request.getHeader(b"origin")
        if origin is not None:
            if not self._origin_allowed(origin.strip().lower()):
                return self._fail(request, 403, INVALID_REQUEST, "Forbidden: Origin")
            request.setHeader(b"Access-Control-Allow-Origin", origin.strip())
            request.setHeader(b"Vary", b"Origin")
            request.setHeader(b"Access-Control-Expose-Headers", EXPOSED_HEADERS)
        method = request.method
        if method == b"OPTIONS":
            return self._preflight(request)
        if method not in (b"POST", b"GET", b"DELETE"):
            request.setHeader(b"Allow", ALLOWED_METHODS)
            return self._fail(request, 405, INVALID_REQUEST, "Method not allowed")
        authorization = request.getHeader(b"authorization")
        identity = self._auth.cached_identity(authorization)
        if identity is not None:
            self._authenticated(request, identity)
            return NOT_DONE_YET
        outcome: list[Any] = []
        d = self._auth.authenticate(authorization)
        d.addBoth(outcome.append)
        if outcome:
            self._authenticated(request, outcome[0])
        else:
            d.addCallback(lambda _: self._authenticated(request, outcome[0]))
            d.addErrback(self._unexpected, request)
        return NOT_DONE_YET

    def _origin_allowed(self, origin: bytes) -> bool:
        """
        ``public_url``'s origin, a listed one, or a listed ``scheme://host:*``
        (any port, the MCP Python SDK's syntax: a loopback client whose port
        is not known in advance, such as a local proxy or inspector).
        """
        if origin in self._origins:
            return True
        if not self._any_port:
            return False
        try:
            parts = urlsplit(origin.decode("latin-1"))
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:  # "http://[::1", "http://h:port"
            return False
        if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
            return False
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" in self._any_port

    def _preflight(self, request: McpRequest) -> int:
        request.setResponseCode(204)
        request.setHeader(b"Access-Control-Allow-Methods", ALLOWED_METHODS)
        asked = request.getHeader(b"access-control-request-headers")
        if asked and len(asked) < 1024 and all(c in _TOKEN_CHARS for c in asked):
            request.setHeader(b"Access-Control-Allow-Headers", asked)
        else:
            request.setHeader(b"Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS)
        request.setHeader(b"Access-Control-Max-Age", b"600")
        request.setHeader(b"Content-Length", b"0")
        request.finish()
        return NOT_DONE_YET

    def _authenticated(self, request: McpRequest, outcome: Identity | Failure) -> None:
        if isinstance(outcome, Failure):
            error = outcome.value
            if isinstance(error, InvalidToken):
                challenge = self._challenge(error.token_sent)
                if isinstance(challenge, str):
                    challenge = challenge.encode("ascii")
                request.setHeader(b"WWW-Authenticate", challenge)
                self._fail(
                    request, 401, INVALID_REQUEST, f"Unauthorized: {error.reason}"
                )
                return
            self.log.failure("the bearer check failed", outcome)
            self._fail(request, 503, INTERNAL_ERROR, "authentication is unavailable")
            return
        method = request.method
        if method == b"POST":
            self._post(request, outcome)
        elif method == b"GET":
            self._get(request, outcome)
        else:
            self._delete(request, outcome)

    # -- helpers -------------------------------------------------------------

    def _fail(
        self,
        request: McpRequest,
        status: int,
        code: int,
        message: str,
        *,
        id_json: str | None = None,
        data: Any = None,
    ) -> int:
        body = error_body(id_json, code, message, data)
        request.setResponseCode(status, _REASONS.get(status))
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()
        return NOT_DONE_YET

    def _accepted(self, request: McpRequest) -> None:
        request.setResponseCode(202)
        request.setHeader(b"Content-Length", b"0")
        request.finish()

    def _unexpected(self, failure: Failure, request: McpRequest) -> None:
        self.log.failure("/mcp request failed", failure)
        if not getattr(request, "finished", False) and not getattr(
            request, "startedWriting", False
        ):
            self._fail(request, 500, INTERNAL_ERROR, "internal error")

    def _session_error(
        self, request: McpRequest, error: SessionError, id_json: str | None = None
    ) -> None:
        if error.retry_after is not None:
            request.setHeader(b"Retry-After", b"%d" % error.retry_after)
        if error.status == 401:
            request.setHeader(b"WWW-Authenticate", _as_bytes(self._challenge(True)))
        code = INVALID_REQUEST if error.status in (400, 403, 404) else INTERNAL_ERROR
        self._fail(
            request,
            error.status,
            code,
            error.message,
            id_json=id_json,
            data=dict(error.data) if error.data else None,
        )

    def _session(
        self,
        request: McpRequest,
        identity: Identity,
        sid: bytes | None,
        version_header: bytes | None,
    ) -> ChildOwner | None:
        """
        The session ``sid`` (the ``Mcp-Session-Id`` header) names, answering
        the request when there is none.
        """
        if sid is None:
            self._fail(
                request,
                400,
                INVALID_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
            )
            return None
        try:
            session = self._registry.lookup(sid.decode("latin-1"), identity)
        except SessionError as e:
            self._session_error(request, e)
            return None
        if not self._version_ok(request, session, version_header):
            return None
        session.touch(self._clock.seconds())
        return session

    def _version_ok(
        self, request: McpRequest, session: ChildOwner, header: bytes | None
    ) -> bool:
        if header is None:
            return True
        version = header.decode("latin-1").strip()
        negotiated = self._bridge(session).protocol_version
        if negotiated is None:
            ok = version in SUPPORTED_VERSIONS
        else:
            # The negotiated version, or an older session-based one: the
            # official SDK servers accept any supported version here, and the
            # conformance suite (0.1.16) sends 2025-03-26 on 2025-11-25
            # sessions. The session keeps its negotiated behaviour either way.
            # 2024-11-05 only when negotiated; never a newer one.
            ok = version == negotiated or (
                version in SUPPORTED_VERSIONS
                and version != SUPPORTED_VERSIONS[0]
                and negotiated in SUPPORTED_VERSIONS
                and SUPPORTED_VERSIONS.index(version)
                <= SUPPORTED_VERSIONS.index(negotiated)
            )
        if not ok:
            shown = version[:40]
            expected = negotiated or "one of " + ", ".join(SUPPORTED_VERSIONS)
            self._fail(
                request,
                400,
                INVALID_REQUEST,
                f"Bad Request: MCP-Protocol-Version {shown!r} does not match this "
                f"session's negotiated version ({expected})",
            )
        return ok

    def _bridge(self, session: ChildOwner) -> SessionBridge:
        bridge = session.router
        if not isinstance(bridge, SessionBridge):  # pragma: no cover - wiring bug
            raise TypeError("session without a bridge")
        return bridge

    # -- POST ------------------------------------------------------------------

    def _post(self, request: McpRequest, identity: Identity) -> None:
        content = request.content
        body = content.read() if content is not None else b""
        parsed: tuple[list[Message], bool] | JsonRpcError
        try:
            parsed = parse_body(body, allow_batch=True)
        except JsonRpcError as e:
            parsed = e
        sid = request.getHeader(b"mcp-session-id")
        version_header = request.getHeader(b"mcp-protocol-version")
        has_session = sid is not None
        single = (
            parsed[0][0]
            if not isinstance(parsed, JsonRpcError) and not parsed[1]
            else None
        )
        if is_modern(
            single,
            has_session=has_session,
            version_header=version_header,
        ):
            self._stateless_post(request, identity, parsed)
            return
        session = None
        if has_session:
            session = self._session(request, identity, sid, version_header)
            if session is None:
                return
        accepted = accepts(request.getHeader(b"accept"))
        if not self._message_acceptable(request, accepted, need_both=False):
            return
        if isinstance(parsed, JsonRpcError):
            self._fail(
                request, 400, parsed.code, parsed.message, id_json=parsed.id_json
            )
            return
        messages, is_batch = parsed
        allow_batch = (
            session is not None
            and self._bridge(session).protocol_version == BATCH_VERSION
        )
        if is_batch and not allow_batch:
            self._fail(request, 400, INVALID_REQUEST, BATCH_REFUSED)
            return
        init = [m for m in messages if m.method == "initialize" and m.is_request]
        if session is None:
            if len(messages) != 1 or not init:
                self._fail(
                    request,
                    400,
                    INVALID_REQUEST,
                    "Bad Request: Mcp-Session-Id header is required",
                )
                return
            self._initialize(request, identity, init[0], accepted)
            return
        if init:
            self._fail(
                request,
                400,
                INVALID_REQUEST,
                "Bad Request: this session is already initialized; send initialize "
                "without Mcp-Session-Id to start a new one",
                id_json=init[0].id_json,
            )
            return
        self._dispatch(request, session, messages, is_batch, accepted)

    def _message_acceptable(
        self, request: McpRequest, accepted: tuple[bool, bool], *, need_both: bool
    ) -> bool:
        """
        The Content-Type (415) and Accept (406) checks; a stateless request
        must accept both JSON and an event stream.
        """
        if not _is_json_content(request.getHeader(b"content-type")):
            self._fail(
                request,
                415,
                INVALID_REQUEST,
                "Unsupported Media Type: Content-Type must be application/json",
            )
            return False
        sse_ok, json_ok = accepted
        if need_both and not (sse_ok and json_ok):
            self._fail(
                request,
                406,
                INVALID_REQUEST,
                "Not Acceptable: Accept must list application/json and "
                "text/event-stream",
            )
            return False
        if not (sse_ok or json_ok):
            self._fail(
                request,
                406,
                INVALID_REQUEST,
                "Not Acceptable: Accept must allow text/event-stream or "
                "application/json",
            )
            return False
        return True

    # -- stateless POST --------------------------------------------------------

    def _stateless_post(
        self,
        request: McpRequest,
        identity: Identity,
        parsed: tuple[list[Message], bool] | JsonRpcError,
    ) -> None:
        """A stateless request: the envelope checks, then its identity's child."""
        accepted = accepts(request.getHeader(b"accept"))
        if not self._message_acceptable(request, accepted, need_both=True):
            return
        if isinstance(parsed, JsonRpcError):
            self._fail(
                request, 400, parsed.code, parsed.message, id_json=parsed.id_json
            )
            return
        messages, is_batch = parsed
        if is_batch:
            self._fail(request, 400, INVALID_REQUEST, "Invalid Request: no batches")
            return
        message = messages[0]

        def raw_headers(name: bytes) -> list[bytes]:
            return list(request.requestHeaders.getRawHeaders(name, []))

        try:
            if message.kind is Kind.NOTIFICATION:
                check_notification(raw_headers)
                self._accepted(request)
                return
            params = {
                name.decode("latin-1").lower()[len("mcp-param-") :]: tuple(values)
                for name, values in request.requestHeaders.getAllRawHeaders()
                if name.lower().startswith(b"mcp-param-")
            }
            envelope = check_request(message, raw_headers, params)
        except EnvelopeError as e:
            self._fail(
                request, e.status, e.code, e.message, id_json=e.id_json, data=e.data
            )
            return
        reply = StatelessReply(request, self._clock, self._settings)
        reply.watch()
        d = Deferred.fromCoroutine(
            self._registry.obtain(
                IdentityKey.of(identity), identity, self.identity_bridge_for
            )
        )

        def _ready(owner: ChildOwner) -> None:
            owner.touch(self._clock.seconds())
            self._registry.respawn_if_stale(owner)
            bridge = owner.router
            if not isinstance(bridge, IdentityBridge):  # pragma: no cover - wiring
                raise TypeError("identity owner without an identity bridge")
            bridge.serve(envelope, reply)

        def _failed(failure: Failure) -> None:
            error = failure.value
            if not isinstance(error, SessionError):
                self.log.failure("stateless request failed", failure)
                reply.fail(
                    message.id_json, INTERNAL_ERROR, "internal error", status=500
                )
                return
            headers = []
            if error.retry_after is not None:
                headers.append((b"Retry-After", b"%d" % error.retry_after))
            if error.status == 401:
                headers.append((b"WWW-Authenticate", _as_bytes(self._challenge(True))))
            reply.fail(
                message.id_json,
                INTERNAL_ERROR,
                error.message,
                data=dict(error.data) if error.data else None,
                status=error.status,
                headers=headers,
            )

        d.addCallbacks(_ready, _failed)
        d.addErrback(self._unexpected, request)

    def _initialize(
        self,
        request: McpRequest,
        identity: Identity,
        message: Message,
        accepted: tuple[bool, bool],
    ) -> None:
        requested = message.params.get("protocolVersion")
        requested = requested if isinstance(requested, str) else None
        d = Deferred.fromCoroutine(
            self._registry.create(
                new_session_id(self._node_id), identity, self.bridge_for
            )
        )

        def _created(session: ChildOwner) -> None:
            request.setHeader(b"Mcp-Session-Id", session.id.encode("ascii"))
            prime = version_at_least(requested, PRIMING_SINCE)
            self._dispatch(request, session, [message], False, accepted, prime=prime)

        def _failed(failure: Failure) -> None:
            if isinstance(failure.value, SessionError):
                self._session_error(request, failure.value, message.id_json)
                return
            self._unexpected(failure, request)

        d.addCallbacks(_created, _failed)
        d.addErrback(self._unexpected, request)

    def _dispatch(
        self,
        request: McpRequest,
        session: ChildOwner,
        messages: list[Message],
        is_batch: bool,
        accepted: tuple[bool, bool],
        *,
        prime: bool | None = None,
    ) -> None:
        # A child older than the user's newest Forgejo token is replaced
        # now, while this message still goes to it (never on a GET).
        self._registry.respawn_if_stale(session)
        bridge = self._bridge(session)
        if not any(m.kind is Kind.REQUEST for m in messages):
            for msg in messages:
                bridge.to_child(msg)
            self._accepted(request)
            return
        requests = [m for m in messages if m.kind is Kind.REQUEST]
        try:
            bridge.check_new_ids(requests)
        except DuplicateRequestError as e:
            self._fail(
                request,
                400,
                INVALID_REQUEST,
                f"Invalid Request: {e}",
                id_json=e.id_json,
            )
            return
        if prime is None:
            prime = version_at_least(bridge.protocol_version, PRIMING_SINCE)
        sse_ok, json_ok = accepted
        if sse_ok:
            # Lazy when JSON is acceptable too: a stream that would carry
            # nothing but the answer goes out as one JSON body (priming, a
            # notification or a keep-alive first makes it a stream).
            writer = bridge.new_writer(request)
            writer.start(lazy=json_ok)
            bridge.begin(messages, writer=writer, prime=prime)
        else:
            reply = JsonReply(request, batch=is_batch)
            reply.watch()
            bridge.begin(messages, reply=reply)

    # -- GET -------------------------------------------------------------------

    def _get(self, request: McpRequest, identity: Identity) -> None:
        session = self._session(
            request,
            identity,
            request.getHeader(b"mcp-session-id"),
            request.getHeader(b"mcp-protocol-version"),
        )
        if session is None:
            return
        sse_ok, _ = accepts(request.getHeader(b"accept"))
        if not sse_ok:
            self._fail(
                request,
                406,
                INVALID_REQUEST,
                "Not Acceptable: the GET stream needs Accept: text/event-stream",
            )
            return
        bridge = self._bridge(session)
        prime = version_at_least(bridge.protocol_version, PRIMING_SINCE)
        last = request.getHeader(b"last-event-id")
        if last is not None and bridge.resumable(last):
            writer = bridge.new_writer(request)
            writer.start()
            bridge.resume(last, writer, prime=prime)
            return
        if bridge.standalone_attached:
            self._fail(
                request,
                409,
                INVALID_REQUEST,
                "Conflict: a GET stream is already open for this session",
            )
            return
        writer = bridge.new_writer(request)
        writer.start()
        try:
            bridge.open_standalone(writer, prime=prime)
        except StreamConflictError:  # pragma: no cover - checked just above
            writer.finish()

    # -- DELETE ----------------------------------------------------------------

    def _delete(self, request: McpRequest, identity: Identity) -> None:
        session = self._session(
            request,
            identity,
            request.getHeader(b"mcp-session-id"),
            request.getHeader(b"mcp-protocol-version"),
        )
        if session is None:
            return
        self._registry.end(session, "deleted by the client", "deleted")
        request.setResponseCode(204)
        request.finish()


#: Reason phrases twisted.web does not know.
_REASONS: Final = {429: b"Too Many Requests"}


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value
