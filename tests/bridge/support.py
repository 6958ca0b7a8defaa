# -*- test-case-name: tests.web.test_mcp_resource -*-
"""
A harness for the bridge: the real `McpResource`, `SessionRegistry` and
routing on an in-memory child (`FakeSpawner`), a fixed-identity
authenticator, a `Clock`, and requests that record what was written.

Security is on: the authenticator refuses any header it was not told of,
exactly as the real one refuses unknown tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from fjmcp.config import Config
from fjmcp.interfaces import (
    ChildSpec,
    ICallObserver,
    Identity,
    InvalidToken,
    UpstreamGrant,
    UpstreamGrants,
    UpstreamToken,
)
from fjmcp.observers import NO_OBSERVER
from fjmcp.policy.book import PolicyBook
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.settings import mcp_settings, session_settings
from fjmcp.testing import FakeChild, FakeSpawner
from fjmcp.web.mcp_resource import McpResource

ALICE = Identity(user="alice", client_id="client-a", token_id="t-alice")
ALICE_OTHER_CLIENT = Identity(user="alice", client_id="client-b", token_id="t-alice2")
BOB = Identity(user="bob", client_id="client-a", token_id="t-bob")

TOKENS = {
    b"Bearer alice-token": ALICE,
    b"Bearer alice-b-token": ALICE_OTHER_CLIENT,
    b"Bearer bob-token": BOB,
}

CHALLENGE = 'Bearer resource_metadata="http://127.0.0.1:8080/.well-known/x"'


def challenge(token_sent: bool) -> str:
    """The test challenge, with ``error="invalid_token"`` when a token was sent."""
    return CHALLENGE + (', error="invalid_token"' if token_sent else "")


def make_config(**overrides: Any) -> Config:
    """A valid configuration for tests (loopback public URL)."""
    values: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8080",
        "forgejo_url": "http://127.0.0.1:3000",
        "forgejo_client_id": "fj-client",
        "forgejo_client_secret": "fj-secret",
        "child_command": ("mcp-child",),
    }
    values.update(overrides)
    return Config(**values)


@define
class FixedAuthenticator:
    """Knows the bearer headers in ``TOKENS``; refuses everything else."""

    known: Mapping[bytes, Identity] = TOKENS
    deferred: Deferred[Identity] | None = None
    """When set, `authenticate` returns it (a cache miss still pending)."""

    def cached_identity(self, authorization: bytes | None) -> Identity | None:
        """A known header's identity at once (None while ``deferred`` is set)."""
        if self.deferred is not None or authorization is None:
            return None
        return self.known.get(authorization)

    def authenticate(self, authorization: bytes | None) -> Deferred[Identity]:
        """Answer from ``known`` at once, like a cache hit."""
        if self.deferred is not None:
            return self.deferred
        if authorization is None:
            return fail(InvalidToken("no token", token_sent=False))
        identity = self.known.get(authorization)
        if identity is None:
            return fail(InvalidToken("unknown token", token_sent=True))
        return succeed(identity)


@define
class FakeTokens:
    """
    Each upstream grant's current Forgejo token (generation grows on
    `rotate`): ``forgejo-<user>-<generation>`` for a grant of no scopes,
    ``forgejo-<user>-<scopes>-<generation>`` for another.
    """

    generations: dict[UpstreamGrant, int] = field(factory=dict)
    missing: set[str] = field(factory=set)
    """Users with no token at all."""

    @staticmethod
    def _token(grant: UpstreamGrant, gen: int) -> UpstreamToken:
        tag = "-".join((grant.user, *(s.replace(":", "_") for s in grant.scopes)))
        return UpstreamToken(
            grant.user, f"forgejo-{tag}-{gen}", 1e12, gen, grant.scopes
        )

    def current(self, grant: UpstreamGrant) -> Deferred[UpstreamToken]:
        """The grant's token now."""
        if grant.user in self.missing:
            return fail(KeyError(grant.user))
        return succeed(self._token(grant, self.generations.setdefault(grant, 1)))

    def rotate(self, user: str, scopes: tuple[str, ...] = ()) -> UpstreamToken:
        """A new token for ``user``'s grant ``scopes``."""
        grant = UpstreamGrant(user, scopes)
        self.generations[grant] = self.generations.get(grant, 1) + 1
        return self._token(grant, self.generations[grant])


def spec_factory(token: UpstreamToken, label: str) -> ChildSpec:
    """A spec carrying the token the way the real one does."""
    return ChildSpec(
        argv=("mcp-child",),
        env={"FORGEJO_ACCESS_TOKEN": token.access_token},
        label=label,
        secrets=(token.access_token,),
    )


