# -*- test-case-name: tests.bridge.test_envelope -*-
"""
The per-request envelope of the stateless MCP revision (2026-07-28): which
kind of client sent a request, and the checks every stateless request must
pass before any child sees it.

Followed: the specification at tag ``2026-07-28`` (commit
``5f5440bb26a62e2cf3440b92da5a667efa03b267``), read as the official Python
SDK ``mcp`` 2.3.0 implements it (its error codes -32020/-32021/-32022 are
the final ones; early drafts used -32001/-32003/-32004).

A stateless request names its protocol version and client capabilities in
``params._meta``; the ``MCP-Protocol-Version``, ``Mcp-Method`` and (for the
three name-bearing methods) ``Mcp-Name`` headers repeat them for
intermediaries and must match the body. Which kind of client it is is
decided from the body first (`is_modern`), before any new header is
checked: session clients never send those headers.

Everything here is pure: a parsed `Message` and a header reader in, an
`Envelope` or an `EnvelopeError` (HTTP status, JSON-RPC code, message,
data) out.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import field, frozen

from fjmcp.bridge.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Kind,
    Message,
)
from fjmcp.bridge.versions import HANDSHAKE_VERSIONS, MODERN_VERSIONS

__all__ = [
    "CLIENT_CAPABILITIES_KEY",
    "CLIENT_INFO_KEY",
    "CLIENT_METHODS",
    "HEADER_MISMATCH",
    "LOG_LEVELS",
    "LOG_LEVEL_KEY",
    "MISSING_CAPABILITY",
    "NAME_PARAMS",
    "PROTOCOL_VERSION_KEY",
    "SERVER_INFO_KEY",
    "SUBSCRIPTION_ID_KEY",
    "UNSUPPORTED_VERSION",
    "Envelope",
    "EnvelopeError",
    "HeaderReader",
    "check_notification",
    "check_param_headers",
    "check_version",
    "check_request",
    "decode_header_value",
    "header_params",
    "is_modern",
    "status_for",
]

PROTOCOL_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_KEY: Final = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY: Final = "io.modelcontextprotocol/subscriptionId"

HEADER_MISMATCH: Final = -32020
MISSING_CAPABILITY: Final = -32021
UNSUPPORTED_VERSION: Final = -32022

#: The HTTP status of a JSON-RPC error on the stateless path (the SDK's
#: table; any other code, e.g. a tool's own, is a 200).
_ERROR_STATUS: Final = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_CAPABILITY: 400,
    UNSUPPORTED_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

#: Every method a stateless client may call (``initialize``, ``ping``,
#: ``logging/setLevel`` and ``resources/(un)subscribe`` are gone).
CLIENT_METHODS: Final = frozenset(
    {
        "server/discover",
        "completion/complete",
        "prompts/get",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "subscriptions/listen",
        "tools/call",
        "tools/list",
    }
)
#: The param ``Mcp-Name`` repeats, by method.
NAME_PARAMS: Final = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}
#: Log levels, least severe first.
LOG_LEVELS: Final = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)

_BASE64_SENTINEL: Final = re.compile(rb"^=\?base64\?(?P<payload>.*)\?=$", re.DOTALL)

HeaderReader = Callable[[bytes], "list[bytes]"]
"""``name -> every raw value`` of a request header (empty when absent)."""


def status_for(code: int) -> int:
    """The HTTP status a stateless JSON-RPC error is sent with."""
    return _ERROR_STATUS.get(code, 200)


class EnvelopeError(Exception):
    """A stateless request refused before any child saw it."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        data: Any = None,
        id_json: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.id_json = id_json
        self.status = status if status is not None else status_for(code)


@frozen
class Envelope:
    """A stateless request that passed the checks, with what its ``_meta`` said."""

    message: Message
    version: str
    capabilities: Mapping[str, Any]
    log_level: str | None
    param_headers: Mapping[str, tuple[bytes, ...]] = field(factory=dict)
    """``Mcp-Param-*`` headers by their lower-case suffix (``tools/call``)."""

    @property
    def method(self) -> str:
        """The request's method."""
        return self.message.method or ""


