# -*- test-case-name: tests.integration.test_lifecycle_real -*-
"""
A whole broker for the lifecycle tests: the stand-in Forgejo and the real
`BrokerService` (store on disk, key ring, OAuth routes, ``/mcp``, supervisor,
idle reaper, token refresher, admin socket), both on 127.0.0.1 in this
process on the test reactor, with real children (``tests/children/
token_server.py``, whose ``whoami`` proves which token it holds and that
Forgejo accepts it).

Users sign in through the real OAuth flow (register, consent, the stand-in's
login form, callback, token), driven by the walk-through's `Browser`; MCP
calls go through a real HTTP client. Waiting is always bounded: `wait_for`
polls on the reactor until a condition holds or its deadline passes.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import define, field
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool

from fjmcp.awaitables import maybe_await
from fjmcp.config import Config
from fjmcp.interfaces import UpstreamToken
from fjmcp.maintenance.reaper import IdleReaper
from fjmcp.maintenance.refresher import TokenRefresher
from fjmcp.oauth.keys import prepend_new_key
from fjmcp.oauth.pkce import new_verifier, s256
from fjmcp.service import BrokerService
from fjmcp.sessions.owner import ChildOwner
from fjmcp.sessions.registry import SessionRegistry
from fjmcp.standin.app import (
    StandinClient,
    StandinConfig,
    StandinForgejo,
    StandinUser,
    start_standin,
)
from tests.e2e.live import free_port
from tests.integration.test_oauth_walkthrough import (
    Browser,
    _field,
    _location,
    _query,
)

reactor: Any = _reactor

CHILDREN = Path(__file__).resolve().parent.parent / "children"


def _readable_by_anyone(path: Path) -> bool:
    """Every folder above ``path`` lets others through and ``path`` lets them read."""
    if not os.stat(path).st_mode & 0o005 == 0o005:
        return False
    return all(os.stat(p).st_mode & 0o001 for p in path.parents)


_ANY_UID_CHILDREN: list[Path] = []


def children_for_any_uid() -> Path:
    """
    The test children, where a child running under another uid can read
    them: `CHILDREN` itself when its path is open to others, else a copy in
    a world-readable folder (a checkout under a 0700 temporary folder, as a
    fresh clone in ``mktemp -d`` is, hides them from every other uid).
    """
    if _readable_by_anyone(CHILDREN) and all(
        os.stat(f).st_mode & 0o004 for f in CHILDREN.glob("*.py")
    ):
        return CHILDREN
    if not _ANY_UID_CHILDREN:
        copy = Path(tempfile.mkdtemp(prefix="fjmcp-children-", dir="/var/tmp"))
        copy.chmod(0o755)
        for source in CHILDREN.glob("*.py"):
            shutil.copy(source, copy / source.name)
            (copy / source.name).chmod(0o644)
        atexit.register(shutil.rmtree, copy, True)
        _ANY_UID_CHILDREN.append(copy)
    return _ANY_UID_CHILDREN[0]


FORGEJO_CLIENT = "fjmcp-lifecycle"
FORGEJO_SECRET = "lifecycle-forgejo-secret"  # noqa: S105 - a test value
#: The second application read-only grants are made through, when a test
#: gives read-only consents scopes of their own.
FORGEJO_RO_CLIENT = "fjmcp-lifecycle-read-only"
FORGEJO_RO_SECRET = "lifecycle-read-only-secret"  # noqa: S105 - a test value
REDIRECT = "http://127.0.0.1:45999/callback"
WAIT = 30.0
PROTOCOL = "2025-11-25"


def make_user(login: str, repos: tuple[str, ...] = ()) -> StandinUser:
    """A stand-in account whose password is derived from the login."""
    return StandinUser(login, f"{login}-password", full_name=login.title(), repos=repos)


def digest(token: str) -> str:
    """What `token_server.py` reports for a token (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


async def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = WAIT
) -> None:
    """Poll ``condition`` on the reactor until it holds; fail after ``timeout``."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await deferLater(reactor, 0.02, lambda: None)


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> list[str]:
    """What each open descriptor of this process points at (for reports)."""
    out = []
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out.append(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue
    return out


def forgejo_connections(d: Deployment) -> int:
    """This process's open client connections to the stand-in (keep-alive)."""
    port = int(d.standin.base_url.rsplit(":", 1)[1])
    mine = {t.split("[", 1)[1].rstrip("]") for t in fd_targets() if "socket:[" in t}
    count = 0
    with open("/proc/net/tcp", encoding="ascii") as fh:
        for line in fh.readlines()[1:]:
            f = line.split()
            remote_port = int(f[2].split(":")[1], 16)
            if f[9] in mine and remote_port == port and f[3] == "01":
                count += 1
    return count


