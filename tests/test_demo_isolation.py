# -*- test-case-name: tests.test_demo_isolation -*-
"""The demo confines its child and says how; the demo child reads its token
however the broker passes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fjmcp.demo as demo
from fjmcp.demo_child import token_from
from fjmcp.supervisor.sandbox import Tools


def test_demo_picks_bubblewrap_when_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """bwrap that makes namespaces: bubblewrap, the token on a descriptor,
    the package bound read-only."""
    monkeypatch.setattr(
        "fjmcp.supervisor.sandbox.find_tools",
        lambda: Tools(setpriv="/usr/bin/setpriv", bwrap="/usr/bin/bwrap"),
    )
    monkeypatch.setattr("fjmcp.supervisor.startup.probe_bubblewrap", lambda t, u: None)
    monkeypatch.setattr("fjmcp.supervisor.startup.under_systemd", lambda: False)
    lines = demo.demo_isolation_lines()
    assert 'child_sandbox = "bubblewrap"' in lines
    assert 'child_token_via = "fd"' in lines
    package = str(Path(demo.__file__).resolve().parent)
    assert any(package in line for line in lines)


def test_demo_says_none_out_loud_without_bwrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No usable bwrap: none, written out (a root demo is not refused)."""
    monkeypatch.setattr("fjmcp.supervisor.sandbox.find_tools", lambda: Tools())
    assert 'child_sandbox = "none"' in demo.demo_isolation_lines()


def test_token_from_each_way(tmp_path: Path) -> None:
    """A descriptor first, then a file, then the variable."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"via-fd\n")
    os.close(write_end)
    assert token_from({"FORGEJO_TOKEN_FD": str(read_end)}) == "via-fd"
    path = tmp_path / "token"
    path.write_text("via-file\n")
    assert token_from({"FORGEJO_TOKEN_FILE": str(path)}) == "via-file"
    assert token_from({"FORGEJO_ACCESS_TOKEN": "via-env"}) == "via-env"
    assert token_from({}) == ""
