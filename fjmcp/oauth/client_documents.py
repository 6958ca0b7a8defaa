# -*- test-case-name: tests.oauth.test_client_documents -*-
"""
Client ID Metadata Documents (MCP 2025-11-25, draft-ietf-oauth-client-id-
metadata-document): a ``client_id`` that is an https URL names a JSON
document, published by the client, that stands in for a registration.

Pure functions over decoded JSON, so hypothesis can throw anything at
them: the result is a clean `ClientDocument` or a `ClientDocumentError`
whose message can be shown to a person as is, never another exception.
A document must name itself (its ``client_id`` equals its URL, byte for
byte) and list its redirect URIs. It cannot use a shared secret (nobody
issued one); ``none`` makes it a public client held by PKCE, and
``private_key_jwt`` proves it with keys from its ``jwks`` or ``jwks_uri``.
Grant types the broker does not serve are dropped, not fatal: vendors'
documents list more than any one server implements.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from attrs import field, frozen

from fjmcp.oauth.registration import MAX_NAME, MAX_REDIRECT_URIS, redirect_problem

__all__ = [
    "DOCUMENT_AUTH_METHODS",
    "MAX_URL",
    "ClientDocument",
    "ClientDocumentError",
    "client_id_url_problem",
    "display_name",
    "is_document_client_id",
    "validate_client_document",
]

MAX_URL: Final = 2000
MAX_KEYS: Final = 20
#: The methods a document may declare (anything else has no secret to check).
DOCUMENT_AUTH_METHODS: Final = frozenset({"none", "private_key_jwt"})
_SERVED_GRANTS: Final = ("authorization_code", "refresh_token")
_SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})


class ClientDocumentError(Exception):
    """
    A client's metadata document cannot be used; the message says why, in
    words a person on an error page (or a client developer) can act on.
    """


@frozen
class ClientDocument:
    """A validated client metadata document (or an operator's record of one)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    auth_method: str
    grant_types: tuple[str, ...]
    client_name: str | None
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)
    jwks_uri: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict, repr=False)
    """The accepted fields, as stored with the client."""


def is_document_client_id(client_id: str) -> bool:
    """Whether ``client_id`` names a metadata document (an https URL)."""
    return client_id[:8].lower() == "https://"


def client_id_url_problem(url: str) -> str | None:
    """
    Why ``url`` cannot name a metadata document (or keys), or ``None``:
    https with a host and a path, no user information, fragment, dot
    segments, spaces or control characters.
    """
    if not url or len(url) > MAX_URL:
        return "the URL is empty or too long"
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\\" for c in url):
        return "the URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "the URL is not valid"
    if parts.scheme != "https":
        return "the URL must start with https://"
    if not parts.hostname:
        return "the URL has no host"
    if "@" in parts.netloc:
        return "the URL must not contain user information"
    if "#" in url:
        return "the URL must not contain a fragment"
    if parts.path in ("", "/"):
        return "the URL must have a path"
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        return "the URL must not contain . or .. segments"
    return None


def _is_plain_https(value: str) -> bool:
    """An https URL without odd characters (for informative fields)."""
    return (
        len(value) <= MAX_URL
        and value.startswith("https://")
        and not any(ord(c) <= 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)
    )


