# -*- test-case-name: tests.integration.test_twistd -*-
"""
The real daemon: ``twistd -n --pidfile= fjmcp --config FILE`` as a process.

One broker per module (started once), on a free loopback port, with its
store in a temporary directory. Checks: twistd finds the plugin from this
checkout, /healthz answers, ``fjmcp admin status`` reaches the daemon, a
second daemon on the same store refuses, SIGTERM ends it with status 0
within 2 s, and a missing config exits 2 with a clear message. ``fjmcp
serve`` runs once too, with JSON logs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
FJMCP = str(BIN / "fjmcp")
reactor: Any = _reactor
START_DEADLINE = 20.0


class Collect(ProcessProtocol):
    """Collects a process's output; ``ended`` fires with its exit code."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[int | None] = Deferred()
        self.exited_at: float | None = None

    def outReceived(self, data: bytes) -> None:
        """Keep stdout."""
        self.output += data

    def errReceived(self, data: bytes) -> None:
        """Keep stderr, interleaved."""
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        """Fire ``ended`` with the exit code (None when killed by a signal)."""
        self.exited_at = reactor.seconds()
        value = reason.value
        if isinstance(value, ProcessDone):
            self.ended.callback(0)
        else:
            self.ended.callback(getattr(value, "exitCode", None))

    @property
    def text(self) -> str:
        """Everything printed so far."""
        return self.output.decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FJMCP_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _spawn(
    args: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[Collect, Any]:
    protocol = Collect()
    env = {**_env(), **(extra_env or {})}
    transport = reactor.spawnProcess(protocol, args[0], args, env=env, path=str(cwd))
    return protocol, transport


def _write_config(directory: Path, port: int) -> Path:
    from fjmcp.oauth.keys import prepend_new_key

    keys = directory / "state" / "token-keys"
    if not keys.exists():
        prepend_new_key(keys)
    path = directory / "fjmcp.toml"
    path.write_text(
        "\n".join(
            [
                f'public_url = "http://127.0.0.1:{port}"',
                f'listen = "tcp:{port}:interface=127.0.0.1"',
                'forgejo_url = "https://forgejo.invalid"',
                'forgejo_client_id = "client"',
                'forgejo_client_secret = "integration-client-secret"',
                f"child_command = [{json.dumps(sys.executable)}]",
                f"store_path = {json.dumps(str(directory / 'state' / 'fjmcp.sqlite3'))}",  # noqa: E501
                "",
            ]
        )
    )
    return path


async def _get(url: str) -> tuple[int, bytes]:
    import treq

    response = await treq.get(url, timeout=2)
    body: bytes = await treq.content(response)
    return response.code, body


async def _wait_healthy(url: str, proc: Collect) -> tuple[int, bytes]:
    deadline = reactor.seconds() + START_DEADLINE
    while True:
        if proc.ended.called:
            raise AssertionError(f"broker exited early:\n{proc.text}")
        try:
            return await _get(url)
        except Exception:
            if reactor.seconds() > deadline:
                raise AssertionError(f"no answer on {url}:\n{proc.text}") from None
            await deferLater(reactor, 0.1, lambda: None)


async def _wait_ended(proc: Collect, timeout: float) -> int | None:
    d: Deferred[int | None] = Deferred()

    def relay(code: int | None) -> int | None:
        d.callback(code)
        return code

    proc.ended.addCallback(relay)
    d.addTimeout(timeout, reactor)
    return await d


class Broker:
    """The module's running broker."""

    def __init__(self, directory: Path, port: int, config: Path) -> None:
        self.directory = directory
        self.port = port
        self.config = config
        self.proc: Collect | None = None
        self.transport: Any = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"


@pytest_twisted.async_yield_fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Broker]:
    """Start one twistd broker for the module; kill it at the end if still up."""
    directory = tmp_path_factory.mktemp("broker")
    port = _free_port()
    config = _write_config(directory, port)
    running = Broker(directory, port, config)
    running.proc, running.transport = _spawn(
        [TWISTD, "-n", "--pidfile=", "fjmcp", "--config", str(config)], directory
    )
    await _wait_healthy(running.url + "/healthz", running.proc)
    yield running
    if not running.proc.ended.called:
        try:
            running.transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass
        await running.proc.ended


def test_twistd_help_lists_fjmcp() -> None:
    """``twistd --help`` lists the fjmcp plugin of the installed package."""
    done = subprocess.run(
        [TWISTD, "--help"], capture_output=True, text=True, env=_env(), check=False
    )
    assert done.returncode == 0
    assert any(line.split()[:1] == ["fjmcp"] for line in done.stdout.splitlines())


