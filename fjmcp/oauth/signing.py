# -*- test-case-name: tests.oauth.test_signing -*-
"""
Small signed values: the broker's cookies and the consent form's request.

``base64url(json) "." base64url(HMAC-SHA256)`` with an expiry inside, keyed
by a key derived from the token key ring. Used where the browser carries
state for the broker (the consent page's request, the "this browser has
logged in as alice" cookie): the browser can present what it was given,
but cannot make one up or change one. Verification is constant-time and
any malformed input is simply "not valid".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Final

__all__ = ["MAX_SIGNED", "mac", "sign", "unsign"]

MAX_SIGNED: Final = 16 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac(key: bytes, *parts: str) -> str:
    """An HMAC-SHA256 over ``parts`` (length-prefixed), base64url."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return _b64(h.digest())


def sign(key: bytes, purpose: str, payload: dict[str, Any], expires_at: float) -> str:
    """A signed, expiring value carrying ``payload`` for ``purpose``."""
    body = _b64(
        json.dumps(
            {"p": purpose, "exp": expires_at, "v": payload},
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")
    )
    return body + "." + mac(key, purpose, body)


def unsign(key: bytes, purpose: str, value: str, now: float) -> dict[str, Any] | None:
    """The payload of a value `sign` made for ``purpose``, if intact and unexpired."""
    if len(value) > MAX_SIGNED or value.count(".") != 1:
        return None
    body, _, signature = value.partition(".")
    if not hmac.compare_digest(
        mac(key, purpose, body).encode("ascii"), signature.encode("utf-8", "replace")
    ):
        return None
    try:
        data = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or data.get("p") != purpose:
        return None
    exp = data.get("exp")
    payload = data.get("v")
    if not isinstance(exp, int | float) or now >= exp or not isinstance(payload, dict):
        return None
    return payload
