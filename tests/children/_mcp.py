# -*- test-case-name: tests.integration.test_supervisor_real -*-
"""
The tiny stdio MCP server loop the test children share (stdlib only).

Newline-delimited JSON-RPC 2.0 on stdin/stdout, one message per line, flushed
after every line. A tool handler may call `Server.ask_client` to send a
server->client request (sampling, elicitation) and wait for its response;
whatever else the client sends meanwhile is handled as usual.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = "2025-11-25"

Json = dict[str, Any]
Handler = Callable[[Any, Json], Any]
"""(request id, params) -> result; raise `RpcError` for an error response."""


class RpcError(Exception):
    """Answer the request with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Answered(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The handler already sent its response (to send something after it)."""


class Server:
    """One stdio MCP server: methods, tools, and the read loop."""

    def __init__(self, name: str, capabilities: Json | None = None) -> None:
        self.name = name
        self.capabilities: Json = capabilities or {"tools": {"listChanged": False}}
        self.methods: dict[str, Handler] = {
            "initialize": self._initialize,
            "ping": lambda _id, _p: {},
            "tools/list": lambda _id, _p: {
                "tools": [t[0] for t in self.tools.values()]
            },
            "tools/call": self._call_tool,
        }
        self.notifications: dict[str, Callable[[Json], None]] = {}
        self.tools: dict[str, tuple[Json, Handler]] = {}
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer
        self._next_id = 0
        self._responses: dict[str, Json] = {}
        self.on_eof: Callable[[], None] = lambda: None

    # -- output ---------------------------------------------------------------

    def send(self, msg: Json | list[Json]) -> None:
        """Write one message as one line and flush."""
        self._stdout.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        self._stdout.flush()

    def notify(self, method: str, params: Json) -> None:
        """Send a notification to the client."""
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def ask_client(self, method: str, params: Json) -> Json:
        """Send a request to the client and serve the client until it answers."""
        self._next_id += 1
        rid = f"{self.name}-{self._next_id}"
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while rid not in self._responses:
            if not self._serve_one():
                raise SystemExit(0)
        return self._responses.pop(rid)

    # -- input ----------------------------------------------------------------

    def run(self) -> None:
        """Serve until stdin closes, then call ``on_eof``."""
        try:
            while self._serve_one():
                pass
            self.on_eof()
        except (BrokenPipeError, KeyboardInterrupt):
            pass

    def _serve_one(self) -> bool:
        line = self._stdin.readline()
        if not line:
            return False
        line = line.strip()
        if not line:
            return True
        try:
            msg = json.loads(line)
        except ValueError:
            self.send(_error(None, -32700, "Parse error"))
            return True
        if isinstance(msg, list):
            replies = [r for r in (self._handle(m) for m in msg) if r is not None]
            if replies:
                self.send(replies)
        else:
            reply = self._handle(msg)
            if reply is not None:
                self.send(reply)
        return True

    def _handle(self, msg: Any) -> Json | None:
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            return _error(None, -32600, "Invalid Request")
        method = msg.get("method")
        if method is None:  # a response to one of our requests
            if "id" in msg:
                self._responses[str(msg["id"])] = msg
            return None
        params = msg.get("params") or {}
        if "id" not in msg:
            handler = self.notifications.get(method)
            if handler is not None:
                handler(params)
            return None
        rid = msg["id"]
        fn = self.methods.get(method)
        if fn is None:
            return _error(rid, -32601, f"Method not found: {method}")
        try:
            return {"jsonrpc": "2.0", "id": rid, "result": fn(rid, params)}
        except RpcError as e:
            return _error(rid, e.code, e.message)
        except Answered:
            return None

    def _initialize(self, _rid: Any, params: Json) -> Json:
        requested = params.get("protocolVersion")
        version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
        return {
            "protocolVersion": version,
            "capabilities": self.capabilities,
            "serverInfo": {"name": self.name, "version": "1.0.0"},
        }

    def tool(
        self, name: str, description: str, properties: Json | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a tool handler (decorator)."""

        def register(fn: Handler) -> Handler:
            schema = {"type": "object", "properties": properties or {}}
            meta = {"name": name, "description": description, "inputSchema": schema}
            self.tools[name] = (meta, fn)
            return fn

        return register

    def _call_tool(self, rid: Any, params: Json) -> Any:
        name = params.get("name")
        entry = self.tools.get(name) if isinstance(name, str) else None
        if entry is None:
            raise RpcError(-32602, f"Unknown tool: {name!r}")
        return entry[1](rid, params)


def text_result(text: str, **structured: Any) -> Json:
    """A tools/call result with one text block (and structured content if given)."""
    result: Json = {"content": [{"type": "text", "text": text}]}
    if structured:
        result["structuredContent"] = structured
    return result


def _error(rid: Any, code: int, message: str) -> Json:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
