# -*- test-case-name: tests.e2e.test_sdk_clients -*-
"""
An MCP client built only from the official Python SDK (``mcp``), run against
a live fjmcp by ``tests/e2e/test_sdk_clients.py``.

It runs in ``.venv-sdk`` (the SDK's dependency tree stays out of the main
venv) as a subprocess, since the SDK runs on asyncio and the tests on
Twisted. Nothing here knows fjmcp's internals: the SDK's own OAuth provider
discovers the authorization server from the 401, registers by DCR, sends the
user through authorization with PKCE, exchanges the code and refreshes the
token. The one piece a real app supplies, the browser, is the redirect
handler below: it follows redirects and submits the broker's consent form
and the (stand-in) Forgejo login form from the HTML as a browser would,
until the broker redirects to our loopback redirect URI.

It prints one JSON object: what the server said and every HTTP exchange the
MCP side made (method, path, status; never a token), for the test to judge.
Exit status 0 when the whole flow ran, 1 with ``{"error": ...}`` otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client

# The SDK's own default HTTP client (its timeouts), as Client(url) builds it.
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

#: The session-based protocol versions (a stateless client has no ping).
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")

#: Where the broker sends the browser back; nothing listens there, the
#: "browser" below stops at the redirect and hands its query to the SDK.
REDIRECT_URI = "http://127.0.0.1:33418/callback"
MAX_BROWSER_STEPS = 20


class MemoryStorage:
    """The SDK's ``TokenStorage``, in memory, counting what it was given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.token_history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        """The current tokens."""
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        """Keep new tokens (after the code exchange and every refresh)."""
        self.tokens = tokens
        self.token_history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """The DCR registration."""
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Keep the DCR registration."""
        self.client_info = client_info


# --- the "browser" ------------------------------------------------------------


class _Forms(HTMLParser):
    """Every form of a page with its fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").lower(),
                    "fields": [],
                    "buttons": [],
                }
            )
        elif not self.forms:
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "submit":
                self.forms[-1]["buttons"].append(
                    {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}
                )
            elif kind in ("radio", "checkbox") and "checked" not in a:
                return  # a browser sends the checked ones only
            elif a.get("name"):
                self.forms[-1]["fields"].append((kind, a["name"], a.get("value", "")))
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            self._button = {"name": a.get("name", ""), "value": a.get("value", "")}
            self._button["text"] = ""
            self.forms[-1]["buttons"].append(self._button)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data.strip()


def _choose_submission(
    html: str, user: str, password: str
) -> tuple[str, str, dict[str, str], str]:
    """
    The form a user would submit on this page and what they would send:
    the login form (with the credentials) or the consent form's Allow.
    """
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        kinds = {kind for kind, _, _ in form["fields"]}
        if "password" in kinds:
            data = {}
            for kind, name, value in form["fields"]:
                if kind == "password":
                    data[name] = password
                elif kind in ("text", "email"):
                    data[name] = user
                else:
                    data[name] = value
            return form["action"], form["method"], data, "login"
    for form in parser.forms:
        for button in form["buttons"]:
            label = f"{button['name']} {button['value']} {button['text']}".lower()
            if "allow" in label or "approve" in label:
                data = {name: value for _, name, value in form["fields"]}
                if button["name"]:
                    data[button["name"]] = button["value"]
                return form["action"], form["method"], data, "consent"
    raise RuntimeError(f"no login or consent form on the page: {html[:300]!r}")