def _meta_of(message: Message) -> Any:
    params = message.body.get("params")
    return params.get("_meta") if isinstance(params, dict) else None


def is_modern(
    message: Message | None, *, has_session: bool, version_header: bytes | None
) -> bool:
    """
    Whether a POST comes from a stateless (2026-07-28) client.

    The body decides first: ``params._meta`` naming a protocol version is
    stateless, whatever the method. Otherwise a session header or an
    ``initialize`` is a session client; a request with neither is stateless
    only if its ``MCP-Protocol-Version`` header names no session-based
    version (so a half-built stateless request gets the stateless errors).
    """
    if message is not None:
        meta = _meta_of(message)
        if isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta:
            return True
    if has_session:
        return False
    if message is not None and message.method == "initialize":
        return False
    if version_header is None:
        return False
    return version_header.strip().decode("latin-1") not in HANDSHAKE_VERSIONS


def decode_header_value(raw: bytes) -> str | None:
    """
    A routing header's value as text: the ``=?base64?...?=`` form decoded
    (canonical base64 of UTF-8 only), else the value itself, which must be
    visible ASCII. None for a malformed value (it then matches nothing).
    """
    match = _BASE64_SENTINEL.match(raw)
    if match is not None:
        payload = match.group("payload")
        try:
            decoded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
        if base64.b64encode(decoded) != payload:
            return None
        try:
            return decoded.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if any(b < 0x20 or b > 0x7E for b in raw):
        return None
    return raw.decode("ascii")


def _one_header(
    headers: HeaderReader, name: bytes, id_json: str | None
) -> bytes | None:
    values = headers(name)
    if len(values) > 1:
        raise EnvelopeError(
            HEADER_MISMATCH,
            f"the {name.decode()} header is repeated",
            id_json=id_json,
        )
    return values[0] if values else None


def _matches(raw: bytes | None, expected: Any) -> bool:
    return (
        raw is not None
        and isinstance(expected, str)
        and decode_header_value(raw) == expected
    )


def check_version(value: Any, id_json: str | None) -> str:
    """The protocol version a request names, or -32602 / -32022."""
    if not isinstance(value, str):
        raise EnvelopeError(
            INVALID_PARAMS, f"{PROTOCOL_VERSION_KEY} must be a string", id_json=id_json
        )
    if value not in MODERN_VERSIONS:
        raise EnvelopeError(
            UNSUPPORTED_VERSION,
            "Unsupported protocol version",
            data={"supported": list(MODERN_VERSIONS), "requested": value},
            id_json=id_json,
        )
    return value


def check_request(
    message: Message,
    headers: HeaderReader,
    param_headers: Mapping[str, tuple[bytes, ...]] | None = None,
) -> Envelope:
    """
    Run the checks of a stateless request in the SDK's order: repeated
    routing header (-32020), ``_meta`` and its required keys (-32602),
    headers against the body (-32020), the version (-32602, -32022), the
    log level (-32602), the method (404 with -32601).
    """
    id_json = message.id_json
    if message.kind is not Kind.REQUEST:
        raise EnvelopeError(
            INVALID_REQUEST,
            "Invalid Request: only requests and notifications may be posted",
            id_json=id_json,
        )
    version_raw = _one_header(headers, b"mcp-protocol-version", id_json)
    method_raw = _one_header(headers, b"mcp-method", id_json)
    name_raw = _one_header(headers, b"mcp-name", id_json)
    meta = _meta_of(message)
    missing = [
        key
        for key in (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY)
        if not isinstance(meta, dict) or key not in meta
    ]
    if missing:
        raise EnvelopeError(
            INVALID_PARAMS,
            "params._meta must be an object carrying the required keys; missing: "
            + ", ".join(missing),
            id_json=id_json,
        )
    if not isinstance(meta, dict):  # pragma: no cover - `missing` said so
        raise EnvelopeError(INVALID_PARAMS, "params._meta", id_json=id_json)
    version = meta[PROTOCOL_VERSION_KEY]
    if not _matches(version_raw, version):
        raise EnvelopeError(
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header does not match the request body",
            id_json=id_json,
        )
    if not _matches(method_raw, message.method):
        raise EnvelopeError(
            HEADER_MISMATCH,
            "the Mcp-Method header does not match the request body's method",
            id_json=id_json,
        )
    name_param = NAME_PARAMS.get(message.method or "")
    if name_param is not None and not _matches(
        name_raw, message.params.get(name_param)
    ):
        raise EnvelopeError(
            HEADER_MISMATCH,
            f"the Mcp-Name header does not match params.{name_param}",
            id_json=id_json,
        )
    check_version(version, id_json)
    capabilities = meta[CLIENT_CAPABILITIES_KEY]
    if not isinstance(capabilities, dict):
        raise EnvelopeError(
            INVALID_PARAMS,
            f"{CLIENT_CAPABILITIES_KEY} must be an object",
            id_json=id_json,
        )
    log_level = meta.get(LOG_LEVEL_KEY)
    if log_level is not None and log_level not in LOG_LEVELS:
        raise EnvelopeError(
            INVALID_PARAMS, f"{LOG_LEVEL_KEY} is not a log level", id_json=id_json
        )
    if message.method not in CLIENT_METHODS:
        raise EnvelopeError(
            METHOD_NOT_FOUND,
            "Method not found",
            data=(message.method or "")[:200],
            id_json=id_json,
        )
    return Envelope(
        message=message,
        version=version,
        capabilities=capabilities,
        log_level=log_level,
        param_headers=dict(param_headers or {}),
    )


