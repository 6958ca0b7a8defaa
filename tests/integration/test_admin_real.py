# -*- test-case-name: tests.integration.test_admin_real -*-
"""
Every ``fjmcp admin`` command against a real broker and its store: run as
the operator runs them (the ``fjmcp`` executable, ``--json``), first through
the running daemon's admin socket, then, once the daemon has stopped, on
the store through ``--config``. Key rotation re-seals every row online: the
sessions keep working, and the old key opens nothing any more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from fjmcp.oauth.keys import KeyRing, SealError, parse_key_file, prepend_new_key
from fjmcp.oauth.login import pending_aad
from fjmcp.store.sealed import key_usage_txn
from fjmcp.store.store import open_store_sync
from fjmcp.store.upstream_tokens import upstream_aad
from tests.integration.lifecycle import WAIT, Deployment, deploy, reactor, wait_for
from tests.integration.test_twistd import FJMCP, Collect, _env

pytestmark = pytest.mark.integration


@pytest_twisted.async_yield_fixture
async def broker(tmp_path: Path) -> AsyncIterator[Deployment]:
    """A running broker (stopped at teardown if the test did not)."""
    d = await deploy(tmp_path / "d")
    yield d
    if d.service.running:
        await d.stop()


async def fjmcp_admin(*argv: str, status: int = 0) -> Any:
    """Run ``fjmcp admin --json ARGV``; its parsed output."""
    protocol = Collect()
    args = [FJMCP, "admin", "--json", *argv]
    reactor.spawnProcess(protocol, FJMCP, args, env=_env())
    code = await protocol.ended.addTimeout(WAIT, reactor)
    assert code == status, protocol.text
    return json.loads(protocol.text) if status == 0 else protocol.text


def _config_file(d: Deployment) -> Path:
    c = d.config
    values = {
        "public_url": c.public_url,
        "forgejo_url": c.forgejo_url,
        "forgejo_client_id": c.forgejo_client_id,
        "forgejo_client_secret": c.forgejo_client_secret,
        "child_command": list(c.child_command),
        "store_path": c.store_path,
        "token_keys_file": str(c.token_keys_path),
        "admin_socket": str(c.admin_socket_path),
    }
    path = d.state / "fjmcp.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


async def _status(url: str, token: str) -> int:
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, connectTimeout=5, pool=pool))
    headers: dict[bytes | str, bytes | str] = {
        b"authorization": b"Bearer " + token.encode(),
        b"content-type": b"application/json",
        b"accept": b"application/json, text/event-stream",
    }
    response = await http.post(url, data=b"{}", headers=headers).addTimeout(
        WAIT, reactor
    )
    await response.content()
    await pool.closeCachedConnections()
    code: int = response.code
    return code


def _ring(text: str) -> KeyRing:
    return KeyRing(parse_key_file(text))


@pytest_twisted.ensureDeferred
async def test_every_admin_command_through_the_daemon(broker: Deployment) -> None:
    """
    status, users, clients, sessions, rotate-key, revoke-client and
    revoke-user through the socket: the listings match what the users did,
    rotation re-seals the Forgejo tokens while a session keeps answering,
    revoke-client ends that client's session and refuses its token.
    """
    d = broker
    sock = str(d.config.admin_socket_path)
    alice = await d.sign_in("alice")
    bob = await d.sign_in("bob")
    client = d.mcp(alice.access_token)
    sid = await client.initialize()
    assert (await client.call(sid)).ok

    status = await fjmcp_admin("--socket", sock, "status")
    assert status["live_children"] == 1
    users = {u["login"]: u for u in await fjmcp_admin("--socket", sock, "users")}
    assert users["alice"]["sessions"] == 1 and users["bob"]["sessions"] == 0
    assert users["alice"]["live_tokens"] == 2 and users["alice"]["forgejo_grants"] == 1
    listed = await fjmcp_admin("--socket", sock, "clients")
    clients = {c["client_id"]: c for c in listed}
    assert clients[alice.client_id]["users"] == 1
    assert clients[bob.client_id]["live_tokens"] == 2
    sessions = await fjmcp_admin("--socket", sock, "sessions")
    assert [(s["user"], s["client_id"]) for s in sessions] == [
        ("alice", alice.client_id)
    ]
    assert sessions[0]["session"] == sid[:8]

    # rotate-key: gen-key puts a new key first, the daemon re-seals online.
    keys_file = d.config.token_keys_path
    old = _ring(keys_file.read_text())
    assert d.service.store is not None
    before = await d.service.store.run(key_usage_txn)
    sealed = sum(before.values())
    assert before == {old.active_id: sealed} and sealed >= 2
    new_kid = prepend_new_key(keys_file)
    rotated = await fjmcp_admin("--socket", sock, "rotate-key")
    assert rotated["active_key"] == new_kid
    assert rotated["resealed"] == sealed
    assert rotated["rows_by_key"] == {new_kid: sealed}
    assert rotated["unused_keys"] == [old.active_id]
    assert await d.service.store.run(key_usage_txn) == {new_kid: sealed}
    assert (await client.call(sid)).ok  # the child needed no respawn
    await d.sign_in("alice", alice.client_id)  # seals with the new key
    assert set(await d.service.store.run(key_usage_txn)) == {new_kid}

    revoked = await fjmcp_admin("--socket", sock, "revoke-client", alice.client_id)
    assert revoked["known"] and revoked["users"] == ["alice"]
    await wait_for(lambda: d.registry.get(sid) is None, "alice's session to end")
    assert await _status(d.config.mcp_url, alice.access_token) == 401
    assert await _status(d.config.mcp_url, bob.access_token) != 401

    gone = await fjmcp_admin("--socket", sock, "revoke-user", "bob")
    assert gone["known"] and gone["broker_tokens_revoked"] == 2
    assert await _status(d.config.mcp_url, bob.access_token) == 401
    unknown = await fjmcp_admin("--socket", sock, "revoke-client", "nope", status=1)
    assert json.loads(unknown)["known"] is False


@pytest_twisted.ensureDeferred
async def test_admin_commands_on_the_store_and_rotation_offline(
    broker: Deployment,
) -> None:
    """
    With the daemon stopped, users, clients, rotate-key and revoke-client
    work on the store through --config; sessions says none is live. After
    rotation every sealed row (Forgejo tokens, a login in progress) opens
    with the new key and not with the old one.
    """
    d = broker
    alice = await d.sign_in("alice")
    await d.sign_in("bob")
    # A login left in progress holds a sealed PKCE verifier.
    response, _ = await d._browser().request(
        "GET",
        d.base + "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": alice.client_id,
            "redirect_uri": "http://127.0.0.1:45999/callback",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "s",
            "scope": "mcp",
            "resource": d.config.mcp_url,
        },
    )
    await d.stop()
    config = str(_config_file(d))

    users = {u["login"]: u for u in await fjmcp_admin("--config", config, "users")}
    assert set(users) == {"alice", "bob"} and users["alice"]["sessions"] is None
    clients = await fjmcp_admin("--config", config, "clients")
    assert alice.client_id in {c["client_id"] for c in clients}
    assert await fjmcp_admin("--config", config, "sessions") == []

    keys_file = d.config.token_keys_path
    old = _ring(keys_file.read_text())
    with open_store_sync(d.config.store_path) as sync:
        before = sync.run(key_usage_txn)
    new_kid = prepend_new_key(keys_file)
    rotated = await fjmcp_admin("--config", config, "rotate-key")
    assert rotated["resealed"] == sum(before.values())
    assert rotated["rows_by_key"] == {new_kid: sum(before.values())}
    new = _ring(keys_file.read_text())
    with open_store_sync(d.config.store_path) as sync:
        rows = sync.conn.execute(
            "SELECT user_id, key_id, access_sealed, refresh_sealed FROM upstream_tokens"
        ).fetchall()
        pending = sync.conn.execute(
            "SELECT state_hash, key_id, verifier_sealed FROM pending_authorizations"
        ).fetchall()
    assert len(rows) == 2
    for user_id, kid, access, refresh in rows:
        assert kid == new_kid
        new.open(kid, access, upstream_aad(user_id, "access"))
        new.open(kid, refresh, upstream_aad(user_id, "refresh"))
        for candidate in (kid, old.active_id):
            with pytest.raises(SealError):
                old.open(candidate, access, upstream_aad(user_id, "access"))
    for state_hash, kid, sealed in pending:
        new.open(kid, sealed, pending_aad(state_hash))
        with pytest.raises(SealError):
            old.open(old.active_id, sealed, pending_aad(state_hash))

    revoked = await fjmcp_admin("--config", config, "revoke-client", alice.client_id)
    assert revoked["known"] and not revoked["daemon"]
    clients = await fjmcp_admin("--config", config, "clients")
    assert alice.client_id not in {c["client_id"] for c in clients}
