# -*- test-case-name: tests.e2e.test_browser -*-
"""
The consent page and the stand-in Forgejo's login page in a real headless
browser: Debian's ``chromium`` driven by ``playwright-core``
(`browser_flow.mjs`), against ``fjmcp demo``, the way a new user meets them.

The flow completes by clicking (Allow, then the stand-in's sign-in), Deny
sends ``access_denied`` back to the client, and neither page renders inside
a frame of another origin. Screenshots of both pages are taken on every run;
``FJMCP_E2E_SCREENSHOTS=docs`` writes them over ``docs/consent.png`` and
``docs/standin-login.png``.

It skips, saying so, only where Chromium is not installed (``make test``
installs it with apt when it runs as root) or the npm packages are missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fjmcp.demo import DEMO_READ_ONLY_CLIENT_ID
from tests.e2e.live import CHROMIUM, E2E, NODE_MODULES, REPO, Live, node, run_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser_ready() -> str:
    """node, playwright-core and Debian's chromium, or a skip naming what is missing."""
    executable = node()
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (make test installs it as root: "
            "apt-get install -y chromium)"
        )
    if executable is None or not (NODE_MODULES / "playwright-core").exists():
        pytest.skip("node or playwright-core is missing: run `make e2e-deps`")
    return executable


def test_consent_and_login_pages_in_chromium(
    demo: Live, browser_ready: str, tmp_path: Path
) -> None:
    """
    In Chromium: Allow then sign-in reaches the client with a code that
    redeems for a token /mcp accepts; Deny reaches it with access_denied;
    Read-only chosen by a click is carried by the token and enforced on /mcp;
    both pages send anti-framing headers and are not rendered in a frame.
    """
    shots = Path(os.environ.get("FJMCP_E2E_SCREENSHOTS") or tmp_path)
    if not shots.is_absolute():
        shots = REPO / shots
    result = run_client(
        [
            browser_ready,
            str(E2E / "browser_flow.mjs"),
            "--public-url",
            demo.public_url,
            "--forgejo-url",
            demo.forgejo_url,
            "--screenshots",
            str(shots),
            "--chromium",
            str(CHROMIUM),
        ],
        demo,
        timeout=180,
    )
    # The consent page names the client and the host it returns to.
    assert result["consent_status"] == 200
    assert "Browser E2E Client" in result["consent_text"]
    assert "127.0.0.1" in result["consent_text"]
    # Allow, then the stand-in's sign-in, back at the client with a code.
    assert "Stand-in Forgejo" in result["login_title"]
    assert result["allow_code"] is True
    assert result["allow_state_ok"] is True
    assert result["allow_iss"] == demo.public_url
    assert result["token_status"] == 200
    assert result["token_type"].lower() == "bearer"
    assert result["refresh_token_issued"] is True
    assert result["initialize_status"] == 200
    assert result["initialize_body_has_result"] is True
    assert result["delete_status"] in (200, 204)
    # Deny.
    assert result["deny_error"] == "access_denied"
    assert result["deny_state_ok"] is True
    assert result["deny_iss"] == demo.public_url
    assert result["deny_code"] is False
    # Read-only chosen by a click on the consent page: carried by the token,
    # enforced on /mcp (the demo child marks only whoami readOnlyHint).
    # A new consent preselects the operator's default (the demo's: full);
    # asking again preselects what the user chose before.
    assert result["new_preselected"] == "full"
    assert result["ro_before_preselected"] == "full"
    assert result["ro_again_preselected"] == "read-only"
    assert result["ro_checked"] is True
    assert result["ro_scope"].split() == ["mcp", "mcp:read-only"]
    # ...and made its own grant at Forgejo, through the read-only application
    # with the read-only scopes (the demo's forgejo_scopes_read_only).
    assert result["ro_forgejo_client"] == DEMO_READ_ONLY_CLIENT_ID
    assert set(result["ro_forgejo_scope"].split()) == {
        "read:issue",
        "read:organization",
        "read:repository",
        "read:user",
    }
    assert result["ro_tools"] == ["whoami"]
    assert "'echo' is not allowed: the grant is read-only" in result["ro_echo_error"]
    assert result["ro_whoami_ok"] is True
    # Framing: headers, and what the browser actually did with them.
    for page in ("consent", "login"):
        headers = result[f"{page}_headers"]
        assert headers["x_frame_options"].upper() == "DENY", page
        assert headers["frame_ancestors_none"] is True, page
        framed = result[f"{page}_framed"]
        assert framed["frame_url"] == "chrome-error://chromewebdata/", (page, framed)
        assert framed["forms"] == 0, (page, framed)
    # Screenshots of both pages.
    for name in ("consent.png", "standin-login.png"):
        data = (shots / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5000, name
