# -*- test-case-name: tests.admin.test_commands -*-
"""Tests for `fjmcp.admin.commands`: discovery, output, write fallback."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from fjmcp.admin.client import AdminClient
from fjmcp.admin.commands import COMMANDS, AdminContext, _parser, all_commands, main
from fjmcp.store.target import StoreTarget
from tests.support import broker_config


def test_status_is_registered() -> None:
    """status is always among the commands; topic modules add theirs."""
    commands = all_commands()
    assert "status" in commands
    assert commands["status"] is COMMANDS[0]


def test_emit_json_and_text(tmp_path: Path) -> None:
    """emit prints JSON with --json and aligned lines otherwise."""
    out = io.StringIO()
    ctx = AdminContext(
        config=broker_config(tmp_path),
        client=AdminClient(tmp_path / "none.sock"),
        out=out,
        json_output=True,
    )
    ctx.emit({"b": 1, "a": "x"})
    assert json.loads(out.getvalue()) == {"a": "x", "b": 1}
    out2 = io.StringIO()
    AdminContext(
        config=None, client=AdminClient(tmp_path / "none.sock"), out=out2
    ).emit({"key": 1, "longer": 2})
    assert out2.getvalue().splitlines() == ["key     1", "longer  2"]


def test_write_falls_back_to_store_without_daemon(tmp_path: Path) -> None:
    """With no daemon, a write runs its offline function on the store."""
    opened: list[str] = []

    class FakeStore:
        def close(self) -> None:
            opened.append("closed")

    def opener(reactor: Any, target: StoreTarget) -> FakeStore:
        opened.append(target.location)
        return FakeStore()

    ctx = AdminContext(
        config=broker_config(tmp_path),
        client=AdminClient(tmp_path / "none.sock"),
        reactor=object(),
        store_opener=opener,
    )

    async def offline(store: Any) -> str:
        return "offline-done"

    async def go() -> Any:
        try:
            return await ctx.write("revoke-user", {"user": "bob"}, offline=offline)
        finally:
            await ctx.close()

    results: list[Any] = []
    Deferred.fromCoroutine(go()).addBoth(results.append)
    assert results == ["offline-done"]
    assert opened == [str(tmp_path / "fjmcp.sqlite3"), "closed"]


@pytest.mark.parametrize(
    "argv",
    [
        [
            "issue-token",
            "--config",
            "B.toml",
            "--user",
            "u",
            "--forgejo-token-file",
            "-",
        ],
        [
            "--config",
            "B.toml",
            "issue-token",
            "--user",
            "u",
            "--forgejo-token-file",
            "-",
        ],
        [
            "-c",
            "A.toml",
            "issue-token",
            "-c",
            "B.toml",
            "--user",
            "u",
            "--forgejo-token-file",
            "-",
        ],
    ],
)
def test_global_options_are_accepted_after_the_command(argv: list[str]) -> None:
    """
    ``fjmcp admin issue-token --config FILE ...`` (the documented form)
    parses like ``fjmcp admin --config FILE issue-token ...``; an option
    given after the command wins over one given before it.
    """
    args = _parser(all_commands()).parse_args(argv)
    assert args.command == "issue-token"
    assert args.config == "B.toml"
    assert args.user == "u"


def test_options_before_the_command_are_not_hidden() -> None:
    """A command's copy of --config/--json never resets the outer value."""
    args = _parser(all_commands()).parse_args(["--json", "-c", "A.toml", "status"])
    assert args.config == "A.toml" and args.json is True
    args = _parser(all_commands()).parse_args(["status", "--json"])
    assert args.config is None and args.json is True


def test_gen_key_with_config_after_the_command(tmp_path: Path) -> None:
    """
    ``fjmcp admin gen-key --config FILE``, as the key file's error message
    tells the operator to run, creates the configured key file (mode 0600).
    """
    (tmp_path / "secret").write_text("s3cret-value\n")
    keys = tmp_path / "token-keys"
    config = tmp_path / "fjmcp.toml"
    config.write_text(
        "\n".join(
            [
                'public_url = "http://127.0.0.1:8080"',
                'forgejo_url = "https://forgejo.example.org"',
                'forgejo_client_id = "client"',
                f'forgejo_client_secret_file = "{tmp_path / "secret"}"',
                'child_command = ["python3"]',
                f'store_path = "{tmp_path / "fjmcp.sqlite3"}"',
                f'token_keys_file = "{keys}"',
            ]
        )
        + "\n"
    )
    out = io.StringIO()
    assert main(["gen-key", "--config", str(config)], out=out) == 0
    assert keys.stat().st_mode & 0o777 == 0o600
    assert "new active key" in out.getvalue()