class Browser:
    """Follows the authorization in a cookie-keeping HTTP client, like a user."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.pages: list[str] = []
        self.result: AuthorizationCodeResult | None = None

    async def authorize(self, url: str) -> None:
        """The SDK's redirect handler: walk from the authorization URL to us."""
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30.0) as http:
            method, data = "GET", None
            for _ in range(MAX_BROWSER_STEPS):
                if url.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(url).query)
                    if "error" in query:
                        raise RuntimeError(f"authorization refused: {query['error']}")
                    self.result = AuthorizationCodeResult(
                        code=query["code"][0],
                        state=query.get("state", [None])[0],
                        iss=query.get("iss", [None])[0],
                    )
                    return
                if method == "POST":
                    response = await http.post(url, data=data)
                else:
                    response = await http.get(url, params=data)
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    method, data = "GET", None
                    continue
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{method} {urlsplit(url).path} answered {response.status_code}"
                    )
                action, form_method, data, page = _choose_submission(
                    response.text, self.user, self.password
                )
                self.pages.append(f"{page}@{urlsplit(url).netloc}")
                url = urljoin(url, action or url)
                method = form_method.upper()
        raise RuntimeError("too many steps without reaching the redirect URI")

    async def callback(self) -> AuthorizationCodeResult:
        """The SDK's callback handler: what the redirect brought back."""
        if self.result is None:
            raise RuntimeError("the authorization did not come back")
        result, self.result = self.result, None
        return result


# --- the run ------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole flow; returns what the test judges."""
    exchanges: list[dict[str, Any]] = []

    async def record(response: httpx2.Response) -> None:
        request = response.request
        exchanges.append(
            {
                "method": request.method,
                "url": str(request.url.copy_with(query=None)),
                "status": response.status_code,
                "bearer": request.headers.get("authorization", "")
                .lower()
                .startswith("bearer "),
            }
        )

    storage = MemoryStorage()
    browser = Browser(args.user, args.password)
    provider = oauth_provider(
        args.mcp_url, storage, browser, "fjmcp e2e (official Python SDK)"
    )
    http = create_mcp_http_client(auth=provider)
    http.event_hooks = {"response": [record]}
    out: dict[str, Any] = {}
    async with http:
        transport = streamable_http_client(args.mcp_url, http_client=http)
        async with Client(transport, mode=args.mode) as client:
            out["protocol_version"] = client.protocol_version
            info = client.server_info
            out["server_name"] = info.name if info else None
            tools = await client.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            who = await client.call_tool("whoami", {})
            out["whoami"] = [c.text for c in who.content if c.type == "text"]
            out["whoami_is_error"] = bool(who.is_error)

            # Let the access token run out (as an hour would), so the SDK
            # refreshes it before the next call, on the same session.
            before = storage.tokens.access_token if storage.tokens else None
            provider.context.token_expiry_time = time.time() - 1
            again = await client.call_tool("whoami", {})
            after = storage.tokens.access_token if storage.tokens else None
            out["refreshed"] = (
                before is not None and after is not None and before != after
            )
            out["whoami_after_refresh"] = [
                c.text for c in again.content if c.type == "text"
            ]
            echo = await client.call_tool("echo", {"text": "över the bridge"})
            out["echo"] = [c.text for c in echo.content if c.type == "text"]
            if client.protocol_version in HANDSHAKE_VERSIONS:
                await client.send_ping()  # gone from the stateless revision
        # leaving the Client ends a session with DELETE /mcp (a stateless
        # client has no session to end)
    out["token_sets"] = len(storage.token_history)
    out["refresh_tokens_rotated"] = (
        len({t.refresh_token for t in storage.token_history if t.refresh_token}) > 1
    )
    out["client_registered"] = storage.client_info is not None and bool(
        storage.client_info.client_id
    )
    out["pages"] = browser.pages
    out["exchanges"] = exchanges
    return out


def oauth_provider(
    mcp_url: str, storage: MemoryStorage, browser: Browser, client_name: str
) -> OAuthClientProvider:
    """The SDK's OAuth provider as a public client with PKCE, signing in
    through ``browser`` and keeping its tokens in ``storage``."""
    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name=client_name,
            redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.authorize,
        callback_handler=browser.callback,
    )


def main() -> int:
    """Run the flow and print its outcome as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--mode", default="auto", help="Client(mode=...)")
    args = parser.parse_args()
    # The login comes through the environment, as a password should.
    args.user = os.environ["E2E_USER"]
    args.password = os.environ["E2E_PASSWORD"]
    try:
        out = asyncio.run(run(args))
    except BaseException as e:  # report everything the SDK raised, grouped or not
        print(
            json.dumps({"error": repr(e), "traceback": traceback.format_exc()}),
            flush=True,
        )
        return 1
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
