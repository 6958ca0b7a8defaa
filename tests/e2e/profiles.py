# -*- test-case-name: tests.e2e.test_profiles -*-
"""
A scripted HTTP client for the connector profiles: plain ``urllib`` with a
cookie jar of its own (the user's browser), no redirect following (each
hop is a request the profile makes itself), and the user's sign-in at the
stand-in Forgejo. The profiles in `tests.e2e.test_profiles` replay each
client's requests with it, from discovery to ``/mcp``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from attrs import define, field, frozen

__all__ = ["Answer", "Browser", "Pkce", "form_fields", "query_of"]


@frozen
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        """The Location header."""
        return self.headers["location"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@define
class Browser:
    """One user agent: its cookies, and requests that never follow redirects."""

    jar: CookieJar = field(factory=CookieJar)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        cookies: bool = True,
    ) -> Answer:
        """One request; 3xx and 4xx answers are answers, not errors."""
        handlers: list[Any] = [_NoRedirect()]
        if cookies:
            handlers.append(urllib.request.HTTPCookieProcessor(self.jar))
        opener = urllib.request.build_opener(*handlers)
        req = urllib.request.Request(  # noqa: S310 - loopback test servers
            url, data=body, method=method, headers=headers or {}
        )
        try:
            with opener.open(req, timeout=20) as response:
                return Answer(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read(),
                )
        except urllib.error.HTTPError as e:
            return Answer(
                e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
            )

    def get(self, url: str, **kwargs: Any) -> Answer:
        """GET."""
        return self.request("GET", url, **kwargs)

    def post_form(self, url: str, form: dict[str, str], **kwargs: Any) -> Answer:
        """POST a form."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(kwargs.pop("headers", {}))
        return self.request(
            "POST", url, body=urlencode(form).encode(), headers=headers, **kwargs
        )

    def post_json(self, url: str, document: Any, **kwargs: Any) -> Answer:
        """POST JSON."""
        headers = {"Content-Type": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        return self.request(
            "POST", url, body=json.dumps(document).encode(), headers=headers, **kwargs
        )

    def sign_in(self, forgejo_login_url: str, user: str, password: str) -> str:
        """Sign in at the stand-in Forgejo; the broker callback it sends to."""
        page = self.get(forgejo_login_url)
        assert page.status == 200, page.text
        fields = form_fields(page.text)
        fields.update(user_name=user, password=password)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(forgejo_login_url))
        answer = self.post_form(origin + "/login/oauth/authorize", fields)
        assert answer.status in (302, 303), answer.text
        return answer.location


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of the first form of an HTML page."""
    out: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            out[html.unescape(name.group(1))] = html.unescape(
                value.group(1) if value else ""
            )
    return out


def query_of(url: str) -> dict[str, str]:
    """The query of a URL, one value per name."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@frozen
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        """A fresh pair."""
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())
