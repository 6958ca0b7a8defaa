# -*- test-case-name: tests.test_settings -*-
"""
Tests for `fjmcp.settings`: each component's settings carry the values of
the configuration keys they come from, and no secret shows in their repr.
"""

from __future__ import annotations

from pathlib import Path

from fjmcp.settings import broker_settings
from tests.support import broker_config


def test_each_component_gets_its_keys(tmp_path: Path) -> None:
    """Every field of every component's settings holds the value of its key."""
    config = broker_config(
        tmp_path,
        FJMCP_CHILD_WRAPPER='["/usr/bin/env"]',
        FJMCP_CHILD_ENV_PASSTHROUGH='["HTTPS_PROXY"]',
        FJMCP_CHILD_TOKEN_ENV="GITEA_TOKEN",
        FJMCP_CHILD_URL_ENV="GITEA_HOST",
        FJMCP_MAX_LINE_BYTES="4096",
        FJMCP_CHILD_STOP_GRACE="2",
        FJMCP_FORGEJO_TIMEOUT="4",
        FJMCP_REAPER_INTERVAL="5",
        FJMCP_SESSION_IDLE_TIMEOUT="50",
        FJMCP_REFRESH_INTERVAL="6",
        FJMCP_REFRESH_MARGIN="60",
        FJMCP_USER_CHECK_INTERVAL="600",
        FJMCP_MAX_REQUEST_BYTES="1000",
        FJMCP_REQUEST_TIMEOUT="8",
        FJMCP_ACCESS_TOKEN_TTL="900",
        FJMCP_ADMIN_SOCKET=str(tmp_path / "a.sock"),
    )
    settings = broker_settings(config)

    child = settings.child
    assert child.argv == ("/usr/bin/env", *config.child_command)
    assert child.forgejo_url == "https://forgejo.example.org"
    assert child.env_passthrough == ("HTTPS_PROXY",)
    assert (child.token_env, child.url_env) == ("GITEA_TOKEN", "GITEA_HOST")
    assert (child.user, child.group) == (None, None)
    assert (child.max_line_bytes, child.stop_grace) == (4096, 2.0)

    forgejo = settings.forgejo
    assert forgejo.base_url == "https://forgejo.example.org"
    assert (forgejo.client_id, forgejo.client_secret) == ("client", "s3cret-value")
    assert forgejo.timeout == 4.0

    timers = settings.maintenance
    assert (timers.reaper_interval, timers.idle_timeout) == (5.0, 50.0)
    assert (timers.refresh_interval, timers.refresh_margin) == (6.0, 60.0)
    assert timers.user_check_interval == 600.0

    assert (settings.site.max_request_bytes, settings.site.request_timeout) == (
        1000,
        8.0,
    )

    admin = settings.admin
    assert admin.socket_path == tmp_path / "a.sock"
    assert admin.token_audience == "http://127.0.0.1:8080/mcp"
    assert admin.token_ttl == 900.0


def test_no_secret_in_the_settings_repr(tmp_path: Path) -> None:
    """The Forgejo client secret never shows when settings are printed or
    logged."""
    settings = broker_settings(broker_config(tmp_path))
    assert "s3cret-value" not in repr(settings)
