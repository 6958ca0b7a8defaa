#!/usr/bin/env python3
# -*- test-case-name: tests.integration.test_lifecycle_real -*-
"""
A stdio MCP server that proves which Forgejo token it holds, without ever
showing it.

Tool ``whoami`` asks Forgejo (``$FORGEJO_URL/api/v1/user``) who its token
(from the descriptor, file or variable the broker used) belongs to, and
answers the login together with a digest of the token (the first 16 hex
digits of its SHA-256), the pid, and ``process`` (the pid and a random tag:
inside a PID namespace every child is pid 2).
A token Forgejo no longer accepts makes the answer an error result (still
with the digest), so a test knows both that the child holds the *current*
token (digest) and that Forgejo accepts it (login). Tool ``digest`` answers
the digest alone, without asking Forgejo. Tool ``echo`` answers its
``text``; tool ``confirm`` asks the client (``elicitation/create``) and
answers what it said, both with ``process``. Exits 0 when stdin closes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import urllib.error
import urllib.request
from typing import Any

from _mcp import Json, Server, text_result

server = Server("fjmcp-test-token")
#: This process, distinct from every other child even across PID namespaces.
PROCESS = f"{os.getpid()}-{secrets.token_hex(4)}"


def token_digest(token: str) -> str:
    """The first 16 hex digits of the token's SHA-256 (not enough to use it)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def _read_token() -> str:
    """The token, read once, however the broker passed it (descriptor, file
    or variable: ``child_token_via``)."""
    fd = os.environ.get("FORGEJO_TOKEN_FD", "")
    if fd.isdigit():
        with open(int(fd), encoding="utf-8") as pipe:
            return pipe.read().strip()
    path = os.environ.get("FORGEJO_TOKEN_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get("FORGEJO_ACCESS_TOKEN", "")


TOKEN = _read_token()


def _token() -> str:
    return TOKEN


@server.tool("digest", "The digest of the Forgejo token this server holds")
def digest(_rid: Any, _params: Json) -> Json:
    """Answer the token's digest and the pid."""
    held = token_digest(_token())
    return text_result(held, digest=held, pid=os.getpid(), process=PROCESS)


@server.tool("whoami", "Ask Forgejo who the token belongs to")
def whoami(_rid: Any, _params: Json) -> Json:
    """Ask Forgejo /api/v1/user with the token; answer login, digest and pid."""
    token = _token()
    held = token_digest(token)
    base = os.environ.get("FORGEJO_URL", "").rstrip("/")
    request = urllib.request.Request(  # noqa: S310 - a loopback test server
        base + "/api/v1/user",
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            login = json.loads(response.read()).get("login")
    except urllib.error.HTTPError as e:
        result = text_result(f"Forgejo answered {e.code}", digest=held, status=e.code)
        result["isError"] = True
        return result
    except (urllib.error.URLError, OSError, ValueError) as e:
        result = text_result(f"cannot ask Forgejo: {type(e).__name__}", digest=held)
        result["isError"] = True
        return result
    return text_result(
        str(login), login=login, digest=held, pid=os.getpid(), process=PROCESS
    )


@server.tool("echo", "Answer the given text back", {"text": {"type": "string"}})
def echo(_rid: Any, params: Json) -> Json:
    """Answer ``text`` (also as ``echoed``) and which process answered."""
    text = str((params.get("arguments") or {}).get("text", ""))
    return text_result(text, echoed=text, process=PROCESS)


@server.tool(
    "confirm",
    "Ask the client to confirm (elicitation/create), answer what it said",
    {"question": {"type": "string"}},
)
def confirm(_rid: Any, params: Json) -> Json:
    """Ask the client mid-call; answer its action and content."""
    question = str((params.get("arguments") or {}).get("question", "Go on?"))
    reply = server.ask_client(
        "elicitation/create",
        {
            "message": question,
            "requestedSchema": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            },
        },
    )
    said = reply.get("result") or {}
    return text_result(
        f"{said.get('action')}: {said.get('content')!r}",
        action=said.get("action"),
        content=said.get("content"),
        process=PROCESS,
    )


if __name__ == "__main__":
    server.run()
