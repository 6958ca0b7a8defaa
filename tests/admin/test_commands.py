# -*- test-case-name: tests.admin.test_commands -*-
"""Tests for `fjmcp.admin.commands`: discovery, output, write fallback."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from fjmcp.admin.client import AdminClient
from fjmcp.admin.commands import COMMANDS, AdminContext, all_commands
from fjmcp.config import Config, load_config


def _config(tmp_path: Path) -> Config:
    return load_config(
        environ={
            "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
            "FJMCP_PUBLIC_URL": "http://127.0.0.1:8080",
            "FJMCP_FORGEJO_URL": "https://forgejo.example.org",
            "FJMCP_FORGEJO_CLIENT_ID": "client",
            "FJMCP_FORGEJO_CLIENT_SECRET": "s3cret-value",
            "FJMCP_CHILD_COMMAND": "python3",
            "FJMCP_STORE_PATH": str(tmp_path / "fjmcp.sqlite3"),
        }
    )


def test_status_is_registered() -> None:
    """status is always among the commands; topic modules add theirs."""
    commands = all_commands()
    assert "status" in commands
    assert commands["status"] is COMMANDS[0]


def test_emit_json_and_text(tmp_path: Path) -> None:
    """emit prints JSON with --json and aligned lines otherwise."""
    out = io.StringIO()
    ctx = AdminContext(
        config=_config(tmp_path),
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


def test_write_falls_back_to_store_without_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no daemon, a write runs its offline function on the store."""
    opened: list[str] = []

    class FakeStore:
        def close(self) -> None:
            opened.append("closed")

    def opener(reactor: Any, path: str) -> FakeStore:
        opened.append(path)
        return FakeStore()

    monkeypatch.setattr("fjmcp.service._default_store_opener", opener)
    ctx = AdminContext(
        config=_config(tmp_path),
        client=AdminClient(tmp_path / "none.sock"),
        reactor=object(),
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
