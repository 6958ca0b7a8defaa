# -*- test-case-name: tests.bridge.test_jsonrpc -*-
"""
JSON-RPC 2.0 messages as the bridge sees them: parsed once, classified, and
carried on as the bytes of one line.

The bridge relays messages between an HTTP client and a stdio child without
changing them, so what it needs from a message is small: its kind (request,
notification or response), its method, its id as a *raw JSON key* (so the
request ``1`` and the request ``"1"`` are different requests, as JSON-RPC
says), a request's progress token, and a form that fits on one line of the
child's stdin. Everything here is pure: bytes in, values or `JsonRpcError`
out, so it can be tested exhaustively with Hypothesis.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from attrs import frozen

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "JsonRpcError",
    "Kind",
    "METHOD_NOT_FOUND",
    "Message",
    "PARSE_ERROR",
    "error_body",
    "id_key",
    "parse_body",
    "parse_line",
    "response_id_key",
    "with_id",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603


class Kind(enum.Enum):
    """What a JSON-RPC message is."""

    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"


class JsonRpcError(Exception):
    """A message could not be accepted; ``code`` is the JSON-RPC error code."""

    def __init__(self, code: int, message: str, *, id_json: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id_json = id_json
        """The raw JSON id of the offending request, when one could be read."""


@frozen
class Message:
    """
    One classified JSON-RPC message.

    ``line`` is the message as one line of bytes (no CR or LF), ready to be
    written to a child's stdin or put in an SSE ``data:`` field.
    """

    kind: Kind
    body: Mapping[str, Any]
    line: bytes
    id_json: str | None
    """The id as raw JSON (``1`` and ``"1"`` differ); None for notifications."""
    method: str | None

    @property
    def is_request(self) -> bool:
        """Whether this is a request (has a method and an id)."""
        return self.kind is Kind.REQUEST

    @property
    def params(self) -> Mapping[str, Any]:
        """The params object, or an empty mapping."""
        params = self.body.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def progress_token_json(self) -> str | None:
        """
        For a request: ``params._meta.progressToken`` as raw JSON; for a
        ``notifications/progress``: ``params.progressToken`` as raw JSON.
        """
        params = self.params
        if self.kind is Kind.NOTIFICATION:
            token = params.get("progressToken")
        else:
            meta = params.get("_meta")
            token = meta.get("progressToken") if isinstance(meta, dict) else None
        if isinstance(token, str) or (
            isinstance(token, int) and not isinstance(token, bool)
        ):
            return id_key(token)
        return None


def id_key(value: Any) -> str:
    """
    An id as raw JSON text: the key by which requests and responses match.

    ``id_key(1) == "1"`` and ``id_key("1") == '"1"'``: different ids stay
    different. The text is ASCII (non-ASCII characters are escaped the same
    way on both sides).
    """
    if type(value) is int:  # JSON's text of an int is its repr; not bool
        return int.__repr__(value)
    return json.dumps(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: A ``\\uD800``-``\\uDFFF`` escape: only then can decoded text hold a lone surrogate.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _has_lone_surrogate(obj: Any) -> bool:
    """
    Whether any string (key or value) in ``obj`` holds a lone surrogate:
    text no UTF-8 can carry, which a child's JSON decoder may crash on.
    Encoding the whole value once finds one (pairs were joined by the parser).
    """
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


#: One decoder for every message (``json.loads`` with options builds one per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Final = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """
    ``_DECODER.decode``: an object with nothing around it (nearly every
    message) goes straight to the decoder's own scanner; anything else, or
    anything the scanner refuses, takes the whole ``decode`` (and its error).
    """
    if text[:1] == "{" and text[-1:] == "}":
        try:
            obj, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return obj
    if text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
    return _DECODER.decode(text)


def _loads(text: bytes, *, strict_text: bool = False) -> Any:
    """
    Strict JSON: UTF-8 only, no BOM, no NaN/Infinity; with ``strict_text``
    also no lone surrogate escape (``"\\ud800"``) anywhere.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonRpcError(
            PARSE_ERROR, f"Parse error: body is not UTF-8 ({e.reason} at {e.start})"
        ) from None
    try:
        obj = _decode(decoded)
    except RecursionError:
        raise JsonRpcError(PARSE_ERROR, "Parse error: JSON nested too deeply") from None
    except ValueError as e:
        raise JsonRpcError(PARSE_ERROR, f"Parse error: {e}") from None
    if strict_text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(obj):
        raise JsonRpcError(
            PARSE_ERROR, "Parse error: a string holds a lone UTF-16 surrogate"
        )
    return obj


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _classify(obj: Any, line: bytes) -> Message:
    if not isinstance(obj, dict):
        raise JsonRpcError(
            INVALID_REQUEST,
            f"Invalid Request: a JSON-RPC message is an object, not {_json_type(obj)}",
        )
    raw_id = obj.get("id")
    id_json = id_key(raw_id) if _valid_id(raw_id) else None
    if obj.get("jsonrpc") != "2.0":
        raise JsonRpcError(
            INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', id_json=id_json
        )
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            raise JsonRpcError(
                INVALID_REQUEST,
                'Invalid Request: "method" must be a string',
                id_json=id_json,
            )
        params = obj.get("params")
        if "params" in obj and not isinstance(params, dict | list):
            raise JsonRpcError(
                INVALID_REQUEST,
                'Invalid Request: "params" must be an object',
                id_json=id_json,
            )
        if "id" not in obj:
            return Message(Kind.NOTIFICATION, obj, line, None, method)
        if id_json is None:
            raise JsonRpcError(
                INVALID_REQUEST,
                'Invalid Request: "id" must be a string or an integer',
            )
        return Message(Kind.REQUEST, obj, line, id_json, method)
    if "id" in obj and (("result" in obj) != ("error" in obj)):
        if "error" in obj:
            error = obj["error"]
            if not (
                isinstance(error, dict)
                and isinstance(error.get("code"), int)
                and not isinstance(error.get("code"), bool)
                and isinstance(error.get("message"), str)
            ):
                raise JsonRpcError(
                    INVALID_REQUEST,
                    'Invalid Request: "error" must have an integer "code" and a '
                    'string "message"',
                )
            if raw_id is None:
                return Message(Kind.RESPONSE, obj, line, "null", None)
        if id_json is None:
            raise JsonRpcError(
                INVALID_REQUEST,
                'Invalid Request: a response "id" must be a string or an integer',
            )
        return Message(Kind.RESPONSE, obj, line, id_json, None)
    raise JsonRpcError(
        INVALID_REQUEST,
        'Invalid Request: neither a request ("method") nor a response '
        '("id" with exactly one of "result" and "error")',
        id_json=id_json,
    )


