# -*- test-case-name: tests.test_demo_child -*-
"""
A small stdio MCP server shipped with fjmcp, the child of the demo.

Its tools prove the plumbing end to end: ``whoami`` calls the Forgejo API at
``$FORGEJO_URL/api/v1/user`` with the token the broker put into
``$FORGEJO_ACCESS_TOKEN`` and answers the login, so a client that sees its
own Forgejo user knows that OAuth, the session, the child's environment and
Forgejo all line up; ``echo`` answers its text back.

It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout (the MCP stdio
transport, protocol versions 2024-11-05 to 2025-11-25) and needs nothing but
the standard library, so ``python -m fjmcp.demo_child`` runs anywhere the
broker does. A tool call runs on a thread of its own, so a slow Forgejo never
stops ``ping`` from being answered; one lock keeps stdout lines whole.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import IO, Any, Final

__all__ = [
    "LATEST_VERSION",
    "SUPPORTED_VERSIONS",
    "DemoChild",
    "ForgejoError",
    "fetch_login",
    "main",
]

#: The MCP revisions this server speaks, oldest first.
SUPPORTED_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION: Final = SUPPORTED_VERSIONS[-1]
SERVER_INFO: Final = {"name": "fjmcp-demo-child", "version": "1.0.0"}
#: How long ``whoami`` waits for Forgejo.
FORGEJO_TIMEOUT: Final = 10.0
#: Longest ``echo`` text answered (the broker caps lines; this keeps answers small).
MAX_ECHO_CHARS: Final = 64 * 1024

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602

TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "whoami",
        "description": "Ask Forgejo (GET /api/v1/user) who the token given to "
        "this server belongs to, and answer the login.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "echo",
        "description": "Answer the given text back.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
]


class ForgejoError(Exception):
    """Forgejo could not say who the token belongs to (the message is safe to show)."""


def fetch_login(base_url: str, token: str, *, timeout: float = FORGEJO_TIMEOUT) -> str:
    """
    The login of the user ``token`` belongs to, from ``GET /api/v1/user``.

    Raises `ForgejoError` with a message that never contains the token.
    """
    if not base_url:
        raise ForgejoError("FORGEJO_URL is not set")
    if not token:
        raise ForgejoError("FORGEJO_ACCESS_TOKEN is not set")
    if not base_url.startswith(("http://", "https://")):
        raise ForgejoError("FORGEJO_URL is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        base_url.rstrip("/") + "/api/v1/user",
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(1024 * 1024)
    except urllib.error.HTTPError as e:
        raise ForgejoError(f"Forgejo answered {e.code} to /api/v1/user") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ForgejoError(f"cannot reach Forgejo: {reason}") from None
    try:
        user = json.loads(body)
    except ValueError:
        raise ForgejoError("Forgejo's /api/v1/user answer is not JSON") from None
    login = user.get("login") if isinstance(user, dict) else None
    if not isinstance(login, str) or not login:
        raise ForgejoError("Forgejo's /api/v1/user answer has no login")
    return login


def _text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


class DemoChild:
    """
    The server's state: where it writes, its environment, and whether
    ``initialize`` has happened. ``handle_line`` is the whole protocol.

    :param login_fetcher: ``(base_url, token) -> login``; tests pass a fake.
    :param spawn: runs a tool call (default: on a new daemon thread).
    """

    def __init__(
        self,
        out: IO[str],
        env: Mapping[str, str],
        *,
        login_fetcher: Callable[[str, str], str] = fetch_login,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._out = out
        self._env = env
        self._fetch_login = login_fetcher
        self._spawn = spawn or self._spawn_thread
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.initialized = False
        self.protocol_version: str | None = None

    # --- output ---------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one JSON-RPC message as one line, whole, and flush it."""
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def _result(self, request_id: Any, result: Mapping[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _error(self, request_id: Any, code: int, message: str) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": code, "message": message},
            }
        )

    # --- input ------------------------------------------------------------------

    def handle_line(self, line: str) -> None:
        """Handle one line of stdin: a request, a notification or a response."""
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            self._error(None, PARSE_ERROR, "Parse error")
            return
        if isinstance(message, list):
            # Batches existed only in 2025-03-26; answer each element.
            if not message:
                self._error(None, INVALID_REQUEST, "Invalid Request: empty batch")
            for item in message:
                self._handle_message(item)
            return
        self._handle_message(message)

    def _handle_message(self, message: Any) -> None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self._error(_id_of(message), INVALID_REQUEST, "Invalid Request")
            return
        method = message.get("method")
        if method is None:
            return  # a response to a request of ours: we send none
        if not isinstance(method, str):
            self._error(_id_of(message), INVALID_REQUEST, "Invalid Request")
            return
        if "id" not in message:
            return  # notifications (initialized, cancelled, ...) need no answer
        request_id = message["id"]
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            self._error(None, INVALID_REQUEST, "Invalid Request: bad id")
            return
        params = message.get("params", {})
        if not isinstance(params, dict):
            self._error(request_id, INVALID_PARAMS, "params must be an object")
            return
        self._dispatch(request_id, method, params)

    def _dispatch(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        if method == "initialize":
            self._initialize(request_id, params)
        elif method == "ping":
            self._result(request_id, {})
        elif method == "tools/list":
            self._result(request_id, {"tools": TOOLS})
        elif method == "tools/call":
            self._call_tool(request_id, params)
        else:
            self._error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize(self, request_id: Any, params: dict[str, Any]) -> None:
        asked = params.get("protocolVersion")
        version = asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION
        self.initialized = True
        self.protocol_version = version
        self._result(
            request_id,
            {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": SERVER_INFO,
                "instructions": "fjmcp demo: call whoami to see your Forgejo login.",
            },
        )

    def _call_tool(self, request_id: Any, params: dict[str, Any]) -> None:
        name = params.get("name")
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            self._error(request_id, INVALID_PARAMS, "arguments must be an object")
            return
        if name == "echo":
            text = arguments.get("text")
            if not isinstance(text, str):
                self._error(request_id, INVALID_PARAMS, "echo needs a string 'text'")
                return
            if len(text) > MAX_ECHO_CHARS:
                self._error(request_id, INVALID_PARAMS, "text is too long")
                return
            self._result(request_id, _text_result(text))
        elif name == "whoami":
            self._spawn(lambda: self._whoami(request_id))
        else:
            self._error(request_id, INVALID_PARAMS, f"Unknown tool: {name}")

    def _whoami(self, request_id: Any) -> None:
        base_url = self._env.get("FORGEJO_URL", "")
        token = self._env.get("FORGEJO_ACCESS_TOKEN", "")
        try:
            login = self._fetch_login(base_url, token)
        except ForgejoError as e:
            self._result(request_id, _text_result(str(e), is_error=True))
        except Exception as e:  # a tool failure must not kill the server
            self._result(
                request_id,
                _text_result(f"whoami failed: {type(e).__name__}", is_error=True),
            )
        else:
            self._result(request_id, _text_result(login))

    def _spawn_thread(self, work: Callable[[], None]) -> None:
        thread = threading.Thread(target=work, name="fjmcp-demo-tool", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def serve(self, lines: IO[str]) -> None:
        """
        Handle stdin until it closes (the broker ends the session), then let
        the tool calls still running write their answers (bounded wait).
        """
        for line in lines:
            self.handle_line(line)
        for thread in self._threads:
            thread.join(FORGEJO_TIMEOUT + 1.0)


def _id_of(message: Any) -> Any:
    if isinstance(message, dict):
        request_id = message.get("id")
        if isinstance(request_id, str | int) and not isinstance(request_id, bool):
            return request_id
    return None


def token_from(env: Mapping[str, str]) -> str:
    """
    The token, however the broker passed it (``child_token_via``): read
    once from the descriptor in ``FORGEJO_TOKEN_FD``, from the file in
    ``FORGEJO_TOKEN_FILE``, or ``FORGEJO_ACCESS_TOKEN``.
    """
    fd = env.get("FORGEJO_TOKEN_FD", "")
    if fd.isdigit():
        with open(int(fd), encoding="utf-8", closefd=True) as pipe:
            return pipe.read().strip()
    path = env.get("FORGEJO_TOKEN_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return env.get("FORGEJO_ACCESS_TOKEN", "")


def main() -> int:
    """Serve MCP on stdin/stdout until stdin closes; the exit status."""
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    stdout = open(
        sys.stdout.fileno(), "w", encoding="utf-8", closefd=False, newline="\n"
    )
    # the token lives in this process's memory, not in its /proc environ
    child = DemoChild(
        stdout, {**os.environ, "FORGEJO_ACCESS_TOKEN": token_from(os.environ)}
    )
    try:
        child.serve(stdin)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