def test_spawned_python_imports_this_checkout(tmp_path: Path) -> None:
    """A process started elsewhere imports fjmcp (and its plugin) from this tree."""
    code = (
        "import fjmcp.tap, twisted.plugins.fjmcp_plugin as p; "
        "print(fjmcp.tap.__file__); print(p.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        check=True,
    )
    tap_file, plugin_file = done.stdout.split()
    assert Path(tap_file).resolve() == REPO / "fjmcp" / "tap.py"
    assert (
        Path(plugin_file).resolve() == REPO / "twisted" / "plugins" / "fjmcp_plugin.py"
    )


@pytest_twisted.ensureDeferred
async def test_missing_config_exits_2(tmp_path: Path) -> None:
    """twistd with a config file that does not exist exits 2 and says why."""
    proc, _ = _spawn(
        [TWISTD, "-n", "--pidfile=", "fjmcp", "--config", str(tmp_path / "no.toml")],
        tmp_path,
    )
    code = await _wait_ended(proc, 15)
    assert code == 2, proc.text
    assert f"config file {tmp_path / 'no.toml'} does not exist" in proc.text
    assert "Traceback" not in proc.text


@pytest_twisted.ensureDeferred
async def test_healthz(broker: Broker) -> None:
    """/healthz answers 200, ok per dependency and the store's engine, no build."""
    code, body = await _get(broker.url + "/healthz")
    assert code == 200
    assert json.loads(body) == {
        "status": "ok",
        "store": "ok",
        "store_backend": "sqlite",
    }
    assert (broker.directory / "state" / "fjmcp.sqlite3").exists()


@pytest_twisted.ensureDeferred
async def test_admin_status(broker: Broker) -> None:
    """``fjmcp admin status`` reaches the running daemon."""
    proc, _ = _spawn(
        [FJMCP, "admin", "--config", str(broker.config), "--json", "status"],
        broker.directory,
    )
    code = await _wait_ended(proc, 15)
    assert code == 0, proc.text
    status = json.loads(proc.text)
    assert status["live_children"] == 0
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if head:
        assert status["git_revision"].startswith(head)
    assert status["uptime"] >= 0
    assert status["listening"].endswith(f"port={broker.port})")


@pytest_twisted.ensureDeferred
async def test_second_daemon_refuses(broker: Broker) -> None:
    """A second daemon on the same store refuses to start, clearly, nonzero."""
    config = broker.directory / "second.toml"
    text = broker.config.read_text().replace(str(broker.port), str(_free_port()))
    config.write_text(text)
    proc, _ = _spawn(
        [TWISTD, "-n", "--pidfile=", "fjmcp", "--config", str(config)], broker.directory
    )
    code = await _wait_ended(proc, 15)
    assert code not in (0, None), proc.text
    assert "fjmcp.sqlite3" in proc.text
    # The first broker is unaffected.
    code, _ = await _get(broker.url + "/healthz")
    assert code == 200


@pytest_twisted.ensureDeferred
async def test_fjmcp_serve_json_logs_env_and_flag(tmp_path: Path) -> None:
    """
    ``fjmcp serve`` runs the same tree: the ``--listen`` flag beats the file's
    port, ``FJMCP_LOG_FORMAT=json`` makes every output line one JSON object
    without the client secret, and SIGINT ends it with status 0 within 2 s.
    """
    file_port, port = _free_port(), _free_port()
    config = _write_config(tmp_path, file_port)
    proc, transport = _spawn(
        [
            FJMCP,
            "serve",
            "--config",
            str(config),
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
        ],
        tmp_path,
        {"FJMCP_LOG_FORMAT": "json"},
    )
    try:
        code, body = await _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert code == 200 and json.loads(body)["store"] == "ok"
    finally:
        sent = reactor.seconds()
        if not proc.ended.called:
            transport.signalProcess("INT")
    assert await _wait_ended(proc, 5) == 0, proc.text
    assert proc.exited_at is not None and proc.exited_at - sent < 2.0
    lines = proc.text.splitlines()
    events = [json.loads(line) for line in lines]
    assert any(e["namespace"] == "fjmcp.service.BrokerService" for e in events)
    assert any(e["message"] == "fjmcp stopped" for e in events)
    assert "integration-client-secret" not in proc.text


@pytest_twisted.ensureDeferred
async def test_sigterm_exits_0_quickly(broker: Broker) -> None:
    """SIGTERM: the idle broker exits with status 0 within 2 s, socket removed."""
    assert broker.proc is not None
    sent = reactor.seconds()
    broker.transport.signalProcess("TERM")
    code = await _wait_ended(broker.proc, 5)
    assert code == 0, broker.proc.text
    assert broker.proc.exited_at is not None
    assert broker.proc.exited_at - sent < 2.0
    assert not (broker.directory / "state" / "admin.sock").exists()
    assert "integration-client-secret" not in broker.proc.text
