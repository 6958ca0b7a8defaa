# -*- test-case-name: tests.e2e.test_sdk_clients -*-
"""
The official MCP SDK clients, Python and TypeScript, against a live broker
and stand-in Forgejo over real loopback sockets: discovery from the 401,
dynamic client registration, authorization with PKCE through the consent
and login forms, the token exchange, ``initialize``, ``tools/list``,
``tools/call whoami`` answering the Forgejo user, a token refresh, and the
session's end with ``DELETE``.

The clients are `sdk_client.py` (in ``.venv-sdk``) and `ts_client.mjs`
(``npm ci`` in this directory); ``make e2e-deps`` installs both, and each
test skips, saying so, where its client is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.live import (
    BIN,
    E2E,
    NODE_MODULES,
    SDK_PYTHON,
    Live,
    client_missing,
    node,
    run_client,
)

pytestmark = pytest.mark.e2e

SUPPORTED = {"2025-03-26", "2025-06-18", "2025-11-25"}


def _paths(exchanges: list[dict[str, Any]], live: Live) -> list[tuple[str, str, int]]:
    """(method, path, status) of the exchanges with the broker, in order."""
    out = []
    for e in exchanges:
        url = str(e["url"])
        if url.startswith(live.public_url):
            out.append((e["method"], url[len(live.public_url) :], e["status"]))
    return out


def _live_children(live: Live) -> int:
    assert live.config_path is not None
    done = subprocess.run(
        [str(BIN / "fjmcp"), "admin", "--config", str(live.config_path), "--json"]
        + ["status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    status: dict[str, Any] = json.loads(done.stdout)
    return int(status["live_children"])


def _assert_no_children_left(live: Live) -> None:
    """The session's child is gone soon after the client ended the session."""
    deadline = time.monotonic() + 10.0
    while (children := _live_children(live)) != 0:
        assert time.monotonic() < deadline, f"{children} children still alive"


def _assert_flow(result: dict[str, Any], live: Live, *, session: bool = True) -> None:
    """What both SDK clients must have seen, whatever their library."""
    assert result["client_registered"] is True
    assert result["pages"][0].startswith("consent@127.0.0.1:")
    assert result["pages"][-1] == f"login@{live.forgejo_url.split('//')[1]}"
    assert result["tools"] == ["echo", "whoami"]
    assert result["whoami"] == [live.user]
    assert result["whoami_is_error"] is False
    assert result["refreshed"] is True
    assert result["whoami_after_refresh"] == [live.user]
    assert result["echo"] == ["över the bridge"]
    assert result["refresh_tokens_rotated"] is True

    steps = _paths(result["exchanges"], live)
    methods_paths = [(m, p) for m, p, _ in steps]
    # Discovery from the 401, then registration and the code exchange.
    first_mcp = next(s for s in steps if s[1] == "/mcp")
    assert first_mcp[2] == 401
    assert ("GET", "/.well-known/oauth-protected-resource/mcp") in methods_paths
    assert ("GET", "/.well-known/oauth-authorization-server") in methods_paths
    assert ("POST", "/oauth/register", 201) in steps
    token_calls = [s for s in steps if s[:2] == ("POST", "/oauth/token")]
    assert len(token_calls) >= 2  # the code exchange and a refresh
    assert all(status == 200 for _, _, status in token_calls)
    # Every MCP request after authorization carried a bearer; a session
    # ended with DELETE, a stateless client never sends one.
    authorized = [e for e in result["exchanges"] if e["bearer"]]
    assert authorized
    deleted = ("DELETE", "/mcp", 204) in steps or ("DELETE", "/mcp", 200) in steps
    assert deleted is session
    if not session:
        mcp = [s for s in steps if s[1] == "/mcp" and s[0] == "POST"]
        assert all(status == 200 for _, _, status in mcp[1:]), mcp


def test_python_sdk_client_walks_the_whole_flow(broker: Live) -> None:
    """
    The official Python SDK (mcp 2.3.0) with the plain initialize handshake
    logs in through discovery, DCR, consent, the stand-in's login and PKCE;
    its whoami answers the Forgejo user, before and after a refresh; DELETE
    ends the session and its child.
    """
    if not SDK_PYTHON.exists():
        client_missing(".venv-sdk is missing: run `make e2e-deps`")
    result = run_client(
        [
            str(SDK_PYTHON),
            str(E2E / "sdk_client.py"),
            "--mcp-url",
            broker.mcp_url,
            "--mode",
            "legacy",
        ],
        broker,
    )
    _assert_flow(result, broker)
    assert result["protocol_version"] in SUPPORTED
    assert result["server_name"] == "fjmcp-demo-child"
    assert result["token_sets"] >= 2
    _assert_no_children_left(broker)


