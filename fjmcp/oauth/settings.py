# -*- test-case-name: tests.oauth.test_settings -*-
"""
The settings the OAuth objects read, and nothing else of `Config`.

Each OAuth object takes this frozen value (built from the configuration by
`fjmcp.settings.oauth_settings`) instead of the whole configuration, so what
it depends on is visible in one place and a test builds one without a
Forgejo client secret or a child command.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import frozen

from fjmcp.interfaces import UpstreamGrants
from fjmcp.oauth.metadata import endpoint, resource_url
from fjmcp.policy.rules import ClientNames, PolicyConfig

__all__ = ["OAuthSettings"]


@frozen
class OAuthSettings:
    """What the authorization server needs to know of the configuration."""

    public_url: str
    """The issuer, and the base of every endpoint and of the resource."""
    forgejo_url: str
    forgejo_scopes: tuple[str, ...] = ()
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float = 30 * 24 * 3600.0
    auth_code_ttl: float = 600.0
    display_name: str = "fjmcp"
    """The broker's name on the consent page."""
    revocation_propagation: float = 30.0
    """Longest a cached bearer token is trusted without reading the store."""
    refresh_reuse_grace: float = 30.0
    """How long a spent refresh token still gets its answer again (0: never)."""
    forgejo_scopes_read_only: tuple[str, ...] = ()
    """Scopes of the read-only consents' own upstream grant (empty: they share
    the full-access grant); set only with an application of their own."""
    policy: PolicyConfig = PolicyConfig()
    """The consent page's default mode and the clients denied full access."""
    client_names: ClientNames = ClientNames()
    """The known-client names ``full_access_forbidden`` may name clients by."""

    def full_access_allowed(self, client_id: str) -> bool:
        """Whether the operator lets ``client_id`` have full access."""
        return self.policy.full_access_allowed(
            client_id, self.client_names.name_of(client_id)
        )

    @property
    def grants(self) -> UpstreamGrants:
        """The upstream grants the broker keeps per user."""
        return UpstreamGrants(
            self.forgejo_scopes, self.forgejo_scopes_read_only or None
        )

    @property
    def issuer(self) -> str:
        """The issuer: exactly ``public_url``."""
        return self.public_url

    @property
    def resource(self) -> str:
        """The one protected resource and token audience."""
        return resource_url(self.public_url)

    @property
    def callback_url(self) -> str:
        """Where Forgejo sends the browser back."""
        return endpoint(self.public_url, "/oauth/callback")

    @property
    def secure_cookies(self) -> bool:
        """``Secure`` and ``__Host-`` cookies only when the broker is https."""
        return self.public_url.startswith("https://")

    @property
    def broker_host(self) -> str:
        """The broker's host and port, shown on the consent page."""
        return urlsplit(self.public_url).netloc

    @property
    def forgejo_host(self) -> str:
        """Forgejo's host name, shown on the consent page."""
        return urlsplit(self.forgejo_url).hostname or ""
