# -*- test-case-name: tests.integration.test_two_nodes -*-
"""
Two real brokers (``twistd fjmcp``) on one PostgreSQL schema behind a real
HAProxy running the shipped configuration (rendered with this test's
loopback ports), with real children (``tests/children/token_server.py``:
its ``whoami`` says which Forgejo token it holds and whether Forgejo
takes it).

- A user signs in with the authorization started on node-a and Forgejo's
  callback completed on node-b (the pending login lives in the store).
- Sessions stick to the node named in their id; a stateless call held for
  the client's input is resumed on its node (HAProxy reads the node from
  the requestState), and another node refuses the retry naming it.
- The user's Forgejo token dies at Forgejo; node-a (the only node asking
  Forgejo about its users) refreshes it: exactly one refresh reaches
  Forgejo, and the children on both nodes run with the new token, node-b's
  within about a second (it hears of it through LISTEN/NOTIFY only).
- A revocation made through node-b ends the sessions on node-a too.
- The official SDK client survives the SIGKILL of its session's node: it
  sees the 404, opens a new session with the same OAuth tokens on the
  survivor, and keeps calling tools.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest
from attrs import define, field, frozen

import fjmcp
from fjmcp.oauth.keys import prepend_new_key
from fjmcp.oauth.pkce import new_verifier, s256
from fjmcp.supervisor.sandbox import find_tools
from tests.bridge.stateless_support import envelope, routing_headers
from tests.e2e.live import BIN, E2E, SDK_PYTHON, Process, clean_env, free_port
from tests.integration.haproxy import SHIPPED, haproxy_binary, render
from tests.integration.test_oauth_walkthrough import _field, _query
from tests.store.support import ScratchSchema, postgres_skip_reason, postgres_url

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

NODES = ("node-a", "node-b")
CHILDREN = Path(__file__).resolve().parent.parent / "children"
#: How long a revocation or a new Forgejo token may take to reach the other node.
PROPAGATION = 2.0
#: Bound on waiting for HAProxy to answer /healthz, and for node-a's check.
SETTLE = 20.0
#: Where the client's authorization ends; nothing listens there.
REDIRECT = "http://127.0.0.1:45998/callback"
#: Node-a asks Forgejo about each user with sessions this often (node-b never).
CHECK_INTERVAL = 1.0


@define
class Cluster:
    """The running pieces, and how to reach them."""

    url: str
    ports: dict[str, int]
    configs: dict[str, Path]
    brokers: dict[str, Process]
    haproxy: Process
    forgejo_url: str
    password: str
    """The stand-in Forgejo password of alice."""
    store: str
    """The conninfo of the nodes' schema."""

    def node_url(self, node: str) -> str:
        """A node's own address, past HAProxy."""
        return f"http://127.0.0.1:{self.ports[node]}"

    @property
    def host(self) -> str:
        """The public Host (what HAProxy passes on from a client)."""
        return urlsplit(self.url).netloc


def _config(
    directory: Path,
    node: str,
    port: int,
    public_url: str,
    store_url: str,
    keys: Path,
    forgejo_url: str,
    secret_file: Path,
) -> Path:
    state = directory / node
    state.mkdir(mode=0o700)
    lines: dict[str, Any] = {
        "public_url": public_url,
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "node_id": node,
        "store_url": store_url,
        "store_path": str(state / "unused.sqlite3"),
        "store_pool_size": 2,
        "token_keys_file": str(keys),
        "forgejo_url": forgejo_url,
        "forgejo_client_id": "fjmcp-cluster",
        "forgejo_client_secret_file": str(secret_file),
        "child_command": [sys.executable, "-B", str(CHILDREN / "token_server.py")],
        # confined as in tests/e2e: bubblewrap where installed, the children
        # readable inside, the token on a descriptor
        "child_sandbox": "bubblewrap" if find_tools().bwrap else "none",
        "child_sandbox_binds": [
            str(Path(fjmcp.__file__).resolve().parent),
            str(CHILDREN),
        ],
        "child_token_via": "fd",
        # Only node-a asks Forgejo whether its users' tokens still work, so
        # node-b learns of a new token through the store's notification alone.
        "refresh_interval": CHECK_INTERVAL / 2 if node == "node-a" else 3600.0,
        "user_check_interval": CHECK_INTERVAL if node == "node-a" else 3600.0,
        "trusted_proxies": ["127.0.0.1"],
        "log_level": "info",
    }
    path = directory / f"{node}.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in lines.items()))
    return path