def zombie_children() -> list[int]:
    """Pids of this process's children that have exited but not been reaped."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces; split after it.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and state == "Z":
            found.append(int(entry))
    return found


def waitpid_finds_none() -> bool:
    """True when ``os.waitpid(-1, WNOHANG)`` reaps nothing (no zombie child)."""
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True  # no children at all
    return pid == 0


def live_session_objects() -> int:
    """`ChildOwner` instances still reachable after a full collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, ChildOwner))


@define
class Call:
    """The outcome of one MCP request."""

    status: int
    body: Any

    @property
    def result(self) -> dict[str, Any]:
        """The JSON-RPC result (fails the test if there is none)."""
        assert self.status == 200, (self.status, self.body)
        assert isinstance(self.body, dict) and "result" in self.body, self.body
        result: dict[str, Any] = self.body["result"]
        return result

    @property
    def ok(self) -> bool:
        """A 200 with a result that is not an error result."""
        return (
            self.status == 200
            and isinstance(self.body, dict)
            and isinstance(self.body.get("result"), dict)
            and not self.body["result"].get("isError")
        )


@define
class McpClient:
    """An MCP client over Streamable HTTP (JSON answers) with one bearer token."""

    url: str
    token: str = field(repr=False)
    pool: HTTPConnectionPool = field(
        factory=lambda: HTTPConnectionPool(reactor, persistent=True)
    )
    _next_id: int = 0
    _http: HTTPClient = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.pool.maxPersistentPerHost = 32
        self._http = HTTPClient(Agent(reactor, connectTimeout=5, pool=self.pool))

    def _headers(self, session: str | None) -> dict[bytes | str, bytes | str]:
        headers: dict[bytes | str, bytes | str] = {
            b"authorization": b"Bearer " + self.token.encode(),
            b"content-type": b"application/json",
            b"accept": b"application/json, text/event-stream",
        }
        if session is not None:
            headers[b"mcp-session-id"] = session.encode()
            headers[b"mcp-protocol-version"] = PROTOCOL.encode()
        return headers

    async def post(self, message: dict[str, Any], session: str | None) -> Any:
        """POST one message; the response with its body read."""
        d = self._http.post(
            self.url, data=json.dumps(message).encode(), headers=self._headers(session)
        )
        response = await d.addTimeout(WAIT, reactor)
        body = await response.content()
        return response, body

    async def request(
        self, method: str, params: dict[str, Any], session: str | None
    ) -> Call:
        """One JSON-RPC request; its answer, parsed from JSON or one SSE event."""
        self._next_id += 1
        message = {
            "jsonrpc": "2.0",
            "id": self._next_id,
            "method": method,
            "params": params,
        }
        response, body = await self.post(message, session)
        return Call(response.code, _parse_answer(response, body))

    async def initialize(self) -> str:
        """initialize + notifications/initialized; the session id."""
        self._next_id += 1
        response, body = await self.post(
            {
                "jsonrpc": "2.0",
                "id": self._next_id,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "lifecycle-it", "version": "1"},
                },
            },
            None,
        )
        assert response.code == 200, (response.code, body)
        answer = _parse_answer(response, body)
        assert answer["result"]["protocolVersion"] == PROTOCOL, answer
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        ack, _ = await self.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, session
        )
        assert ack.code == 202, ack.code
        return session

    async def call(self, session: str, tool: str = "whoami") -> Call:
        """Call a tool of the session's child."""
        return await self.request(
            "tools/call", {"name": tool, "arguments": {}}, session
        )

    async def delete(self, session: str) -> int:
        """End the session (DELETE); the status."""
        d = self._http.delete(self.url, headers=self._headers(session))
        response = await d.addTimeout(WAIT, reactor)
        await response.content()
        code: int = response.code
        return code

    async def close(self) -> None:
        """Close the pooled connections."""
        await self.pool.closeCachedConnections()


