# -*- test-case-name: tests.oauth.test_registration -*-
"""
Validation of dynamic client registrations (RFC 7591) and redirect URIs.

Pure functions over the decoded JSON, so hypothesis can throw anything at
them: the result is a clean `Registration` or an `InvalidRedirectUriError`
/ `InvalidClientMetadataError`, never another exception. Every field has a
size bound; a field sent as ``null`` counts as absent. Redirect URIs must
be https, http on a loopback host, or a private-use reverse-DNS scheme
(RFC 8252 §7.1), without a fragment, user info or control characters.
Unknown fields are ignored (RFC 7591 §2). Text that a page may show is
refused when it holds a lone surrogate (it cannot even be stored), a
control character or a bidirectional override (a client could otherwise
spoof its name on the consent page); `display_name` strips the same
characters from names that come from elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from attrs import frozen

from fjmcp.config import is_loopback_host
from fjmcp.oauth.errors import InvalidClientMetadataError, InvalidRedirectUriError

__all__ = [
    "REGISTRABLE_METHODS",
    "Registration",
    "display_name",
    "is_native_redirect",
    "redirect_matches",
    "redirect_problem",
    "validate_registration",
]

MAX_REDIRECT_URIS: Final = 20
MAX_URI: Final = 2000
MAX_NAME: Final = 200
MAX_TEXT: Final = 1000
MAX_CONTACTS: Final = 10
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]*")
_ALLOWED_GRANTS: Final = frozenset({"authorization_code", "refresh_token"})
#: The methods a registration may choose unless told otherwise (the
#: registry's `registrable_methods`).
REGISTRABLE_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")
_URI_FIELDS: Final = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_FIELDS: Final = ("scope", "software_id", "software_version")


#: Bidirectional embeddings, overrides, isolates and marks: invisible, and
#: able to make a name read as another one.
_BIDI: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x21 or 0x7F <= ord(c) < 0xA0 for c in text)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _unsafe_char(c: str) -> bool:
    code = ord(c)
    return (
        code < 0x20
        or 0x7F <= code < 0xA0
        or 0xD800 <= code <= 0xDFFF
        or c in _BIDI
        or c in "\u2028\u2029\ufeff"
    )


def display_name(name: str | None, limit: int = 200) -> str | None:
    """
    ``name`` as a page may show it: without control characters, lone
    surrogates or bidirectional overrides, and at most ``limit`` long;
    ``None`` when nothing printable is left.
    """
    if name is None:
        return None
    cleaned = "".join(c for c in name if not _unsafe_char(c)).strip()[:limit]
    return cleaned or None


def redirect_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI, or ``None`` if it can."""
    if not uri or len(uri) > MAX_URI:
        return "redirect URI is empty or too long"
    if _has_control(uri) or _has_surrogate(uri) or "\\" in uri:
        return "redirect URI contains spaces or control characters"
    if "#" in uri:
        return "redirect URI must not contain a fragment"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "redirect URI is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.fullmatch(scheme):
        return "redirect URI has no valid scheme"
    if scheme in ("https", "http"):
        if not host:
            return "redirect URI has no host"
        if parts.username is not None or parts.password is not None:
            return "redirect URI must not contain user information"
        if scheme == "http" and not is_loopback_host(host):
            return "http redirect URIs are allowed only on a loopback host"
        return None
    if "." not in scheme:
        return (
            f"scheme {scheme!r} is not allowed: use https, http on a loopback "
            "host, or a private-use reverse-DNS scheme such as com.example.app"
        )
    return None


def is_native_redirect(uri: str) -> bool:
    """
    Whether ``uri`` goes to an app on the user's own device (a loopback
    address or a private-use scheme), which any local program could claim.
    """
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return True
    if parts.scheme.lower() == "https":
        return False
    return parts.scheme.lower() != "http" or is_loopback_host(host)


#: Loopback hosts whose port a redirect URI may change (RFC 8252 §7.3);
#: ``localhost`` is a deliberate interop extension (MCP Inspector uses it).
_PORTLESS_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


