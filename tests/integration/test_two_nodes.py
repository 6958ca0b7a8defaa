# -*- test-case-name: tests.integration.test_two_nodes -*-
"""
Two real brokers (``twistd fjmcp``) on one PostgreSQL schema behind a real
HAProxy running the shipped configuration (rendered with this test's
loopback ports): a session sticks to the node named in its id; a user
revoked through the other node loses the session on every node within
2 s; after its node is killed (SIGKILL) the session answers 404 through
HAProxy and a new one opens on the surviving node with the same token.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import define

import fjmcp
from fjmcp.oauth.keys import prepend_new_key
from fjmcp.supervisor.sandbox import find_tools
from tests.e2e.live import BIN, E2E, SDK_PYTHON, Process, clean_env, free_port
from tests.integration.haproxy import SHIPPED, haproxy_binary, render
from tests.store.support import ScratchSchema, postgres_skip_reason, postgres_url

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

NODES = ("node-a", "node-b")
#: How long a revocation may take to end the session on the other node.
PROPAGATION = 2.0
#: Bound on waiting for HAProxy to answer /healthz.
SETTLE = 20.0


@define
class Cluster:
    """The running pieces, and how to reach them."""

    url: str
    configs: dict[str, Path]
    brokers: dict[str, Process]
    haproxy: Process
    password: str
    """The stand-in Forgejo password of alice."""


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
    lines = {
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
        "child_command": [sys.executable, "-m", "fjmcp.demo_child"],
        # confined as in tests/e2e: bubblewrap where installed, the package
        # readable inside, the token on a descriptor
        "child_sandbox": "bubblewrap" if find_tools().bwrap else "none",
        "child_sandbox_binds": [str(Path(fjmcp.__file__).resolve().parent)],
        "child_token_via": "fd",
        "log_level": "info",
    }
    path = directory / f"{node}.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in lines.items()))
    return path


def _request(
    url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=data, headers=headers or {}, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _wait_healthy(url: str) -> None:
    """Until /healthz answers 200 through HAProxy (bounded)."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        try:
            status, _, body = _request(f"{url}/healthz")
        except OSError:
            continue
        if status == 200:
            assert json.loads(body)["store_backend"] == "postgresql"
            return
    raise AssertionError(f"no healthy node behind HAProxy within {SETTLE}s")


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
    try:
        front = free_port()
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
        cfg.write_text(render(SHIPPED.read_text(), front, ports))
        haproxy = Process.start(
            "haproxy", [binary, "-db", "-f", str(cfg)], cwd=tmp_path, env=env
        )
        processes.append(haproxy)
        _wait_healthy(public_url)
        yield Cluster(public_url, configs, brokers, haproxy, password)
    finally:
        for process in reversed(processes):
            if process.popen.poll() is None:
                process.stop()
        scratch.drop()


def _issue_token(config: Path, directory: Path) -> str:
    """A broker access token for alice, minted through a node's admin socket."""
    forgejo = directory / "forgejo-token"
    forgejo.write_text("forgejo-token-of-alice\n")
    done = subprocess.run(
        [
            str(BIN / "fjmcp"),
            "admin",
            "issue-token",
            "--config",
            str(config),
            "--user",
            "alice",
            "--forgejo-token-file",
            str(forgejo),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


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


def _headers(token: str, session: str | None = None) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if session is not None:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = "2025-06-18"
    return headers


def _open_session(url: str, token: str) -> str:
    """Initialize a session through HAProxy; its id."""
    status, headers, body = _request(
        f"{url}/mcp",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "cluster-test", "version": "1"},
            },
        },
        _headers(token),
    )
    assert status == 200, body
    session = {k.lower(): v for k, v in headers.items()}["mcp-session-id"]
    status, _, body = _request(
        f"{url}/mcp",
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        _headers(token, session),
    )
    assert status == 202, body
    return session


def _call(url: str, token: str, session: str, n: int) -> tuple[int, bytes]:
    status, _, body = _request(
        f"{url}/mcp",
        {
            "jsonrpc": "2.0",
            "id": 100 + n,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": f"hello {n}"}},
        },
        _headers(token, session),
    )
    return status, body


def test_sessions_stick_revocations_spread_and_a_dead_node_is_survived(
    cluster: Cluster, tmp_path: Path
) -> None:
    """
    Through HAProxy: every call of a session reaches its node; a revocation
    made through the other node ends the session there within 2 s; after
    its node is SIGKILLed the session is 404 and a new session with the
    same token works on the survivor.
    """
    token = _issue_token(cluster.configs["node-a"], tmp_path)
    session = _open_session(cluster.url, token)
    holder = session.split(".", 1)[0]
    assert holder in NODES
    other = next(n for n in NODES if n != holder)
    for n in range(5):
        status, body = _call(cluster.url, token, session, n)
        assert status == 200 and f"hello {n}".encode() in body, body

    # A revocation made through the other node ends the session on its node.
    _revoke(cluster.configs[other])
    cluster.brokers[holder].wait_for(
        r"of alice ended: revoked-on-another-node", timeout=PROPAGATION
    )
    status, _ = _call(cluster.url, token, session, 9)
    assert status == 401

    # A node killed outright: its sessions are gone, the survivor serves.
    token = _issue_token(cluster.configs[other], tmp_path)
    session = _open_session(cluster.url, token)
    victim = session.split(".", 1)[0]
    survivor = next(n for n in NODES if n != victim)
    cluster.brokers[victim].stop(signal.SIGKILL)
    status, _ = _call(cluster.url, token, session, 10)
    assert status == 404
    again = _open_session(cluster.url, token)
    assert again.startswith(f"{survivor}.")
    status, body = _call(cluster.url, token, again, 11)
    assert status == 200 and b"hello 11" in body, body


def test_the_official_sdk_client_logs_in_and_works_through_haproxy(
    cluster: Cluster,
) -> None:
    """
    The official Python SDK client, pointed at HAProxy: discovery, DCR,
    consent and the Forgejo login (the authorization and its callback may
    reach different nodes: the pending login is in the shared store),
    tools on a session that sticks to its node, a token refresh, DELETE.
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
    assert result["whoami"] and "alice" in result["whoami"][0]
    assert result["refreshed"] and result["refresh_tokens_rotated"]
    assert result["whoami_after_refresh"] == result["whoami"]
    sessions = {
        e["status"]
        for e in result["exchanges"]
        if e["url"].endswith("/mcp") and e["method"] == "POST"
    }
    assert 404 not in sessions
