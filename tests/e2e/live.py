# -*- test-case-name: tests.e2e -*-
"""
Helpers for tests that drive real fjmcp processes and real clients: a
process whose output is read line by line with bounded waits, stopped with
SIGTERM then SIGKILL; free loopback ports; a clean environment; running a
client script that prints one JSON line.
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

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
        cls,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stdin: bool = False,
        pass_fds: tuple[int, ...] = (),
    ) -> Process:
        """Start ``argv`` with stdout and stderr piped together (and stdin
        piped for `send` when ``stdin``), inheriting ``pass_fds``."""
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            pass_fds=pass_fds,
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

    def send(self, line: str) -> None:
        """Write one line to the process's stdin (started with ``stdin``)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

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
            if self.popen.stdin is not None:
                self.popen.stdin.close()
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


def client_missing(reason: str, *, node: bool = False) -> NoReturn:
    """
    Skip a test whose SDK client is not installed, naming what is missing;
    under ``make test``, which installs the clients first, a missing client
    is a failure instead: ``FJMCP_E2E_REQUIRED=1`` requires every client,
    ``python`` (no npm on the machine) only the Python one, so the Node
    clients (``node=True``) skip.
    """
    required = os.environ.get("FJMCP_E2E_REQUIRED")
    if required == "1" or (required == "python" and not node):
        pytest.fail(reason)
    pytest.skip(reason)