# --- HTTP, without following redirects ---------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@frozen
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    """Lower-cased names (the last value of a repeated header)."""
    cookies: list[str]
    """Every Set-Cookie value."""
    body: bytes

    @property
    def location(self) -> str:
        """The redirect target."""
        return self.headers["location"]

    def json(self) -> Any:
        """The JSON body, or the last message of an SSE body."""
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            data = [
                line[len(b"data:") :].strip()
                for line in self.body.split(b"\n")
                if line.startswith(b"data:")
            ]
            return json.loads(data[-1])
        return json.loads(self.body)


def _http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=body, headers=dict(headers or {}), method=method
    )
    try:
        response = _OPENER.open(request, timeout=10)
    except urllib.error.HTTPError as e:
        response = e
    with response:
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.headers.items()},
            response.headers.get_all("set-cookie") or [],
            response.read(),
        )


def _mcp_headers(
    cluster: Cluster, token: str, session: str | None = None
) -> dict[str, str]:
    headers = {
        "Host": cluster.host,
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if session is not None:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = "2025-11-25"
    return headers


def _post(
    cluster: Cluster,
    message: Any,
    token: str,
    session: str | None = None,
    *,
    node: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Answer:
    """POST to /mcp through HAProxy, or straight to ``node``."""
    base = cluster.url if node is None else cluster.node_url(node)
    headers = _mcp_headers(cluster, token, session)
    headers.update(extra or {})
    return _http(
        "POST", f"{base}/mcp", body=json.dumps(message).encode(), headers=headers
    )


# --- the OAuth flow, one step per node -------------------------------------------


@define
class _Browser:
    """Cookies per site, as a browser keeps them."""

    jars: dict[str, dict[str, str]] = field(factory=dict)

    def go(
        self,
        method: str,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        host: str | None = None,
    ) -> Answer:
        site = urlsplit(url).netloc if host is None else host
        jar = self.jars.setdefault(site, {})
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        if host is not None:
            headers["Host"] = host
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        answer = _http(method, url, body=body, headers=headers)
        for cookie in answer.cookies:
            name, _, rest = cookie.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]
        return answer


def _pending_logins(cluster: Cluster) -> int:
    """Logins started and not yet taken by a callback, in the shared store."""
    with psycopg.connect(cluster.store) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pending_authorizations WHERE taken_at IS NULL"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _sign_in(cluster: Cluster, authorize_on: str, callback_on: str) -> dict[str, Any]:
    """
    alice signs in: DCR and the token through HAProxy; the authorization
    and consent on ``authorize_on``, Forgejo's callback on ``callback_on``
    (both addressed directly, with the public Host). The token answer.
    """
    browser = _Browser()
    registered = _http(
        "POST",
        f"{cluster.url}/oauth/register",
        body=json.dumps(
            {
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "cluster test",
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert registered.status == 201, registered.body
    client_id = registered.json()["client_id"]
    verifier = new_verifier()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "state": "st",
            "scope": "mcp offline_access",
            "resource": f"{cluster.url}/mcp",
        }
    )
    first = cluster.node_url(authorize_on)
    page = browser.go("GET", f"{first}/oauth/authorize?{query}", host=cluster.host)
    assert page.status == 200, page.body
    consented = browser.go(
        "POST",
        f"{first}/oauth/consent",
        form={
            "request": _field(page.body, "request"),
            "csrf": _field(page.body, "csrf"),
            "decision": "allow",
        },
        host=cluster.host,
    )
    assert consented.status == 303, consented.body
    assert _pending_logins(cluster) == 1  # made by the first node, in the store
    login_url = consented.location
    assert login_url.startswith(cluster.forgejo_url), login_url
    form = browser.go("GET", login_url)
    assert form.status == 200, form.body
    logged_in = browser.go(
        "POST",
        f"{cluster.forgejo_url}/login/oauth/authorize",
        form={
            **_query(login_url),
            "_csrf": _field(form.body, "_csrf"),
            "user_name": "alice",
            "password": cluster.password,
        },
    )
    assert logged_in.status in (302, 303), logged_in.body
    callback = urlsplit(logged_in.location)
    assert callback.path == "/oauth/callback" and callback.netloc == cluster.host
    back = browser.go(
        "GET",
        f"{cluster.node_url(callback_on)}{callback.path}?{callback.query}",
        host=cluster.host,
    )
    assert back.status == 302, back.body
    assert back.location.startswith(REDIRECT), back.location
    assert _pending_logins(cluster) == 0  # taken by the second node
    tokens = _http(
        "POST",
        f"{cluster.url}/oauth/token",
        body=urlencode(
            {
                "grant_type": "authorization_code",
                "code": _query(back.location)["code"],
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "resource": f"{cluster.url}/mcp",
            }
        ).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert tokens.status == 200, tokens.body
    answer: dict[str, Any] = tokens.json()
    return answer


# --- the cluster ---------------------------------------------------------------------


def _check_healthy(url: str) -> None:
    """/healthz through HAProxy answers 200 from a node on PostgreSQL."""
    answer = _http("GET", f"{url}/healthz")
    assert answer.status == 200, answer.body
    assert answer.json()["store_backend"] == "postgresql"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A stand-in Forgejo, two brokers on one schema, HAProxy in front."""
    base = postgres_url()
    if base is None:
        pytest.skip(postgres_skip_reason())
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (make test installs it as root)")
    scratch = ScratchSchema.create(base)
    processes: list[Process] = []
    listening = socket.create_server(("127.0.0.1", 0))
    front = listening.getsockname()[1]
    try:
        ports = {node: free_port() for node in NODES}
        public_url = f"http://127.0.0.1:{front}"
        keys = tmp_path / "token-keys"
        prepend_new_key(keys)
        secret = secrets.token_urlsafe(24)
        secret_file = tmp_path / "forgejo-secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secret.encode())
        os.close(fd)
        env = clean_env()
        password = secrets.token_urlsafe(12)
        standin = Process.start(
            "standin-forgejo",
            [
                str(BIN / "fjmcp"),
                "standin-forgejo",
                "--port",
                "0",
                "--user",
                f"alice:{password}",
                "--client",
                f"fjmcp-cluster:{secret}:{public_url}/oauth/callback",
            ],
            cwd=tmp_path,
            env=env,
        )
        processes.append(standin)
        forgejo_url = standin.wait_for(r"on (http://127\.0\.0\.1:\d+)").group(1)
        configs = {
            node: _config(
                tmp_path,
                node,
                ports[node],
                public_url,
                scratch.conninfo,
                keys,
                forgejo_url,
                secret_file,
            )
            for node in NODES
        }
        brokers: dict[str, Process] = {}
        for node in NODES:  # one after the other: the first one migrates
            brokers[node] = Process.start(
                f"twistd {node}",
                [
                    str(BIN / "twistd"),
                    "-n",
                    "--pidfile=",
                    "fjmcp",
                    "--config",
                    str(configs[node]),
                ],
                cwd=tmp_path,
                env=env,
            )
            processes.append(brokers[node])
            brokers[node].wait_for(r"listening on")
        cfg = tmp_path / "haproxy.cfg"
        # The test listens on HAProxy's port itself and hands it the socket
        # (bind fd@N): a request queues in the backlog until HAProxy
        # accepts it, so nothing waits for HAProxy to be up. Both brokers
        # listen already, and HAProxy counts servers up from the start.
        cfg.write_text(
            render(SHIPPED.read_text(), front, ports, listen_fd=listening.fileno())
        )
        haproxy = Process.start(
            "haproxy",
            [binary, "-db", "-f", str(cfg)],
            cwd=tmp_path,
            env=env,
            pass_fds=(listening.fileno(),),
        )
        processes.append(haproxy)
        listening.close()
        _check_healthy(public_url)
        yield Cluster(
            public_url,
            ports,
            configs,
            brokers,
            haproxy,
            forgejo_url,
            password,
            scratch.conninfo,
        )
    finally:
        listening.close()
        for process in reversed(processes):
            if process.popen.poll() is None:
                process.stop()
        scratch.drop()


def _revoke(config: Path) -> None:
    done = subprocess.run(
        [str(BIN / "fjmcp"), "admin", "revoke-user", "alice", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _standin(cluster: Cluster, hook: str, method: str = "GET") -> Any:
    """A stand-in test hook's JSON answer."""
    answer = _http(method, f"{cluster.forgejo_url}/_standin/users/alice{hook}")
    assert answer.status == 200, answer.body
    return answer.json()


def _open_session_on(cluster: Cluster, node: str, token: str) -> str:
    """Initialize a session at ``node`` itself (so each node holds one); its id."""
    init = _post(
        cluster,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "cluster-test", "version": "1"},
            },
        },
        token,
        node=node,
    )
    assert init.status == 200, init.body
    session = init.headers["mcp-session-id"]
    assert session.startswith(f"{node}.")
    ack = _post(
        cluster,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        token,
        session,
    )
    assert ack.status == 202, ack.body
    return session


