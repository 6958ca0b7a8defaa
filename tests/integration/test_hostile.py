# -*- test-case-name: tests.integration.test_hostile -*-
"""
The isolation battery: a hostile child (``tests/children/hostile_server.py``)
attacks from alice's session, in every sandbox profile this machine
supports, while bob's session (the same program, behaving) keeps answering.

Each attack must fail or be contained: no capabilities; nothing of bob's
token (``/proc/*/environ``, another child's token pipe or file), of the
store, key file or configuration; no connection to the admin socket; no
signal to the broker or to bob's child; a fork bomb bounded; memory past
the limit refused; a stdout flood without newlines stopped, its session
answering a JSON-RPC error and ending; CPU past the limit ends the child
alone, the same way. Every one of bob's calls succeeds throughout.

Profiles: ``none`` with per-user uids (root only: it changes uid),
``bubblewrap`` (where bwrap can make namespaces), ``bubblewrap`` with
per-user uids (root, and unprivileged user namespaces), ``systemd-run``
(only under a systemd PID 1; skipped here with that reason).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from fjmcp.config import ChildLimits
from fjmcp.supervisor.cgroups import find_limiter
from fjmcp.supervisor.sandbox import find_tools
from fjmcp.supervisor.startup import can_change_uid, probe_bubblewrap, under_systemd
from tests.integration.lifecycle import (
    Deployment,
    McpClient,
    children_for_any_uid,
    deploy,
)

pytestmark = pytest.mark.integration

PYTHON = "/usr/bin/python3"  # readable by any uid (a venv under /root is not)
HOSTILE = (PYTHON, "-B", str(children_for_any_uid() / "hostile_server.py"))
UID_FIRST = 231000
PROCESSES = 48
MEMORY = 192 << 20
NO_CAPS = "0000000000000000"


def _profile_skip(profile: str) -> str | None:
    """Why ``profile`` cannot run on this machine, or None."""
    if profile == "systemd-run":
        if not under_systemd():
            return "PID 1 is not systemd: no systemd-run scopes on this machine"
        return None
    if "uids" in profile and not can_change_uid():
        return "per-user uids need CAP_SETUID and CAP_SETGID (run as root)"
    if "bubblewrap" in profile:
        tools = find_tools()
        if tools.bwrap is None:
            return "bwrap is not installed (Debian package bubblewrap)"
        problem = probe_bubblewrap(tools, None)
        if problem is not None:
            return f"bwrap cannot create namespaces on this machine: {problem}"
        if "uids" in profile and probe_bubblewrap(tools, UID_FIRST) is not None:
            return "unprivileged user namespaces are forbidden on this machine"
    return None


PROFILES: dict[str, dict[str, Any]] = {
    "none+uids": {
        "child_sandbox": "none",
        "child_uid_range": (UID_FIRST, 100),
        "child_token_via": "fd",
    },
    "bubblewrap": {"child_sandbox": "bubblewrap", "child_token_via": "file"},
    "bubblewrap+uids": {
        "child_sandbox": "bubblewrap",
        "child_uid_range": (UID_FIRST + 200, 100),
        "child_token_via": "fd",
    },
    "systemd-run": {"child_sandbox": "systemd-run", "child_token_via": "file"},
}

Deploy = Callable[..., Awaitable[Deployment]]


@pytest_twisted.async_yield_fixture
async def broker(tmp_path: Path) -> AsyncIterator[Deploy]:
    """Start a deployment with the given settings; stopped at teardown."""
    started: list[Deployment] = []

    async def start(**settings: Any) -> Deployment:
        deployment = await deploy(tmp_path / f"d{len(started)}", **settings)
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        await deployment.stop()
        assert deployment.live_children == 0


async def call(client: McpClient, sid: str, tool: str, **arguments: Any) -> Any:
    """tools/call in the session; the Call."""
    return await client.request(
        "tools/call", {"name": tool, "arguments": arguments}, sid
    )


async def structured(client: McpClient, sid: str, tool: str, **args: Any) -> Any:
    """A successful call's structured content."""
    answer = await call(client, sid, tool, **args)
    result = answer.result
    assert not result.get("isError"), result
    return result["structuredContent"]


async def bob_still_served(d: Deployment, bob: McpClient, sid: str) -> None:
    """bob's session answers whoami with bob's login (Forgejo took his token)."""
    info = await structured(bob, sid, "whoami")
    assert info["login"] == "bob"
    assert d.sessions_of("bob")