def _json_type(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, list):
        return "an array"
    return "a value of another type"


#: Byte values looked for with ``in``: CPython 3.11's ``bytes.__contains__``
#: tries a one-byte *bytes* needle as an integer first and formats the
#: TypeError before searching (about 9x slower than an int needle).
_CR: Final = 0x0D
_LF: Final = 0x0A


def _one_line(text: bytes) -> bytes:
    """
    A valid JSON text on one line: CR and LF can only be whitespace between
    tokens (inside strings they must be escaped), so they become spaces.
    """
    if _LF in text or _CR in text:
        text = text.replace(b"\r", b" ").replace(b"\n", b" ")
    return text.strip(b" \t")


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def parse_body(body: bytes, *, allow_batch: bool) -> tuple[list[Message], bool]:
    """
    Parse a POSTed body: one message, or (when ``allow_batch``) a non-empty
    array of them. Returns ``(messages, is_batch)``.

    Raises `JsonRpcError` with ``-32700`` for text that is not JSON (or not
    UTF-8, or holding a lone surrogate: no child ever sees such text) and
    ``-32600`` for JSON that is not a JSON-RPC message (or a batch where
    batches are not allowed).
    """
    obj = _loads(body, strict_text=True)
    if isinstance(obj, list):
        if not allow_batch:
            raise JsonRpcError(
                INVALID_REQUEST,
                "Invalid Request: batches are only accepted for protocol version "
                "2025-03-26; send one message per request",
            )
        if not obj:
            raise JsonRpcError(INVALID_REQUEST, "Invalid Request: empty batch")
        return [_classify(item, _dump(item)) for item in obj], True
    return [_classify(obj, _one_line(body))], False


def parse_line(line: bytes) -> list[Message]:
    """
    Parse one line a child wrote: one message or a batch of them. Raises
    `JsonRpcError` when the line is not a JSON-RPC message.
    """
    obj = _loads(line)
    if isinstance(obj, list):
        if not obj:
            raise JsonRpcError(INVALID_REQUEST, "Invalid Request: empty batch")
        return [_classify(item, _dump(item)) for item in obj]
    return [_classify(obj, _one_line(line))]


def response_id_key(message: Message) -> str | None:
    """The raw JSON id a response answers (None when it is not a response)."""
    return message.id_json if message.kind is Kind.RESPONSE else None


def error_body(id_json: str | None, code: int, message: str, data: Any = None) -> bytes:
    """
    A JSON-RPC error response as one line; ``id_json`` is the raw JSON of
    the id (None: ``null``, for errors that cannot name a request).
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    payload = _dump(error)
    return b'{"jsonrpc":"2.0","id":%s,"error":%s}' % (
        (id_json or "null").encode("ascii"),
        payload,
    )


def with_id(message: Message, new_id: Any) -> bytes:
    """The message's line with its id replaced (for id namespacing)."""
    body = dict(message.body)
    body["id"] = new_id
    return _dump(body)
