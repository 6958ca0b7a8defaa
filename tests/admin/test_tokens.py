# -*- test-case-name: tests.admin.test_tokens -*-
"""
Tests for `fjmcp.admin.tokens`: ``issue-token`` (through the daemon and on
the store) and ``gen-key``.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fjmcp.admin.client import AdminClient, AdminError, DaemonNotRunningError
from fjmcp.admin.commands import AdminContext, all_commands
from fjmcp.admin.server import AdminCommandError, AdminHandlers
from fjmcp.admin.settings import AdminSettings
from fjmcp.admin.tokens import AdminTokenIssuer, read_forgejo_token
from fjmcp.interfaces import Identity, UpstreamGrant
from fjmcp.oauth.bearer import BearerAuthenticator
from fjmcp.oauth.keys import KeyRing, load_keyring, prepend_new_key
from fjmcp.oauth.upstream_tokens import UpstreamTokens
from tests.oauth.support import MCP_URL, MemoryStore, make_config


def _outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def _issuer(store: MemoryStore, clock: Clock, ring: KeyRing) -> AdminTokenIssuer:
    settings = AdminSettings(
        socket_path=Path("/nonexistent/admin.sock"),
        token_audience=MCP_URL,
        token_ttl=3600.0,
    )
    return AdminTokenIssuer(store, UpstreamTokens(store, ring, clock), clock, settings)


def test_commands_are_registered() -> None:
    """issue-token and gen-key are found by the admin command registry."""
    commands = all_commands()
    assert "issue-token" in commands and "gen-key" in commands


def test_read_token_from_file_and_stdin(tmp_path: Path) -> None:
    """The Forgejo token comes from a file or stdin, stripped, one word."""
    path = tmp_path / "tok"
    path.write_text("  forgejo-pat-1\n")
    assert read_forgejo_token(str(path)) == "forgejo-pat-1"
    assert read_forgejo_token("-", io.StringIO("pat-2\n")) == "pat-2"
    for bad in ["", "\n", "two words", "a\nb"]:
        with pytest.raises(AdminError):
            read_forgejo_token("-", io.StringIO(bad))
    with pytest.raises(AdminError, match="cannot read"):
        read_forgejo_token(str(tmp_path / "absent"))


def test_issued_tokens_pass_the_bearer_check() -> None:
    """N tokens are minted for admin-cli; each authenticates as the user."""
    store, clock, ring = MemoryStore(), Clock(), KeyRing.generate()
    tokens = _outcome(
        Deferred.fromCoroutine(_issuer(store, clock, ring).issue("alice", "pat", 60, 3))
    )
    assert len(set(tokens)) == 3
    auth = BearerAuthenticator(store, clock, MCP_URL)
    for token in tokens:
        identity = _outcome(auth.authenticate(b"Bearer " + token.encode()))
        assert isinstance(identity, Identity)
        assert (identity.user, identity.client_id) == ("alice", "admin-cli")
    upstream = _outcome(
        UpstreamTokens(store, ring, clock).current(UpstreamGrant("alice"))
    )
    assert upstream.access_token == "pat"
    dump = store.all_bytes()
    assert b"pat\x00" not in dump
    assert not any(t.encode() in dump for t in tokens)
    clock.advance(60)
    fresh = BearerAuthenticator(store, clock, MCP_URL)
    assert isinstance(
        _outcome_failure(fresh.authenticate(b"Bearer " + tokens[0].encode())), Failure
    )


def _outcome_failure(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0]


@pytest.mark.parametrize(
    "args",
    [
        {"user": "", "forgejo_token": "p", "ttl": 1, "count": 1},
        {"user": "a b", "forgejo_token": "p", "ttl": 1, "count": 1},
        {"user": "alice", "forgejo_token": "", "ttl": 1, "count": 1},
        {"user": "alice", "forgejo_token": "p q", "ttl": 1, "count": 1},
        {"user": "alice", "forgejo_token": "p", "ttl": 0, "count": 1},
        {"user": "alice", "forgejo_token": "p", "ttl": float("nan"), "count": 1},
        {"user": "alice", "forgejo_token": "p", "ttl": 1, "count": 0},
        {"user": "alice", "forgejo_token": "p", "ttl": 1, "count": True},
        {"user": 5, "forgejo_token": "p", "ttl": 1, "count": 1},
    ],
)
def test_handler_refuses_bad_arguments(args: dict[str, Any]) -> None:
    """The daemon handler refuses malformed arguments with a clear error."""
    store = MemoryStore()
    issuer = _issuer(store, Clock(), KeyRing.generate())
    with pytest.raises(AdminCommandError):
        _outcome(Deferred.fromCoroutine(issuer.handle(args)))
    assert store.conn.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


class _DaemonClient(AdminClient):
    """An admin client that dispatches to in-process handlers."""

    def __init__(self, handlers: AdminHandlers | None) -> None:
        super().__init__("/nonexistent.sock")
        self.handlers = handlers
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def call(self, cmd: str, args: Any = None) -> Any:
        if self.handlers is None:
            raise DaemonNotRunningError("no daemon")
        self.requests.append((cmd, dict(args or {})))
        response = _outcome(
            Deferred.fromCoroutine(self.handlers.dispatch({"cmd": cmd, "args": args}))
        )
        if not response["ok"]:
            raise AdminError(response["error"])
        return response["result"]


def _args(token_file: str, **kw: Any) -> argparse.Namespace:
    values = {
        "user": "alice",
        "forgejo_token_file": token_file,
        "ttl": None,
        "count": 2,
    }
    values.update(kw)
    return argparse.Namespace(**values)


def test_issue_token_goes_through_the_daemon(tmp_path: Path) -> None:
    """With a daemon running, issue-token is its handler; tokens print per line."""
    store, clock, ring = MemoryStore(), Clock(), KeyRing.generate()
    handlers = AdminHandlers({"issue-token": _issuer(store, clock, ring).handle})
    client = _DaemonClient(handlers)
    token_file = tmp_path / "pat"
    token_file.write_text("pat-secret\n")
    out = io.StringIO()
    ctx = AdminContext(config=make_config(), client=client, out=out)
    run = all_commands()["issue-token"].run
    status = _outcome(Deferred.fromCoroutine(run(ctx, _args(str(token_file)))))  # type: ignore[arg-type]
    assert status == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert client.requests[0][0] == "issue-token"
    auth = BearerAuthenticator(store, clock, MCP_URL)
    assert isinstance(
        _outcome(auth.authenticate(b"Bearer " + lines[0].encode())), Identity
    )


def test_issue_token_offline_uses_the_store_and_key_file(tmp_path: Path) -> None:
    """With the daemon down, issue-token works on the store with the key file."""
    store = MemoryStore()
    keys = tmp_path / "token-keys"
    prepend_new_key(keys)
    config = make_config(token_keys_file=str(keys))
    token_file = tmp_path / "pat"
    token_file.write_text("pat-secret\n")
    out = io.StringIO()
    clock = Clock()
    ctx = AdminContext(
        config=config,
        client=_DaemonClient(None),
        out=out,
        reactor=clock,
        store_opener=lambda r, p: store,
    )
    run = all_commands()["issue-token"].run
    status = _outcome(
        Deferred.fromCoroutine(run(ctx, _args(str(token_file), count=1, ttl=30.0)))  # type: ignore[arg-type]
    )
    assert status == 0
    token = out.getvalue().strip()
    auth = BearerAuthenticator(store, clock, MCP_URL)
    assert isinstance(
        _outcome(auth.authenticate(b"Bearer " + token.encode())), Identity
    )
    upstream = UpstreamTokens(store, load_keyring(keys), clock)
    assert (
        _outcome(upstream.current(UpstreamGrant("alice"))).access_token == "pat-secret"
    )


def test_issue_token_offline_without_key_file_is_clear(tmp_path: Path) -> None:
    """Without a key file the offline command fails with the gen-key hint."""
    store = MemoryStore()
    config = make_config(token_keys_file=str(tmp_path / "absent"))
    token_file = tmp_path / "pat"
    token_file.write_text("pat\n")
    ctx = AdminContext(
        config=config,
        client=_DaemonClient(None),
        reactor=Clock(),
        store_opener=lambda r, p: store,
    )
    run = all_commands()["issue-token"].run
    with pytest.raises(AdminError, match="gen-key"):
        _outcome(Deferred.fromCoroutine(run(ctx, _args(str(token_file)))))  # type: ignore[arg-type]


def test_gen_key_creates_private_file(tmp_path: Path) -> None:
    """gen-key writes the configured key file with mode 0600 and names the key."""
    keys = tmp_path / "state" / "token-keys"
    out = io.StringIO()
    ctx = AdminContext(
        config=make_config(token_keys_file=str(keys)),
        client=_DaemonClient(None),
        out=out,
    )
    assert all_commands()["gen-key"].run(ctx, argparse.Namespace(file=None)) == 0
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert load_keyring(keys).active_id in out.getvalue()