def _without_loopback_port(uri: str) -> str | None:
    """``uri`` with its port dropped, if it is an http loopback URI."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if not uri.startswith("http://") or host not in _PORTLESS_HOSTS:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if parts.netloc.split(":")[0].strip("[]") != host and ":" not in host:
        return None  # the host was not written in lower case: match exactly
    return parts._replace(netloc=netloc).geturl()


def redirect_matches(registered: str, given: str) -> bool:
    """
    Whether ``given`` is the registered redirect URI ``registered``.

    Exact string comparison, except for http on ``127.0.0.1``, ``[::1]`` and
    ``localhost``, whose port is ignored (RFC 8252 §7.3: native apps listen
    on an ephemeral port); scheme, host, path and query still match exactly.
    """
    if given == registered:
        return True
    a = _without_loopback_port(registered)
    return a is not None and a == _without_loopback_port(given)


@frozen
class Registration:
    """A validated registration request."""

    redirect_uris: tuple[str, ...]
    auth_method: str
    grant_types: tuple[str, ...]
    client_name: str | None
    metadata: Mapping[str, Any]
    """The accepted fields, as stored and returned."""


def _string(obj: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidClientMetadataError(f"{name} must be a string of at most {limit}")
    if _has_control(value.replace(" ", "")) or _has_surrogate(value):
        raise InvalidClientMetadataError(
            f"{name} contains control characters or invalid Unicode"
        )
    return value


def _string_list(obj: Mapping[str, Any], name: str, limit: int, size: int) -> list[str]:
    value = obj.get(name)
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidClientMetadataError(f"{name} must be a list of at most {limit}")
    if not all(isinstance(v, str) and len(v) <= size for v in value):
        raise InvalidClientMetadataError(f"{name} must hold strings of at most {size}")
    if any(_has_control(v) or _has_surrogate(v) for v in value):
        raise InvalidClientMetadataError(
            f"{name} contains control characters or invalid Unicode"
        )
    return list(value)


def validate_registration(
    obj: Any, auth_methods: Collection[str] = REGISTRABLE_METHODS
) -> Registration:
    """
    Check a decoded registration request; the errors are RFC 7591's.
    ``auth_methods``: the ``token_endpoint_auth_method`` values allowed.
    """
    if not isinstance(obj, dict):
        raise InvalidClientMetadataError("the registration must be a JSON object")
    # A field sent as JSON null is absent (serializers of optional fields do
    # that), so it takes its RFC 7591 default instead of failing.
    obj = {k: v for k, v in obj.items() if v is not None}
    if "redirect_uris" not in obj:
        raise InvalidRedirectUriError("redirect_uris is required")
    uris = obj.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUriError(
            f"redirect_uris must be a list of 1 to {MAX_REDIRECT_URIS} URIs"
        )
    for uri in uris:
        if not isinstance(uri, str):
            raise InvalidRedirectUriError("redirect_uris must hold strings")
        problem = redirect_problem(uri)
        if problem is not None:
            raise InvalidRedirectUriError(problem)
    redirect_uris = tuple(dict.fromkeys(uris))

    method = obj.get("token_endpoint_auth_method", "client_secret_basic")
    if not isinstance(method, str) or method not in auth_methods:
        raise InvalidClientMetadataError(
            "token_endpoint_auth_method must be one of " + ", ".join(auth_methods)
        )
    grants = (
        _string_list(obj, "grant_types", 5, 64)
        if "grant_types" in obj
        else ["authorization_code"]
    )
    if not set(grants) <= _ALLOWED_GRANTS or "authorization_code" not in grants:
        raise InvalidClientMetadataError(
            "grant_types must include authorization_code and may add refresh_token"
        )
    if "response_types" in obj:
        responses = _string_list(obj, "response_types", 5, 64)
        if set(responses) != {"code"}:
            raise InvalidClientMetadataError('response_types must be ["code"]')
    name = _string(obj, "client_name", MAX_NAME)
    if name is not None and any(_unsafe_char(c) for c in name):
        raise InvalidClientMetadataError(
            "client_name must not contain control or bidirectional override characters"
        )
    metadata: dict[str, Any] = {
        "redirect_uris": list(redirect_uris),
        "token_endpoint_auth_method": method,
        "grant_types": list(dict.fromkeys(grants)),
        "response_types": ["code"],
    }
    if name is not None:
        metadata["client_name"] = name
    for field_name in _URI_FIELDS:
        value = _string(obj, field_name, MAX_URI)
        if value is not None:
            if urlsplit(value).scheme.lower() not in ("https", "http"):
                raise InvalidClientMetadataError(f"{field_name} must be an http(s) URL")
            metadata[field_name] = value
    for field_name in _TEXT_FIELDS:
        value = _string(obj, field_name, MAX_TEXT)
        if value is not None:
            metadata[field_name] = value
    if "contacts" in obj:
        metadata["contacts"] = _string_list(obj, "contacts", MAX_CONTACTS, 320)
    if "application_type" in obj:
        app_type = obj.get("application_type")
        if not isinstance(app_type, str) or app_type not in ("web", "native"):
            raise InvalidClientMetadataError("application_type must be web or native")
        metadata["application_type"] = app_type
    return Registration(
        redirect_uris=redirect_uris,
        auth_method=method,
        grant_types=tuple(metadata["grant_types"]),
        client_name=name,
        metadata=metadata,
    )