class TestRequest(DummyRequest):
    """A `DummyRequest` with a method, headers, a body and push-producer support."""

    __test__ = False

    def __init__(
        self,
        method: bytes,
        headers: Mapping[bytes, bytes],
        body: bytes = b"",
    ) -> None:
        super().__init__([b""])
        self.method = method
        for name, value in headers.items():
            self.requestHeaders.setRawHeaders(name, [value])
        self.content = BytesIO(body)
        self.producer: Any = None
        self.aborted = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Record the producer (no pull loop: ours is a push producer)."""
        self.producer = producer

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def loseConnection(self) -> None:
        """Record an abort and tell the watchers the connection is gone."""
        self.aborted = True
        self.disconnect()

    def disconnect(self) -> None:
        """The client goes away."""
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.processingFailed(Failure(ConnectionDone("client went away")))  # type: ignore[no-untyped-call]

    @property
    def status(self) -> int:
        """The response status (200 when none was set)."""
        code = self.responseCode
        return 200 if code is None else int(code)

    @property
    def body(self) -> bytes:
        """Everything written."""
        return b"".join(self.written)

    def header(self, name: bytes) -> bytes | None:
        """One response header."""
        values = self.responseHeaders.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        """The SSE events written so far: ``{"id", "data", "retry"}`` each."""
        return parse_sse(self.body)

    def messages(self) -> list[Any]:
        """
        The JSON-RPC messages answered: those in the SSE events (priming
        events skipped), or the one JSON body (a batch's answers in order).
        """
        if self.header(b"content-type") == b"application/json" and self.body:
            body = self.json()
            return body if isinstance(body, list) else [body]
        return [json.loads(e["data"]) for e in self.events() if e["data"]]


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """A minimal event-stream parser (comments skipped)."""
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block.strip():
            continue
        event: dict[str, Any] = {"id": None, "data": None, "retry": None}
        data: list[str] = []
        only_comments = True
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            only_comments = False
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "id":
                event["id"] = value
            elif name == "retry":
                event["retry"] = int(value)
        if only_comments:
            continue
        event["data"] = "\n".join(data)
        events.append(event)
    return events


@define
class Harness:
    """The bridge wired on fakes."""

    config: Config = field(factory=make_config)
    clock: Clock = field(factory=Clock)
    spawner: FakeSpawner = field(factory=FakeSpawner)
    tokens: FakeTokens = field(factory=FakeTokens)
    auth: FixedAuthenticator = field(factory=FixedAuthenticator)
    calls: ICallObserver = NO_OBSERVER
    request_state_keys: Callable[[], tuple[bytes, ...]] | None = None
    """The requestState keys (None: a random one); nodes of a cluster share them."""
    refusals: Any = NO_OBSERVER
    """Told of the calls the policy refused (an `IPolicyObserver`)."""
    grants: UpstreamGrants = field(factory=UpstreamGrants)
    """The upstream grants per user (default: one, for every consent mode)."""
    registry: SessionRegistry = field(init=False)
    resource: McpResource = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.registry = SessionRegistry(
            self.spawner,
            self.tokens,
            spec_factory,
            self.clock,
            session_settings(self.config),
            grant_of=lambda identity: self.grants.of(identity.user, identity.consent),
        )
        self.resource = McpResource(
            settings=mcp_settings(self.config),
            authenticator=self.auth,
            challenge=challenge,
            registry=self.registry,
            clock=self.clock,
            policies=PolicyBook(self.config.policy),
            calls=self.calls,
            request_state_keys=self.request_state_keys,
            refusals=self.refusals,
        )

    def request(
        self,
        method: bytes,
        body: Any = None,
        *,
        session: str | None = None,
        token: bytes | None = b"Bearer alice-token",
        accept: bytes | None = b"application/json, text/event-stream",
        content_type: bytes | None = b"application/json",
        version: bytes | None = None,
        headers: Mapping[bytes, bytes] | None = None,
    ) -> TestRequest:
        """Render one request and return it (possibly still streaming)."""
        all_headers: dict[bytes, bytes] = {b"host": b"127.0.0.1:8080"}
        if token is not None:
            all_headers[b"authorization"] = token
        if accept is not None:
            all_headers[b"accept"] = accept
        if content_type is not None and method == b"POST":
            all_headers[b"content-type"] = content_type
        if session is not None:
            all_headers[b"mcp-session-id"] = session.encode()
        if version is not None:
            all_headers[b"mcp-protocol-version"] = version
        all_headers.update(headers or {})
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = TestRequest(method, all_headers, raw if body is not None else b"")
        self.resource.render(req)
        return req

    def post(self, message: Any, **kw: Any) -> TestRequest:
        """POST one message (or raw bytes)."""
        return self.request(b"POST", message, **kw)

    def initialize(
        self,
        version: str = "2025-11-25",
        *,
        answer_version: str | None = None,
        token: bytes = b"Bearer alice-token",
        accept: bytes = b"application/json, text/event-stream",
        capabilities: dict[str, Any] | None = None,
    ) -> tuple[str, FakeChild, TestRequest]:
        """Start a session whose child answers initialize; (id, child, request)."""
        req = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            },
            token=token,
            accept=accept,
        )
        sid = req.header(b"mcp-session-id")
        assert sid is not None, req.body
        child = self.spawner.last
        assert json.loads(child.written[-1])["method"] == "initialize"
        child.emit(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "result": {
                        "protocolVersion": answer_version or version,
                        "capabilities": capabilities or {"tools": {}},
                        "serverInfo": {"name": "fake", "version": "1"},
                    },
                }
            ).encode()
        )
        return sid.decode(), child, req


def rpc(id: Any, method: str, params: Any = None) -> dict[str, Any]:
    """A JSON-RPC request."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def note(method: str, params: Any = None) -> dict[str, Any]:
    """A JSON-RPC notification."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def result(id: Any, value: Any = None) -> bytes:
    """A JSON-RPC result line as a child writes it."""
    return json.dumps({"jsonrpc": "2.0", "id": id, "result": value or {}}).encode()


def line(msg: dict[str, Any]) -> bytes:
    """A message as one line."""
    return json.dumps(msg).encode()
