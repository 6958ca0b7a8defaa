# -*- test-case-name: tests.integration.test_demo -*-
"""
``fjmcp demo`` for real: in-process on the test reactor (both servers
answer, stop closes both ports) and as the command a user runs (it prints
what it promises, Ctrl-C and SIGTERM end it with status 0 at once, a port in
use is a clear error, and a live session's child goes with it).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor

from fjmcp.demo import DemoError, DemoOptions, start_demo
from tests.e2e.live import BIN, Process, clean_env, free_port, http_get

pytestmark = pytest.mark.integration

reactor: Any = _reactor


async def _get(url: str) -> tuple[int, bytes]:
    import treq

    response = await treq.get(url, timeout=5)
    body: bytes = await treq.content(response)
    return response.code, body


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest_twisted.ensureDeferred
async def test_start_demo_serves_both_and_stop_closes_both(tmp_path: Path) -> None:
    """
    start_demo brings up the stand-in (with the demo user and the broker's
    application) and the broker on loopback; stop closes both ports.
    """
    options = DemoOptions(
        port=free_port(), forgejo_port=0, state_dir=tmp_path / "var", user="kim"
    )
    demo = await start_demo(reactor, options, handle_signals=False)
    standin_port = demo.standin_port.getHost().port  # type: ignore[attr-defined]
    try:
        assert demo.mcp_url == f"http://127.0.0.1:{options.port}/mcp"
        status, body = await _get(f"http://127.0.0.1:{options.port}/healthz")
        assert status == 200, body
        assert json.loads(body)["store"] == "ok"
        status, body = await _get(demo.standin.base_url + "/api/v1/version")
        assert status == 200
        assert demo.standin.config.users[0].login == "kim"
        assert demo.standin.config.clients[0].redirect_uris == (
            f"http://127.0.0.1:{options.port}/oauth/callback",
        )
        assert demo.config.forgejo_url == demo.standin.base_url
    finally:
        await demo.stop()
    assert _refused(options.port)
    assert _refused(standin_port)


@pytest_twisted.ensureDeferred
async def test_start_demo_reports_a_taken_port_and_leaves_nothing_open(
    tmp_path: Path,
) -> None:
    """A stand-in port in use is a DemoError naming the stand-in."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = DemoOptions(
            port=free_port(),
            forgejo_port=taken.getsockname()[1],
            state_dir=tmp_path / "var",
        )
        with pytest.raises(DemoError, match="stand-in Forgejo cannot listen"):
            await start_demo(reactor, options, handle_signals=False)
    assert _refused(options.port)


def _start_command(tmp_path: Path, port: int) -> Process:
    return Process.start(
        "fjmcp demo",
        [
            str(BIN / "fjmcp"),
            "demo",
            "--port",
            str(port),
            "--forgejo-port",
            "0",
            "--state-dir",
            str(tmp_path / "var"),
        ],
        cwd=tmp_path,
        env=clean_env(),
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_command_prints_its_promise_and_stops_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """
    ``fjmcp demo`` prints the MCP URL, the demo login and password and how to
    connect Inspector; Ctrl-C (SIGINT) or SIGTERM ends it with status 0
    within a few seconds and closes both ports.
    """
    port = free_port()
    process = _start_command(tmp_path, port)
    try:
        url = process.wait_for(r"MCP URL:\s+(\S+)").group(1)
        forgejo = process.wait_for(r"Forgejo:\s+http://127\.0\.0\.1:(\d+)").group(1)
        process.wait_for(r"Demo login:\s+demo$")
        password = process.wait_for(r"Demo password:\s+(\S+)").group(1)
        process.wait_for("npx @modelcontextprotocol/inspector")
        process.wait_for("Press Ctrl-C to stop")
        assert url == f"http://127.0.0.1:{port}/mcp"
        assert (tmp_path / "var" / "demo-password").read_text().strip() == password
        status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
    finally:
        code = process.stop(sig, grace=8.0)
    assert code == 0, process.output
    assert _refused(port)
    assert _refused(int(forgejo))
    assert password not in process.output.split("Demo password:")[0]


def test_the_command_exits_nonzero_when_the_broker_port_is_taken(
    tmp_path: Path,
) -> None:
    """A broker port in use ends the command with a non-zero status and a reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _start_command(tmp_path, port)
        try:
            code = process.popen.wait(timeout=30)
        finally:
            process.stop()
    assert code != 0
    # The stand-in says the same for its port (tests/test_listening.py).
    assert f"the broker cannot listen: 127.0.0.1:{port} is already in use" in (
        process.output
    )


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_ctrl_c_with_a_live_session_stops_its_child_too(tmp_path: Path) -> None:
    """
    Ctrl-C while a client holds a session: the demo exits 0 and the
    session's child (``python -m fjmcp.demo_child``) is gone with it,
    reaped, not left running or orphaned.
    """
    port = free_port()
    process = _start_command(tmp_path, port)
    child: int | None = None
    try:
        process.wait_for("Press Ctrl-C to stop")
        token_file = tmp_path / "forgejo-token"
        token_file.write_text("not-checked-until-whoami\n")
        minted = subprocess.run(
            [str(BIN / "fjmcp"), "admin", "--config", str(tmp_path / "var/demo.toml")]
            + ["--json", "issue-token", "--user", "demo"]
            + ["--forgejo-token-file", str(token_file)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env=clean_env(),
        )
        (token,) = json.loads(minted.stdout)["tokens"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/mcp",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "test", "version": "1"},
                    },
                }
            ).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200
            assert response.headers["Mcp-Session-Id"]
        children = _children_of(process.popen.pid)
        assert len(children) == 1, children
        child = children[0]
        assert "fjmcp.demo_child" in Path(f"/proc/{child}/cmdline").read_text()
    finally:
        code = process.stop(signal.SIGINT, grace=8.0)
    assert code == 0, process.output
    assert child is not None
    assert not Path(f"/proc/{child}").exists(), process.output
