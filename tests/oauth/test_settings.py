# -*- test-case-name: tests.oauth.test_settings -*-
"""
Tests for `fjmcp.oauth.settings`: what the OAuth objects read of `Config`
(cut out of it by `fjmcp.settings.oauth_settings`).
"""

from __future__ import annotations

from attrs import fields

from fjmcp.config import Config
from fjmcp.oauth.settings import OAuthSettings
from fjmcp.settings import oauth_settings
from tests.oauth.support import make_config


def test_built_from_the_oauth_fields_of_config() -> None:
    """The settings carry the configured URLs, scopes and lifetimes."""
    config = make_config(
        forgejo_scopes=("read:user",),
        access_token_ttl=60.0,
        refresh_token_ttl=120.0,
        auth_code_ttl=30.0,
    )
    settings = oauth_settings(config)
    assert settings == OAuthSettings(
        public_url=config.public_url,
        forgejo_url="http://forgejo.test",
        forgejo_scopes=("read:user",),
        access_token_ttl=60.0,
        refresh_token_ttl=120.0,
        auth_code_ttl=30.0,
        client_names=settings.client_names,
    )
    assert "ChatGPT" in settings.client_names.names


def test_derived_names_come_from_public_url() -> None:
    """Issuer, resource and callback are built from public_url alone."""
    settings = OAuthSettings("https://mcp.example.org", "https://git.example.org/x")
    assert settings.issuer == "https://mcp.example.org"
    assert settings.resource == "https://mcp.example.org/mcp"
    assert settings.callback_url == "https://mcp.example.org/oauth/callback"
    assert settings.secure_cookies
    assert settings.forgejo_host == "git.example.org"


def test_cookies_are_not_secure_on_loopback_http() -> None:
    """An http (loopback) broker sets cookies without Secure."""
    assert not OAuthSettings("http://127.0.0.1:8080", "http://f.test").secure_cookies


def test_defaults_are_configs_defaults() -> None:
    """Settings built without the optional fields hold `Config`'s defaults."""
    defaults = fields(Config)
    settings = OAuthSettings("http://127.0.0.1:8080", "http://f.test")
    for name in (
        "forgejo_scopes",
        "access_token_ttl",
        "refresh_token_ttl",
        "auth_code_ttl",
        "display_name",
    ):
        assert getattr(settings, name) == getattr(defaults, name).default, name


def test_the_consent_page_shows_the_brokers_host_with_its_port() -> None:
    """broker_host is public_url's host and port."""
    settings = OAuthSettings("https://mcp.example.org:8443", "https://git.example.org")
    assert settings.broker_host == "mcp.example.org:8443"