def _tool(
    cluster: Cluster, token: str, session: str, name: str, arguments: Any
) -> Answer:
    """Call a tool of a session through HAProxy."""
    return _post(
        cluster,
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        token,
        session,
    )


def _whoami(cluster: Cluster, token: str, session: str) -> dict[str, Any]:
    """What the session's child says of its token: digest, login (or error)."""
    answer = _tool(cluster, token, session, "whoami", {})
    assert answer.status == 200, answer.body
    result = answer.json()["result"]
    said: dict[str, Any] = result["structuredContent"]
    said["ok"] = not result.get("isError")
    return said


def _logged(process: Process, pattern: str, timeout: float) -> None:
    """A line matching ``pattern`` was or will be written (within ``timeout``)."""
    if re.search(pattern, process.output) is None:
        process.wait_for(pattern, timeout=timeout)


def _new_token(
    cluster: Cluster, node: str, token: str, session: str, old: str, deadline: float
) -> dict[str, Any]:
    """Once ``node`` logged the session's child replaced (by ``deadline``),
    ``whoami`` there: a token other than ``old`` that Forgejo takes."""
    _logged(
        cluster.brokers[node],
        rf"session {session[:8]}: child replaced \(generation \d+, token generation",
        max(deadline - time.monotonic(), 0.01),
    )
    said = _whoami(cluster, token, session)
    assert said["digest"] != old and said["ok"], (session, said)
    return said