def _ended_with_error(answer: Any) -> None:
    """The call was answered with a JSON-RPC error (the child died)."""
    assert answer.status == 200, answer
    assert "error" in answer.body, answer.body


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest_twisted.ensureDeferred
async def test_hostile_child_is_contained(broker: Deploy, profile: str) -> None:
    """The battery of the module docstring, in ``profile``."""
    reason = _profile_skip(profile)
    if reason is not None:
        pytest.skip(reason)
    # memory in a cgroup where one is writable (the child is killed), else
    # as address space (it gets MemoryError)
    cgroup_memory = (
        cgroup_limiter := find_limiter(ChildLimits(memory=MEMORY))
    ) is not None and cgroup_limiter.memory_parent is not None
    d = await broker(
        child_command=HOSTILE,
        child_limits=ChildLimits(
            memory=MEMORY if cgroup_memory else 0,
            address_space=0 if cgroup_memory else MEMORY,
            processes=PROCESSES,
            open_files=256,
            cpu_seconds=3,
        ),
        max_line_bytes=1 << 20,
        **PROFILES[profile],
    )
    config_file = d.state / "fjmcp.toml"
    config_file.write_text('forgejo_client_secret = "lifecycle-forgejo-secret"\n')
    config_file.chmod(0o600)
    alice_tokens = await d.sign_in("alice")
    bob_tokens = await d.sign_in("bob")
    alice, bob = d.mcp(alice_tokens.access_token), d.mcp(bob_tokens.access_token)
    bob_sid = await bob.initialize()
    await bob_still_served(d, bob, bob_sid)
    bob_token = (await d.current("bob")).access_token
    (bob_session,) = d.sessions_of("bob")
    bob_pid = bob_session.children[bob_session.generation].pid
    assert bob_pid is not None

    # probe: capabilities, tokens, files, admin socket, signals
    sid = await alice.initialize()
    report = await structured(
        alice,
        sid,
        "probe",
        paths=[
            d.config.store_path,
            str(d.config.token_keys_path),
            str(config_file),
            str(d.config.child_runtime_path / f"{bob_pid}.json"),
        ],
        admin_socket=str(d.config.admin_socket_path),
        broker_pid=os.getpid(),
        other_pid=bob_pid,
    )
    assert report["cap_eff"] == NO_CAPS, report
    assert report["uid"] != 0 and report["gid"] != 0, report
    assert bob_token not in json.dumps(report)
    assert "lifecycle-forgejo-secret" not in json.dumps(report)
    for path, outcome in report["files"].items():
        assert not outcome.startswith("READ:"), (path, outcome)
    assert report["admin_socket"] != "CONNECTED", report
    assert report["signal_broker"] != "DELIVERED", report
    assert report["signal_other"] != "DELIVERED", report
    if "bubblewrap" in profile:
        # only bwrap's own init besides the child: no other process is seen
        assert report["visible_pids"] <= 1, report
    await bob_still_served(d, bob, bob_sid)

    # fork bomb: bounded by pids.max or the per-uid RLIMIT_NPROC
    bomb = await structured(alice, sid, "forkbomb", limit=1000)
    assert bomb["forked"] < PROCESSES, bomb
    assert bomb["refused"] == "EAGAIN", bomb
    await bob_still_served(d, bob, bob_sid)

    # memory past the limit: refused (RLIMIT_AS) or the child alone is killed
    answer = await call(alice, sid, "allocate", limit=4 * MEMORY)
    if "error" in answer.body:
        _ended_with_error(answer)
    else:
        grabbed = answer.result["structuredContent"]
        assert grabbed["stopped_by"] == "MemoryError", grabbed
        assert grabbed["allocated"] < MEMORY, grabbed
    await bob_still_served(d, bob, bob_sid)

    # a stdout flood without newlines: the child is stopped, the call is
    # answered with a JSON-RPC error and the session ends
    sid2 = await alice.initialize()
    _ended_with_error(await call(alice, sid2, "flood", size=8 << 20))
    after = await call(alice, sid2, "whoami")
    assert after.status == 404, after
    await bob_still_served(d, bob, bob_sid)

    # CPU time past the limit: the child dies alone, the same way
    sid3 = await alice.initialize()
    _ended_with_error(await call(alice, sid3, "burn", seconds=60))
    await bob_still_served(d, bob, bob_sid)
