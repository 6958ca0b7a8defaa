# -*- test-case-name: tests.standin.test_command -*-
"""
``fjmcp standin-forgejo`` refuses to listen anywhere but loopback and turns
its ``--user``/``--client`` options into the stand-in's configuration.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fjmcp.standin.app import StandinClient
from fjmcp.standin.command import build_config, main, parser

FJMCP = Path(sys.executable).with_name("fjmcp")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "forgejo.example"])  # noqa: S104
def test_non_loopback_host_is_refused_before_anything_starts(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-loopback ``--host`` exits with status 2 and says why, without
    starting a reactor or binding anything."""
    assert main(["--port", "0", "--host", host]) == 2
    err = capsys.readouterr().err
    assert "loopback" in err and host in err


def test_the_installed_command_refuses_all_interfaces() -> None:
    """``fjmcp standin-forgejo --host 0.0.0.0`` (the real console script)
    refuses with status 2 and a clear message."""
    done = subprocess.run(
        [str(FJMCP), "standin-forgejo", "--port", "0", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "only listens on a loopback address" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--user", "no-password"],
        ["--user", ":pw"],
        ["--client", "id-only"],
        ["--client", "id:secret:"],
        ["--client", "a:s1:http://x/cb", "--client", "a:s2:http://x/cb2"],
        ["--auto-approve", "nobody", "--user", "alice:pw"],
        ["--token-lifetime", "-5"],
    ],
)
def test_bad_options_are_reported(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed users or clients, an unknown auto-approve user and a negative
    lifetime exit with status 2 and a message, never a traceback."""
    assert main(["--port", "0", *argv]) == 2
    assert "fjmcp standin-forgejo:" in capsys.readouterr().err


def test_options_build_the_configuration() -> None:
    """Users, clients (a repeated id adds redirect URIs; an empty secret makes a
    public client), lifetime, refresh mode and auto-approve reach the config."""
    args = parser().parse_args(
        [
            "--port",
            "0",
            "--user",
            "alice:pa:ss",
            "--user",
            "bob:pw",
            "--client",
            "broker:s3cret:http://127.0.0.1:8080/oauth/callback",
            "--client",
            "broker:s3cret:http://localhost:8080/oauth/callback",
            "--client",
            "cli::http://127.0.0.1:9/cb",
            "--token-lifetime",
            "90",
            "--invalidate-refresh-tokens",
            "--auto-approve",
            "bob",
        ]
    )
    config, problems = build_config(args)
    assert problems == []
    assert [(u.login, u.password) for u in config.users] == [
        ("alice", "pa:ss"),
        ("bob", "pw"),
    ]
    assert config.clients == (
        StandinClient(
            "broker",
            "s3cret",
            (
                "http://127.0.0.1:8080/oauth/callback",
                "http://localhost:8080/oauth/callback",
            ),
        ),
        StandinClient("cli", None, ("http://127.0.0.1:9/cb",)),
    )
    assert config.token_lifetime == 90
    assert config.invalidate_refresh_tokens is True
    assert config.auto_approve == "bob"


def test_default_user_gets_a_random_password() -> None:
    """Without ``--user`` there is one user, alice, with a random password."""
    first, _ = build_config(parser().parse_args(["--port", "0"]))
    second, _ = build_config(parser().parse_args(["--port", "0"]))
    assert [u.login for u in first.users] == ["alice"]
    assert first.users[0].password != second.users[0].password
    assert len(first.users[0].password) >= 12