def test_one_user_across_two_nodes(cluster: Cluster) -> None:
    """
    Sign-in split across the nodes; a session on each node, sticking to it;
    a held stateless call resumed on its node; one refresh of the dead
    Forgejo token for both nodes; a revocation through node-b reaching
    node-a.
    """
    tokens = _sign_in(cluster, authorize_on="node-a", callback_on="node-b")
    access = tokens["access_token"]

    # A session on each node; every call through HAProxy reaches its node
    # (another node would answer 404).
    sessions = {node: _open_session_on(cluster, node, access) for node in NODES}
    first: dict[str, dict[str, Any]] = {}
    for node, session in sessions.items():
        for n in range(3):
            answer = _tool(cluster, access, session, "echo", {"text": f"hi {n}"})
            assert answer.status == 200, answer.body
            said = answer.json().get("result", {}).get("structuredContent", {})
            assert said.get("echoed") == f"hi {n}", answer.body
        first[node] = _whoami(cluster, access, session)
        assert first[node]["ok"] and first[node]["login"] == "alice", first[node]
    assert first["node-a"]["digest"] == first["node-b"]["digest"]
    assert first["node-a"]["process"] != first["node-b"]["process"]

    _held_call_resumes_on_its_node(cluster, access, sessions)

    # The Forgejo token dies at Forgejo. Node-a's check finds it refused
    # and refreshes it; node-b only hears of the new token.
    assert _standin(cluster, "")["refreshes"] == 0
    assert _standin(cluster, "/expire", "POST")["expired"] >= 1
    _logged(cluster.brokers["node-a"], r"refreshed alice's Forgejo token", SETTLE)
    refreshed = time.monotonic()
    assert _standin(cluster, "")["refreshes"] == 1
    now: dict[str, dict[str, Any]] = {}
    took: dict[str, float] = {}
    for node in ("node-b", "node-a"):
        now[node] = _new_token(
            cluster,
            node,
            access,
            sessions[node],
            first[node]["digest"],
            refreshed + PROPAGATION,
        )
        took[node] = time.monotonic() - refreshed
        assert now[node]["login"] == "alice"
        assert now[node]["process"] != first[node]["process"]  # respawned
    assert now["node-a"]["digest"] == now["node-b"]["digest"], (now, took)
    assert _standin(cluster, "")["refreshes"] == 1

    # Revoked through node-b: node-a ends its session too, within 2 s.
    _revoke(cluster.configs["node-b"])
    cluster.brokers["node-a"].wait_for(
        r"of alice ended: revoked-on-another-node", timeout=PROPAGATION
    )
    for session in sessions.values():
        answer = _tool(cluster, access, session, "echo", {"text": "late"})
        assert answer.status == 401, answer.body
    assert _standin(cluster, "")["refreshes"] == 1