def display_name(value: str) -> str:
    """
    A client's name as it may be shown: control, format (bidirectional
    overrides among them) and unpaired surrogate characters removed, so a
    document cannot make its name read as another's.
    """
    kept = (c for c in value if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return " ".join("".join(kept).split())


def _strings(obj: Mapping[str, Any], name: str, limit: int) -> list[str] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > limit:
        raise ClientDocumentError(f"{name} must be a list of at most {limit} strings")
    if not all(isinstance(v, str) and len(v) <= MAX_URL for v in value):
        raise ClientDocumentError(f"{name} must hold strings")
    return list(value)


def _redirect_uris(obj: Mapping[str, Any]) -> tuple[str, ...]:
    uris = _strings(obj, "redirect_uris", MAX_REDIRECT_URIS)
    if not uris:
        raise ClientDocumentError("the document lists no redirect_uris")
    for uri in uris:
        problem = redirect_problem(uri)
        if problem is not None:
            raise ClientDocumentError(f"redirect_uris: {problem}")
    return tuple(dict.fromkeys(uris))


def _auth_method(obj: Mapping[str, Any], served: Collection[str]) -> str:
    method = obj.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise ClientDocumentError("token_endpoint_auth_method must be a string")
    if method in _SECRET_METHODS:
        raise ClientDocumentError(
            f"{method} needs a shared secret, which a metadata document cannot "
            "have: use none (with PKCE) or private_key_jwt"
        )
    if method not in DOCUMENT_AUTH_METHODS or method not in served:
        allowed = " or ".join(sorted(DOCUMENT_AUTH_METHODS & set(served)))
        raise ClientDocumentError(
            f"token_endpoint_auth_method {method[:40]!r} is not supported "
            f"(use {allowed})"
        )
    return method


def _keys(
    obj: Mapping[str, Any], method: str
) -> tuple[dict[str, Any] | None, str | None]:
    jwks, jwks_uri = obj.get("jwks"), obj.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise ClientDocumentError("a document may give jwks or jwks_uri, not both")
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
            raise ClientDocumentError(
                f"jwks must be an object with 1 to {MAX_KEYS} keys"
            )
        if not all(isinstance(k, dict) for k in keys):
            raise ClientDocumentError("jwks keys must be JSON objects")
        return {"keys": keys}, None
    if jwks_uri is not None:
        if not isinstance(jwks_uri, str):
            raise ClientDocumentError("jwks_uri must be a string")
        problem = client_id_url_problem(jwks_uri)
        if problem is not None:
            raise ClientDocumentError(f"jwks_uri: {problem}")
        return None, jwks_uri
    if method == "private_key_jwt":
        raise ClientDocumentError("private_key_jwt needs jwks or jwks_uri")
    return None, None


def validate_client_document(
    obj: Any, url: str, served_methods: Collection[str] = DOCUMENT_AUTH_METHODS
) -> ClientDocument:
    """
    Check a decoded document fetched from ``url`` (or an operator's record
    for that URL). ``served_methods``: the client authentication methods the
    broker serves. Raises `ClientDocumentError`.
    """
    if not isinstance(obj, dict):
        raise ClientDocumentError("the document is not a JSON object")
    # A field given as JSON null is absent, as in a registration.
    obj = {k: v for k, v in obj.items() if v is not None}
    if obj.get("client_id") != url:
        raise ClientDocumentError(
            "the document's client_id is not the URL it was fetched from"
        )
    redirect_uris = _redirect_uris(obj)
    method = _auth_method(obj, served_methods)
    jwks, jwks_uri = _keys(obj, method)
    grants = _strings(obj, "grant_types", 20) or ["authorization_code"]
    served = tuple(g for g in _SERVED_GRANTS if g in grants)
    if "authorization_code" not in served:
        raise ClientDocumentError("grant_types must include authorization_code")
    responses = _strings(obj, "response_types", 20)
    if responses is not None and "code" not in responses:
        raise ClientDocumentError('response_types must include "code"')
    raw_name = obj.get("client_name")
    if raw_name is not None and not isinstance(raw_name, str):
        raise ClientDocumentError("client_name must be a string")
    name = display_name(raw_name)[:MAX_NAME] if raw_name else None
    metadata: dict[str, Any] = {
        "client_id": url,
        "redirect_uris": list(redirect_uris),
        "token_endpoint_auth_method": method,
        "grant_types": list(served),
        "response_types": ["code"],
    }
    if name:
        metadata["client_name"] = name
    if jwks is not None:
        metadata["jwks"] = jwks
    if jwks_uri is not None:
        metadata["jwks_uri"] = jwks_uri
    for uri_field in ("client_uri", "logo_uri"):
        value = obj.get(uri_field)
        if isinstance(value, str) and _is_plain_https(value):
            metadata[uri_field] = value
    return ClientDocument(
        client_id=url,
        redirect_uris=redirect_uris,
        auth_method=method,
        grant_types=served,
        client_name=name or None,
        jwks=jwks,
        jwks_uri=jwks_uri,
        metadata=metadata,
    )