def _parse_answer(response: Any, body: bytes) -> Any:
    kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
    if kind.startswith(b"text/event-stream"):
        data = [
            line[len(b"data:") :].strip()
            for line in body.split(b"\n")
            if line.startswith(b"data:")
        ]
        messages = [json.loads(d) for d in data if d]
        answers = [m for m in messages if "id" in m and "method" not in m]
        return answers[-1] if answers else messages
    try:
        return json.loads(body)
    except ValueError:
        return body


@define
class Tokens:
    """What a user got at the broker's token endpoint."""

    client_id: str
    access_token: str
    refresh_token: str


@define
class Deployment:
    """The stand-in and a started broker (see the module docstring)."""

    standin: StandinForgejo
    standin_port: Any
    service: BrokerService
    config: Config
    state: Path
    browsers: list[Browser] = field(factory=list)
    clients: list[McpClient] = field(factory=list)

    @property
    def base(self) -> str:
        """The broker's public URL."""
        return self.config.public_url

    @property
    def registry(self) -> SessionRegistry:
        """The broker's live sessions."""
        assert self.service.broker is not None
        return self.service.broker.sessions

    @property
    def refresher(self) -> TokenRefresher:
        """The broker's Forgejo token refresher."""
        refresher: TokenRefresher = self.service.getServiceNamed(  # type: ignore[no-untyped-call]
            "token-refresher"
        )
        return refresher

    @property
    def reaper(self) -> IdleReaper:
        """The broker's idle reaper."""
        reaper: IdleReaper = self.service.getServiceNamed("idle-reaper")  # type: ignore[no-untyped-call]
        return reaper

    @property
    def live_children(self) -> int:
        """Children alive in the broker's supervisor."""
        assert self.service.broker is not None
        return self.service.broker.supervisor.live

    async def current(self, user: str, consent: str = "full") -> UpstreamToken:
        """The Forgejo token of ``user``'s grant for ``consent``, as held."""
        assert self.service.broker is not None
        upstream = self.service.broker.upstream_tokens
        token: UpstreamToken = await upstream.current(upstream.grant(user, consent))
        return token

    def mcp(self, token: str) -> McpClient:
        """An MCP client of this broker with ``token`` (closed at teardown)."""
        client = McpClient(self.config.mcp_url, token)
        self.clients.append(client)
        return client

    def sessions_of(self, user: str) -> list[ChildOwner]:
        """The live sessions of ``user``."""
        return [s for s in self.registry.sessions() if s.user == user]

    async def register(self, name: str) -> str:
        """Register a public OAuth client (DCR); its client id."""
        browser = self._browser()
        response, body = await browser.request(
            "POST",
            self.base + "/oauth/register",
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": name,
            },
        )
        assert response.code == 201, body
        client_id: str = json.loads(body)["client_id"]
        return client_id

    async def sign_in(
        self, login: str, client_id: str | None = None, mode: str | None = None
    ) -> Tokens:
        """
        The whole OAuth flow for ``login`` through ``client_id`` (a new
        client if none): consent (``mode``: the consent page's choice, the
        operator's default if None), the stand-in's login form, callback,
        token.
        """
        if client_id is None:
            client_id = await self.register(f"client of {login}")
        browser = self._browser()  # a fresh browser: no session cookies yet
        verifier = new_verifier()
        response, body = await browser.request(
            "GET",
            self.base + "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
                "state": "st",
                "scope": "mcp offline_access",
                "resource": self.config.mcp_url,
            },
        )
        assert response.code == 200, body
        response, body = await browser.request(
            "POST",
            self.base + "/oauth/consent",
            data={
                "request": _field(body, "request"),
                "csrf": _field(body, "csrf"),
                "decision": "allow",
                **({} if mode is None else {"mode": mode}),
            },
        )
        assert response.code == 303, body
        login_url = _location(response)
        response, body = await browser.request("GET", login_url)
        assert response.code == 200, body
        response, body = await browser.request(
            "POST",
            self.standin.base_url + "/login/oauth/authorize",
            data={
                **_query(login_url),
                "_csrf": _field(body, "_csrf"),
                "user_name": login,
                "password": f"{login}-password",
            },
        )
        assert response.code in (302, 303), body
        response, body = await browser.request("GET", _location(response))
        assert response.code == 302, body
        code = _query(_location(response))["code"]
        response, body = await browser.request(
            "POST",
            self.base + "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "resource": self.config.mcp_url,
            },
        )
        assert response.code == 200, body
        tokens = json.loads(body)
        return Tokens(client_id, tokens["access_token"], tokens["refresh_token"])

    async def revoke(self, tokens: Tokens) -> None:
        """RFC 7009 revocation of the client's refresh token at the broker."""
        response, body = await self._browser().request(
            "POST",
            self.base + "/oauth/revoke",
            data={"token": tokens.refresh_token, "client_id": tokens.client_id},
        )
        assert response.code == 200, body

    def _browser(self) -> Browser:
        pool = HTTPConnectionPool(reactor, persistent=False)
        browser = Browser(Agent(reactor, connectTimeout=5, pool=pool), pool)
        self.browsers.append(browser)
        return browser

    async def close_clients(self) -> None:
        """Close every HTTP connection the test clients hold."""
        for client in self.clients:
            await client.close()
        for browser in self.browsers:
            await browser.pool.closeCachedConnections()

    async def stop(self) -> None:
        """Stop the broker (children reaped), then the stand-in."""
        try:
            await self.close_clients()
            await self.service.stopService()
        finally:
            await maybe_await(self.standin_port.stopListening())
            shutil.rmtree(
                Path(self.config.admin_socket_path).parent, ignore_errors=True
            )