def _held_call_resumes_on_its_node(
    cluster: Cluster, access: str, sessions: Mapping[str, str]
) -> None:
    """
    A 2026-07-28 call that node-a holds for the client's input: the retry
    sent to node-b is refused naming node-a; sent through HAProxy it is
    resumed on node-a, although node-a is then the busier node (a GET
    stream of its session is open through HAProxy), so only the
    requestState rule can have chosen it.
    """
    caps: dict[str, Any] = {"elicitation": {}}
    params = {"name": "confirm", "arguments": {"question": "Deploy?"}}
    call = envelope(1, "tools/call", params, capabilities=caps)
    routing = {k.decode(): v.decode() for k, v in routing_headers(call).items()}
    asked = _post(cluster, call, access, node="node-a", extra=routing)
    assert asked.status == 200, asked.body
    result = asked.json()["result"]
    assert result["resultType"] == "input_required", result
    state = result["requestState"]
    assert state.startswith("v2.node-a.")
    [key] = result["inputRequests"]
    retry = envelope(2, "tools/call", params, capabilities=caps)
    retry["params"]["requestState"] = state
    retry["params"]["inputResponses"] = {
        key: {"action": "accept", "content": {"ok": True}}
    }

    wrong = _post(cluster, retry, access, node="node-b", extra=routing)
    assert wrong.status == 400, wrong.body
    assert wrong.json()["error"]["data"] == {
        "reason": "held_elsewhere",
        "node": "node-a",
    }

    stream = urllib.request.Request(  # noqa: S310 - loopback only
        f"{cluster.url}/mcp",
        headers={
            **_mcp_headers(cluster, access, sessions["node-a"]),
            "Accept": "text/event-stream",
        },
    )
    with urllib.request.urlopen(stream, timeout=10) as held:  # noqa: S310
        assert held.status == 200
        resumed = _post(cluster, retry, access, extra=routing)
    assert resumed.status == 200, resumed.body
    done = resumed.json()
    assert done["id"] == 2 and done["result"]["resultType"] == "complete", done
    assert done["result"]["structuredContent"]["content"] == {"ok": True}


