# -*- test-case-name: tests.e2e.test_account_browser -*-
"""
The ``/account`` page in a real headless browser (Debian's ``chromium``
driven by ``playwright-core``, `account_flow.mjs`) against ``fjmcp demo``:
a user who connected a client logs in through Forgejo, sees it listed
with full access preselected, makes it read-only (its token is refused by
``/mcp`` at once; read-only is then preselected there and on the consent
page when the client connects again), revokes it (the new token is refused
at once), logs out, and the page refuses to be framed.
``FJMCP_E2E_SCREENSHOTS=docs`` writes the screenshot over ``docs/account.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.live import CHROMIUM, E2E, REPO, Live, run_client
from tests.e2e.test_browser import PNG_MAGIC, browser_ready

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

__all__ = ["browser_ready"]


def test_account_page_in_chromium(
    demo: Live, browser_ready: str, tmp_path: Path
) -> None:
    """
    In Chromium: login through Forgejo, the granted client listed, a
    consent mode change and Revoke each end its access at once, logout,
    and no framing.
    """
    shots = Path(os.environ.get("FJMCP_E2E_SCREENSHOTS") or tmp_path)
    if not shots.is_absolute():
        shots = REPO / shots
    result = run_client(
        [
            browser_ready,
            str(E2E / "account_flow.mjs"),
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
    assert result["mcp_before"] == 200
    assert result["login_view"] is True
    assert result["user"] == demo.user
    assert result["listed"] is True
    assert result["mode_before"] == "Full access"
    assert result["mode_before_preselected"] == "full"
    assert result["mode_after"] == "Read-only"
    assert result["mode_after_preselected"] == "read-only"
    assert result["reconnect_preselected"] == "read-only"
    assert result["mcp_after_mode"] == 401
    assert result["mcp_reconnected"] == 200
    assert result["after_revoke_listed"] is False
    assert result["mcp_after"] == 401
    assert result["logged_out"] is True
    assert result["headers"]["x_frame_options"] == "DENY"
    assert result["headers"]["frame_ancestors_none"] is True
    assert result["framed"]["frame_url"] == "chrome-error://chromewebdata/"
    assert result["framed"]["forms"] == 0
    data = (shots / "account.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
