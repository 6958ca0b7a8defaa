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
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from attrs import define, field, frozen

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e"
BIN = Path(sys.executable).parent
SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
NODE_MODULES = E2E / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
START_DEADLINE = 30.0
STOP_GRACE = 10.0
DEMO_USER = "alice"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without FJMCP_* settings, with the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FJMCP_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra or {})
    return env


@define
class Process:
    """A server process whose combined output is read line by line by a thread."""

    name: str
    popen: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(factory=queue.Queue)
    seen: list[str] = field(factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(
        cls, name: str, argv: list[str], *, cwd: Path, env: dict[str, str]
    ) -> Process:
        """Start ``argv`` with stdout and stderr piped together."""
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        process = cls(name, popen)
        process.reader = threading.Thread(target=process._read, daemon=True, name=name)
        process.reader.start()
        return process

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def output(self) -> str:
        """Every line read so far."""
        return "\n".join(self.seen)

    def wait_for(self, pattern: str, timeout: float = START_DEADLINE) -> re.Match[str]:
        """The first new line matching ``pattern``; fails at the deadline or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no line matching {pattern!r} within {timeout} s:\n"
                    f"{self.output}"
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.lines.put(None)
                raise AssertionError(
                    f"{self.name} exited ({self.popen.wait()}) before {pattern!r}:\n"
                    f"{self.output}"
                )
            self.seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def drain(self) -> None:
        """Move the lines read so far into `output`."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.lines.put(None)
                return
            self.seen.append(line)

    def stop(self, sig: int = signal.SIGTERM, grace: float = STOP_GRACE) -> int:
        """Signal the process, wait for it (SIGKILL after ``grace``); its status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            status = self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=grace)
            raise AssertionError(
                f"{self.name} ignored signal {sig} for {grace} s:\n{self.output}"
            ) from None
        finally:
            if self.reader is not None:
                self.reader.join(grace)
            if self.popen.stdout is not None:
                self.popen.stdout.close()
        self.drain()
        return status


@frozen
class Live:
    """A running broker and stand-in Forgejo, as the clients see them."""

    mcp_url: str
    public_url: str
    forgejo_url: str
    user: str
    password: str
    config_path: Path | None
    broker: Process
    standin: Process

    def client_env(self) -> dict[str, str]:
        """The environment of a client script: the login, never in argv."""
        return clean_env({"E2E_USER": self.user, "E2E_PASSWORD": self.password})


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; its status and body (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _require_serving(live: Live) -> None:
    """
    Skip, naming the missing piece, while the broker does not yet serve the
    OAuth metadata (issue 4) or ``/mcp`` (issue 5).
    """
    status, _ = http_get(live.public_url + "/.well-known/oauth-authorization-server")
    if status == 404:
        pytest.skip("the broker does not serve OAuth yet (issue 4: oauth routes)")
    request = urllib.request.Request(  # noqa: S310
        live.mcp_url,
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    except urllib.error.HTTPError as e:
        if e.code == 404:
            pytest.skip("the broker does not serve /mcp yet (issue 5: bridge)")


def _write_broker_config(
    directory: Path, port: int, forgejo_url: str, client_secret: str
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
        "store_path": str(state / "fjmcp.sqlite3"),
        "allowed_origins": ["http://localhost:6274"],
        "log_level": "info",
    }
    path = directory / "fjmcp.toml"
    path.write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in lines.items()) + "\n"
    )
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A stand-in Forgejo and a twistd broker on free loopback ports."""
    import secrets

    directory = tmp_path_factory.mktemp("broker")
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
        config = _write_broker_config(directory, port, forgejo_url, client_secret)
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
        forgejo_url = process.wait_for(r"Forgejo .*: (http://\S+)").group(1)
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
        process.stop(signal.SIGINT)


@pytest.fixture
def serving_broker(broker: Live) -> Live:
    """The `broker`, once it serves OAuth and /mcp (else the test skips, saying why)."""
    _require_serving(broker)
    return broker


@pytest.fixture
def serving_demo(demo: Live) -> Live:
    """The `demo`, once it serves OAuth and /mcp (else the test skips, saying why)."""
    _require_serving(demo)
    return demo


def run_client(
    argv: list[str], live: Live, *, timeout: float = 120.0, cwd: Path = E2E
) -> dict[str, Any]:
    """Run a client script; its one JSON line, or a failure with its output."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=live.client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        live.broker.drain()
        raise AssertionError(
            f"{argv[1]} exited {done.returncode}\nstdout:\n{done.stdout}\n"
            f"stderr:\n{done.stderr[-6000:]}\nbroker:\n{live.broker.output[-6000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def node() -> str | None:
    """The node executable, if there is one."""
    return shutil.which("node")