def short_socket_dir() -> Path:
    """A short directory for the admin socket (AF_UNIX paths are short)."""
    return Path(tempfile.mkdtemp(prefix="fjmcp-it-", dir="/tmp"))


async def deploy(
    state: Path,
    *,
    users: tuple[str, ...] = ("alice", "bob"),
    invalidate: bool = False,
    token_lifetime: int = 3600,
    repos: tuple[str, ...] = (),
    read_only_scopes: tuple[str, ...] = (),
    **settings: Any,
) -> Deployment:
    """
    Start the stand-in (``invalidate``: Forgejo's invalidate-on-use refresh
    tokens; each user owns ``repos``) and a broker configured with
    ``settings`` over the defaults below; fires once both listen. With
    ``read_only_scopes`` read-only consents have scopes of their own, made
    through a second application at the stand-in.
    """
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    callback = (public_url + "/oauth/callback",)
    clients = [StandinClient(FORGEJO_CLIENT, FORGEJO_SECRET, callback)]
    if read_only_scopes:
        clients.append(StandinClient(FORGEJO_RO_CLIENT, FORGEJO_RO_SECRET, callback))
        settings = {
            "forgejo_scopes_read_only": read_only_scopes,
            "forgejo_ro_client_id": FORGEJO_RO_CLIENT,
            "forgejo_ro_client_secret": FORGEJO_RO_SECRET,
            **settings,
        }
    standin, standin_port = await start_standin(
        reactor,
        StandinConfig(
            users=tuple(make_user(u, repos) for u in users),
            clients=tuple(clients),
            token_lifetime=token_lifetime,
            invalidate_refresh_tokens=invalidate,
        ),
    )
    state.mkdir(parents=True, exist_ok=True)
    keys = state / "token-keys"
    prepend_new_key(keys)
    values: dict[str, Any] = {
        "public_url": public_url,
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "forgejo_url": standin.base_url,
        "forgejo_client_id": FORGEJO_CLIENT,
        "forgejo_client_secret": FORGEJO_SECRET,
        "forgejo_timeout": 10.0,
        "child_command": (sys.executable, "-B", str(CHILDREN / "token_server.py")),
        # rotation must reach a token that is not in the environment
        "child_token_via": "file",
        "store_path": str(state / "fjmcp.sqlite3"),
        "token_keys_file": str(keys),
        "admin_socket": str(short_socket_dir() / "admin.sock"),
        "child_stop_grace": 2.0,
        "child_drain_timeout": 10.0,
        "shutdown_timeout": 10.0,
        # The timers stay out of the way unless a test asks for them.
        "refresh_interval": 3600.0,
        "user_check_interval": 3600.0,
        "reaper_interval": 3600.0,
    }
    values.update(settings)
    config = Config(**values)
    service = BrokerService(config, reactor, handle_signals=False)
    service.startService()
    try:
        await service.ready.addTimeout(WAIT, reactor)
    except BaseException:
        await service.stopService()
        await maybe_await(standin_port.stopListening())
        raise
    return Deployment(standin, standin_port, service, config, state)