def header_params(schema: Any) -> dict[str, tuple[str, str]]:
    """
    The arguments a tool's ``inputSchema`` mirrors into ``Mcp-Param-*``
    headers: ``argument -> (lower-case header suffix, JSON type)``.
    """
    properties = schema.get("properties") if isinstance(schema, dict) else None
    out: dict[str, tuple[str, str]] = {}
    if not isinstance(properties, dict):
        return out
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        suffix = prop.get("x-mcp-header")
        if isinstance(suffix, str) and suffix:
            kind = prop.get("type")
            out[name] = (suffix.lower(), kind if isinstance(kind, str) else "string")
    return out


def _param_matches(raw: bytes, value: Any, kind: str) -> bool:
    text = decode_header_value(raw)
    if text is None:
        return False
    if kind in ("integer", "number") and not isinstance(value, bool):
        if not isinstance(value, int | float):
            return False
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    if kind == "boolean" or isinstance(value, bool):
        return text == ("true" if value is True else "false" if value is False else "")
    return isinstance(value, str) and text == value


def check_param_headers(
    envelope: Envelope, params: Mapping[str, dict[str, tuple[str, str]]]
) -> None:
    """
    A ``tools/call``'s ``Mcp-Param-*`` headers against its arguments, for a
    tool whose schema is known (``params``: tool -> `header_params`): a
    header for every argument given (non-null), none for the others, equal
    after decoding (numbers numerically). Raises -32020. A tool whose
    schema is not known is not checked (as the SDK does).
    """
    message = envelope.message
    mirrored = params.get(str(message.params.get("name")))
    if not mirrored:
        return
    arguments = message.params.get("arguments")
    arguments = arguments if isinstance(arguments, dict) else {}
    for argument, (suffix, kind) in mirrored.items():
        raws = envelope.param_headers.get(suffix, ())
        value = arguments.get(argument)
        if len(raws) > 1:
            ok = False
        elif value is None:
            ok = not raws
        else:
            ok = len(raws) == 1 and _param_matches(raws[0], value, kind)
        if not ok:
            raise EnvelopeError(
                HEADER_MISMATCH,
                f"the Mcp-Param-{suffix} header does not match argument {argument!r}",
                id_json=message.id_json,
            )


def check_notification(headers: HeaderReader) -> None:
    """
    A notification posted by a stateless client: only its version header is
    checked (-32022 when it names no version served); it is then accepted
    and dropped (no client notification is defined over HTTP any more).
    """
    raw = headers(b"mcp-protocol-version")
    if raw and raw[0].strip().decode("latin-1") not in MODERN_VERSIONS:
        check_version(raw[0].strip().decode("latin-1"), None)
