# -*- test-case-name: tests.web.test_account -*-
"""
The HTML of the ``/account`` page: the login view, the list of granted
clients with each grant's consent mode, a form to change it and a Revoke
form each, and its error view.

Every value from the store or the user is HTML-escaped here; names were
already stripped of control and bidirectional characters
(`fjmcp.oauth.registration.display_name`). Times are shown in UTC.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from string import Template
from typing import Any

__all__ = ["render_account"]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def _login(fields: Mapping[str, Any]) -> str:
    return (
        "<h1>Your connected applications</h1>"
        "<p>Log in with your Forgejo account at "
        f"<strong>{_e(fields.get('forgejo_host', ''))}</strong> to see the "
        "applications you allowed to use Forgejo through this broker, and to "
        "disconnect them.</p>"
        '<div class="buttons"><a class="button allow" id="login" '
        'href="/account/login">Log in with Forgejo</a></div>'
    )


#: How each consent mode is named on the page.
_MODE_NAMES = {"full": "Full access", "read-only": "Read-only"}


def _mode_form(row: Mapping[str, Any], csrf: str) -> str:
    """
    The grant's consent mode as the consent page's choice, its stored mode
    preselected, with full access disabled where the operator forbids it.
    """
    mode = str(row["mode"])
    full_allowed = bool(row["full_allowed"])

    def choice(value: str, label: str, disabled: bool) -> str:
        checked = " checked" if value == mode else ""
        off = " disabled" if disabled else ""
        return (
            f'<label><input type="radio" name="mode" value="{value}"{checked}{off}> '
            f"{label}</label> "
        )

    note = (
        ""
        if full_allowed
        else '<p class="mode-note"><small>The operator allows this application '
        "read-only access only.</small></p>"
    )
    return (
        '<form method="post" action="/account/mode" class="mode-form">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="client_id" value="{_e(row["client_id"])}">'
        "<fieldset><legend>What may it do?</legend>"
        f"{choice('read-only', 'Read-only', False)}"
        f"{choice('full', 'Full access', not full_allowed)}"
        '<button class="switch-mode" type="submit">Change access</button>'
        f"</fieldset>{note}</form>"
    )


def _row(row: Mapping[str, Any], csrf: str) -> str:
    return (
        '<div class="box connection">'
        f'<p><strong class="name">{_e(row["name"])}</strong> '
        "<small>(the name is chosen by the application itself)</small></p>"
        "<dl>"
        f"<dt>Client id</dt><dd><code>{_e(row['client_id'])}</code></dd>"
        f"<dt>Allowed</dt><dd>{_e(_when(row['granted_at']))}</dd>"
        f"<dt>Last used</dt><dd>{_e(_when(row['last_used_at']))}</dd>"
        f'<dt>Live sessions</dt><dd class="sessions">{_e(row["sessions"])}</dd>'
        f'<dt>Access</dt><dd class="mode">{_e(_MODE_NAMES[str(row["mode"])])}</dd>'
        "</dl>"
        f"{_mode_form(row, csrf)}"
        '<form method="post" action="/account/revoke">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="client_id" value="{_e(row["client_id"])}">'
        '<button class="revoke" type="submit">Revoke</button></form>'
        "</div>"
    )


def _list(fields: Mapping[str, Any]) -> str:
    csrf = str(fields["csrf"])
    rows = list(fields.get("connections", ()))
    parts = [
        "<h1>Your connected applications</h1>",
        f'<p>Logged in as <strong id="user">{_e(fields["user"])}</strong>. '
        "Revoking an application, or changing what it may do, ends its access "
        "and its sessions at once; it will have to ask you again.</p>",
    ]
    if rows:
        parts.extend(_row(row, csrf) for row in rows)
        parts.append(
            '<form method="post" action="/account/revoke-all">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            '<div class="buttons"><button class="revoke" id="revoke-all" '
            'type="submit">Revoke all</button></div></form>'
        )
    else:
        parts.append('<div class="box" id="none">No application is connected.</div>')
    parts.append(
        '<form method="post" action="/account/logout">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        '<div class="buttons"><button id="logout" type="submit">Log out'
        "</button></div></form>"
    )
    return "".join(parts)


def _error(fields: Mapping[str, Any]) -> str:
    return (
        "<h1>Your connected applications</h1>"
        f'<div class="box warn" id="error">{_e(fields.get("message", ""))}</div>'
        '<p><a href="/account">Back to your applications</a></p>'
    )


def render_account(template: Template, fields: Mapping[str, Any]) -> bytes:
    """The account page of one view (``login``, ``list`` or ``error``)."""
    view = fields.get("view")
    if view == "list":
        body = _list(fields)
    elif view == "login":
        body = _login(fields)
    else:
        body = _error(fields)
    page = template.safe_substitute(
        {"title": "Your connected applications", "body": body}
    )
    return page.encode("utf-8")
