# -*- test-case-name: tests.integration.test_log_secrets -*-
"""
No secret reaches a log event, checked on the whole broker.

A real `BrokerService` (store, key ring, OAuth routes, ``/mcp``, real
children, refresher, admin handlers) and the stand-in Forgejo run on
loopback while a user signs in, calls a tool, has the Forgejo token
refreshed, refreshes and revokes the broker token, and a client presents a
forged token. Every log event published meanwhile is captured *before* any
redaction (the redactor in `fjmcp.logs` is a safety net, not the rule),
rendered with its fields (including the repr of ``log_source``, the object
that logged) and tracebacks, and grepped for every secret that
passed through the broker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from fjmcp.logs import format_json
from tests.integration.lifecycle import FORGEJO_SECRET, deploy

pytestmark = pytest.mark.integration


def render(event: LogEvent) -> str:
    """An event as an operator could ever see it: message, fields, traceback."""
    parts = [formatEvent(event) or "", format_json(event)]
    parts.append(repr({k: v for k, v in event.items() if k != "log_format"}))
    failure = event.get("log_failure")
    if failure is not None:
        parts.append(failure.getTraceback())
    return "\n".join(parts)


@pytest_twisted.ensureDeferred
async def test_no_secret_in_any_log_event(tmp_path: Path) -> None:
    """
    The client secret, user password, broker access and refresh tokens,
    the user's Forgejo access and refresh tokens and a forged bearer never
    appear in a log event of a broker that handled all of them.
    """
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        d = await deploy(tmp_path / "d", users=("alice",))
        try:
            secrets = await _exercise(d)
        finally:
            await d.stop()
    finally:
        globalLogPublisher.removeObserver(observer)

    text = "\n".join(render(e) for e in events)
    # The capture saw the broker at work (not an empty or foreign log).
    assert "listening on" in text
    assert "fjmcp stopped" in text
    assert len(events) > 10
    for name, secret in secrets.items():
        assert len(secret) >= 8, name
        assert secret not in text, f"{name} appears in the log"


async def _exercise(d: Any) -> dict[str, str]:
    """Drive the broker through every path that handles a secret."""
    secrets: dict[str, str] = {
        "forgejo client secret": FORGEJO_SECRET,
        "user password": "alice-password",
    }
    tokens = await d.sign_in("alice")
    secrets["access token"] = tokens.access_token
    secrets["refresh token"] = tokens.refresh_token

    client = d.mcp(tokens.access_token)
    session = await client.initialize()
    assert (await client.call(session)).ok
    first = await d.current("alice")
    secrets["forgejo access token"] = first.access_token
    assert d.service.broker is not None
    upstream = d.service.broker.upstream_tokens
    refresh, _ = await upstream.refresh_token(upstream.grant("alice"))
    assert refresh is not None
    secrets["forgejo refresh token"] = refresh

    # A Forgejo refresh (the refresher), then a call on the new token.
    await d.refresher.refresh_user("alice")
    second = await d.current("alice")
    assert second.generation > first.generation
    secrets["refreshed forgejo access token"] = second.access_token
    assert (await client.call(session)).ok

    # A forged bearer is refused, and not logged either.
    forged = "fjmcp-forged-" + "x" * 40
    secrets["forged bearer"] = forged
    bad = d.mcp(forged)
    response, _ = await bad.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, None)
    assert response.code == 401
    await bad.close()

    # Refresh at the broker, then revoke (RFC 7009).
    browser = d._browser()
    response, body = await browser.request(
        "POST",
        d.base + "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": tokens.client_id,
        },
    )
    assert response.code == 200, body
    rotated = json.loads(body)
    secrets["rotated access token"] = rotated["access_token"]
    secrets["rotated refresh token"] = rotated["refresh_token"]
    old_refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "client_id": tokens.client_id,
    }
    # A retry within the reuse grace gets the same answer (and is logged).
    response, body = await browser.request(
        "POST", d.base + "/oauth/token", data=old_refresh
    )
    assert response.code == 200 and json.loads(body) == rotated, body
    # Once the new refresh token is used, the old one is reuse: replaying it
    # revokes the family (and is logged).
    response, body = await browser.request(
        "POST",
        d.base + "/oauth/token",
        data=dict(old_refresh, refresh_token=rotated["refresh_token"]),
    )
    assert response.code == 200, body
    again = json.loads(body)
    secrets["second access token"] = again["access_token"]
    secrets["second refresh token"] = again["refresh_token"]
    response, body = await browser.request(
        "POST", d.base + "/oauth/token", data=old_refresh
    )
    assert response.code == 400, body
    # ... so the first access token is refused from now on.
    assert (await client.delete(session)) == 401
    await client.close()
    return secrets
