# -*- test-case-name: tests.e2e -*-
"""
Live servers for the end-to-end tests: real processes on free loopback ports.

- `broker` (one per module): the stand-in Forgejo as ``fjmcp
  standin-forgejo`` with a user and the broker's OAuth2 application, and the
  broker as ``twistd -n --pidfile= fjmcp --config FILE`` (production's
  command) whose child is ``python -m fjmcp.demo_child``;
- `demo` (one per module): ``fjmcp demo`` itself, as ``make run`` starts it.

The clients under test (the official SDKs, Chromium) run as subprocesses
too, so nothing here needs the reactor. Every wait is bounded: lines are read
by a thread into a queue and awaited with a deadline; processes are stopped
with SIGTERM, then SIGKILL after a grace.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fjmcp
from fjmcp.supervisor.sandbox import find_tools
from tests.e2e.live import (
    BIN,
    DEMO_USER,
    Live,
    Process,
    clean_env,
    free_port,
)


def _write_broker_config(
    directory: Path,
    port: int,
    forgejo_url: str,
    client_secret: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    from fjmcp.oauth.keys import prepend_new_key

    state = directory / "state"
    state.mkdir(mode=0o700)
    prepend_new_key(state / "token-keys")
    secret_file = state / "forgejo-client-secret"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, client_secret.encode())
    os.close(fd)
    lines = {
        "public_url": f"http://127.0.0.1:{port}",
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "forgejo_url": forgejo_url,
        "forgejo_client_id": "fjmcp-e2e",
        "forgejo_client_secret_file": str(secret_file),
        "child_command": [sys.executable, "-m", "fjmcp.demo_child"],
        # confined like the demo: bubblewrap where bwrap is installed (else
        # none, written out), the package readable inside, the token on a
        # descriptor
        "child_sandbox": "bubblewrap" if find_tools().bwrap else "none",
        "child_sandbox_binds": [str(Path(fjmcp.__file__).resolve().parent)],
        "child_token_via": "fd",
        "store_path": str(state / "fjmcp.sqlite3"),
        "allowed_origins": ["http://localhost:6274"],
        "log_level": "info",
        **(extra or {}),
    }
    path = directory / "fjmcp.toml"
    path.write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in lines.items()) + "\n"
    )
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A stand-in Forgejo and a twistd broker on free loopback ports."""
    yield from _broker(tmp_path_factory.mktemp("broker"))


@pytest.fixture(scope="module")
def quick_reaping_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """
    The same, reaping children idle for 3 s (a stateless client's child has
    no session to end: it ends when idle).
    """
    yield from _broker(
        tmp_path_factory.mktemp("broker"),
        {"session_idle_timeout": 3.0, "reaper_interval": 0.5},
    )


def _broker(directory: Path, extra: dict[str, Any] | None = None) -> Iterator[Live]:
    port = free_port()
    password = secrets.token_urlsafe(12)
    client_secret = secrets.token_urlsafe(24)
    env = clean_env()
    standin = Process.start(
        "standin-forgejo",
        [
            str(BIN / "fjmcp"),
            "standin-forgejo",
            "--port",
            "0",
            "--user",
            f"{DEMO_USER}:{password}",
            "--client",
            f"fjmcp-e2e:{client_secret}:http://127.0.0.1:{port}/oauth/callback",
        ],
        cwd=directory,
        env=env,
    )
    broker_process: Process | None = None
    try:
        forgejo_url = standin.wait_for(r"on (http://127\.0\.0\.1:\d+)").group(1)
        config = _write_broker_config(
            directory, port, forgejo_url, client_secret, extra
        )
        broker_process = Process.start(
            "twistd fjmcp",
            [str(BIN / "twistd"), "-n", "--pidfile=", "fjmcp", "--config", str(config)],
            cwd=directory,
            env=env,
        )
        broker_process.wait_for(r"listening on")
        yield Live(
            mcp_url=f"http://127.0.0.1:{port}/mcp",
            public_url=f"http://127.0.0.1:{port}",
            forgejo_url=forgejo_url,
            user=DEMO_USER,
            password=password,
            config_path=config,
            broker=broker_process,
            standin=standin,
        )
    finally:
        if broker_process is not None:
            broker_process.stop()
        standin.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``fjmcp demo`` on free loopback ports, as ``make run`` starts it."""
    directory = tmp_path_factory.mktemp("demo")
    port = free_port()
    process = Process.start(
        "fjmcp demo",
        [
            str(BIN / "fjmcp"),
            "demo",
            "--port",
            str(port),
            "--forgejo-port",
            "0",
            "--state-dir",
            str(directory / "var"),
            "--user",
            DEMO_USER,
        ],
        cwd=directory,
        env=clean_env(),
    )
    try:
        mcp_url = process.wait_for(r"MCP URL:\s+(\S+)").group(1)
        forgejo_url = process.wait_for(r"Forgejo:\s+(http://\S+)").group(1)
        password = process.wait_for(r"Demo password:\s+(\S+)").group(1)
        process.wait_for("Press Ctrl-C to stop")
        yield Live(
            mcp_url=mcp_url,
            public_url=mcp_url.removesuffix("/mcp"),
            forgejo_url=forgejo_url,
            user=DEMO_USER,
            password=password,
            config_path=directory / "var" / "demo.toml",
            broker=process,
            standin=process,
        )
    finally:
        status = process.stop(signal.SIGINT)
    assert status == 0, f"fjmcp demo ended with {status} on SIGINT:\n{process.output}"