def test_python_sdk_stateless_client_walks_the_whole_flow(
    quick_reaping_broker: Live,
) -> None:
    """
    The same SDK in its default ``mode="auto"`` probes ``server/discover``,
    finds 2026-07-28 and stays stateless: every call (tools/list, whoami
    before and after a refresh, echo) is served by the identity's child,
    initialized by the broker; no session, no DELETE; the child is reaped
    once idle.
    """
    live = quick_reaping_broker
    if not SDK_PYTHON.exists():
        client_missing(".venv-sdk is missing: run `make e2e-deps`")
    result = run_client(
        [str(SDK_PYTHON), str(E2E / "sdk_client.py"), "--mcp-url", live.mcp_url],
        live,
    )
    _assert_flow(result, live, session=False)
    assert result["protocol_version"] == "2026-07-28"
    assert result["server_name"] == "fjmcp-demo-child"
    assert result["token_sets"] >= 2
    _assert_no_children_left(live)


def test_typescript_sdk_client_walks_the_whole_flow(broker: Live) -> None:
    """
    The official TypeScript SDK (@modelcontextprotocol/sdk, pinned) does the
    same; its refresh comes from a 401 on an expired access token.
    """
    executable = node()
    if executable is None or not (NODE_MODULES / "@modelcontextprotocol").exists():
        client_missing(
            "node or tests/e2e/node_modules is missing: run `make e2e-deps`",
            node=True,
        )
    result = run_client(
        [executable, str(E2E / "ts_client.mjs"), "--mcp-url", broker.mcp_url],
        broker,
    )
    _assert_flow(result, broker)
    assert result["iss"] == broker.public_url
    assert result["session"] is True
    assert result["server_name"] == "fjmcp-demo-child"
    assert result["session_after_end"] is None
    _assert_no_children_left(broker)


def test_python_sdk_client_against_the_demo(demo: Live) -> None:
    """
    ``fjmcp demo`` (what ``make run`` starts) works for a real client: the
    Python SDK logs in as the printed demo user and whoami answers it.
    """
    if not SDK_PYTHON.exists():
        client_missing(".venv-sdk is missing: run `make e2e-deps`")
    result = run_client(
        [
            str(SDK_PYTHON),
            str(E2E / "sdk_client.py"),
            "--mcp-url",
            demo.mcp_url,
        ],
        demo,
    )
    assert result["whoami"] == [demo.user]
    assert result["whoami_after_refresh"] == [demo.user]


def test_the_node_on_this_machine_runs_the_pinned_sdk() -> None:
    """The pinned TypeScript SDK loads on this machine's Node (20 or newer)."""
    executable = node()
    if executable is None or not (NODE_MODULES / "@modelcontextprotocol").exists():
        client_missing(
            "node or tests/e2e/node_modules is missing: run `make e2e-deps`",
            node=True,
        )
    version = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, version
    lock = json.loads((E2E / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@modelcontextprotocol/sdk"]["version"]
    loaded = subprocess.run(
        [
            executable,
            "--input-type=module",
            "-e",
            "import { Client } from '@modelcontextprotocol/sdk/client/index.js';"
            "import fs from 'node:fs';"
            "const p = JSON.parse(fs.readFileSync("
            "'node_modules/@modelcontextprotocol/sdk/package.json'));"
            "console.log(typeof Client, p.version);",
        ],
        cwd=E2E,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert loaded == ["function", pinned]


def test_sdk_venv_matches_its_lock() -> None:
    """.venv-sdk holds exactly the pinned SDK tree (mcp 2.3.0)."""
    if not SDK_PYTHON.exists():
        client_missing(".venv-sdk is missing: run `make e2e-deps`")
    lock = Path(E2E / "requirements-sdk.lock.txt").read_text().splitlines()
    pinned = {line.lower() for line in lock if line and not line.startswith("#")}
    assert "mcp==2.3.0" in pinned
    frozen = subprocess.run(
        [str(SDK_PYTHON), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert pinned <= set(frozen.split()), sys.version
