# -*- test-case-name: tests.integration.test_gitea_mcp -*-
"""
A real third-party MCP server as the child: ``gitea-mcp==0.5.1`` (PyPI),
installed by ``make child-deps`` into ``.venv-gitea-mcp`` from
``tests/children/requirements-gitea-mcp.lock.txt``, run through the
strongest sandbox this machine has, against the stand-in Forgejo.

gitea-mcp reads its token from ``GITEA_TOKEN`` and the instance from
``GITEA_URL`` (environment only, so ``child_token_via = "env"``) and sends
``Authorization: token <PAT>``. Its tool ``get_server_info`` asks
``GET /api/v1/user`` and ``GET /api/v1/version``, the two stand-in routes
this test needs: the login it answers proves that the call reached the
stand-in with the session user's own Forgejo token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.integration.lifecycle import Deployment, deploy
from tests.integration.test_hostile import _profile_skip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
GITEA_MCP = ROOT / ".venv-gitea-mcp" / "bin" / "gitea-mcp"

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


@pytest_twisted.ensureDeferred
async def test_gitea_mcp_calls_the_standin_with_the_users_token(
    broker: Deploy,
) -> None:
    """
    Two users' sessions each call get_server_info through gitea-mcp under
    bubblewrap: each answer names its own user (Forgejo's /api/v1/user saw
    that user's token) and the stand-in's version.
    """
    if not GITEA_MCP.exists():
        pytest.skip("gitea-mcp is not installed: run `make child-deps`")
    # without bubblewrap, "none" written out (a root broker refuses it unsaid)
    profile = "bubblewrap" if _profile_skip("bubblewrap") is None else "none"
    d = await broker(
        child_command=(str(GITEA_MCP),),
        child_token_via="env",  # gitea-mcp reads nothing else
        child_token_env="GITEA_TOKEN",
        child_url_env="GITEA_URL",
        child_sandbox=profile,
        child_stop_grace=2.0,
    )
    for login in ("alice", "bob"):
        tokens = await d.sign_in(login)
        client = d.mcp(tokens.access_token)
        sid = await client.initialize()
        listed = await client.request("tools/list", {}, sid)
        names = {tool["name"] for tool in listed.result["tools"]}
        assert "get_server_info" in names
        answer = await client.request(
            "tools/call", {"name": "get_server_info", "arguments": {}}, sid
        )
        result = answer.result
        assert not result.get("isError"), result
        info = result.get("structuredContent") or json.loads(
            result["content"][0]["text"]
        )
        assert info["gitea_user"] == login, info
        assert info["gitea_url"] == d.standin.base_url
        assert info["gitea_version"] == d.standin.config.version