def test_an_sdk_client_survives_the_death_of_its_node(cluster: Cluster) -> None:
    """
    The official Python SDK (session-based protocol) through HAProxy: after
    its session's node is SIGKILLed, its next call gets 404 and the SDK
    surfaces it; a new SDK ``Client`` with the same OAuth tokens (no new
    sign-in) lands on the surviving node and keeps calling tools.
    """
    if not SDK_PYTHON.exists():
        pytest.skip(".venv-sdk is missing: run `make e2e-deps`")
    client = Process.start(
        "sdk client",
        [
            str(SDK_PYTHON),
            str(E2E / "sdk_cluster_client.py"),
            "--mcp-url",
            f"{cluster.url}/mcp",
        ],
        cwd=E2E,
        env=clean_env({"E2E_USER": "alice", "E2E_PASSWORD": cluster.password}),
        stdin=True,
    )
    try:
        holding = json.loads(
            client.wait_for(r'^\{"(holding|error)"', timeout=60).string
        )
        assert "holding" in holding, holding
        victim = holding["holding"].split(".", 1)[0]
        survivor = next(n for n in NODES if n != victim)
        cluster.brokers[victim].stop(signal.SIGKILL)
        client.send("the node is gone")
        last = json.loads(client.wait_for(r'^\{"(done|error)"', timeout=60).string)
        client.popen.wait(timeout=30)
    finally:
        status = client.stop()
    assert status == 0, client.output
    assert "done" in last, last
    out = last["done"]
    assert out["protocol_version"] == "2025-11-25"
    assert "alice" in out["whoami"][0]
    assert out["echo_before"] == ["before"]
    after_kill = out["exchanges"][out["exchanges_before_kill"] :]
    old = [e for e in after_kill if e["sent_session"] == out["holding"]]
    assert old and all(e["status"] == 404 for e in old), old
    assert (old[0]["method"], old[0]["url"]) == ("POST", f"{cluster.url}/mcp")
    # The SDK raised the broker's JSON-RPC error of that 404 to the caller.
    assert out["old_session"]["code"] == -32600, out["old_session"]
    assert "initialize again" in out["old_session"]["message"]
    assert out["new_session"].startswith(f"{survivor}.")
    assert out["echo_after"] == [[f"again {n}"] for n in range(3)]
    assert "alice" in out["whoami_after"][0]
    # The same OAuth tokens: no registration, authorization or token
    # request after the kill.
    assert out["token_sets"] == out["token_sets_before_kill"] == 1
    assert not [e for e in after_kill if "/oauth/" in e["url"]], after_kill


def test_the_official_sdk_client_logs_in_and_works_through_haproxy(
    cluster: Cluster,
) -> None:
    """
    The official Python SDK client in its default mode (2026-07-28,
    stateless: every request may reach either node), pointed at HAProxy:
    discovery, DCR, consent and the Forgejo login (the authorization and
    its callback may reach different nodes), tools, a token refresh.
    """
    if not SDK_PYTHON.exists():
        pytest.skip(".venv-sdk is missing: run `make e2e-deps`")
    done = subprocess.run(
        [
            str(SDK_PYTHON),
            str(E2E / "sdk_client.py"),
            "--mcp-url",
            f"{cluster.url}/mcp",
        ],
        cwd=E2E,
        env=clean_env({"E2E_USER": "alice", "E2E_PASSWORD": cluster.password}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr[-4000:]
    result = json.loads(lines[-1])
    assert result["protocol_version"] == "2026-07-28"
    assert result["whoami"] and "alice" in result["whoami"][0]
    assert result["refreshed"] and result["refresh_tokens_rotated"]
    assert result["whoami_after_refresh"] == result["whoami"]
    statuses = {
        e["status"]
        for e in result["exchanges"]
        if e["url"].endswith("/mcp") and e["method"] == "POST"
    }
    assert 404 not in statuses
