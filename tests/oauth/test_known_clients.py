# -*- test-case-name: tests.oauth.test_known_clients -*-
"""Tests for `fjmcp.oauth.known_clients`: shipped records and operator changes."""

from __future__ import annotations

import json

import pytest

from fjmcp.config import ConfigError, load_config
from fjmcp.oauth.known_clients import KnownClients, shipped_records
from fjmcp.settings import client_document_settings

CLAUDE = "https://claude.ai/oauth/mcp-oauth-client-metadata"
CLAUDE_CODE = "https://claude.ai/oauth/claude-code-client-metadata"
CHATGPT = "https://chatgpt.com/oauth/client.json"


def test_the_shipped_records_are_valid_documents() -> None:
    """Claude.ai, Claude Code and ChatGPT ship, each with name and redirects."""
    known = KnownClients.build()
    assert set(known.documents) == {CLAUDE, CLAUDE_CODE, CHATGPT}
    claude = known.get(CLAUDE)
    assert claude is not None and claude.client_name == "Claude"
    assert "https://claude.ai/api/mcp/auth_callback" in claude.redirect_uris
    assert "https://claude.com/api/mcp/auth_callback" in claude.redirect_uris
    assert claude.auth_method == "none" and "refresh_token" in claude.grant_types
    chatgpt = known.get(CHATGPT)
    assert chatgpt is not None and chatgpt.auth_method == "private_key_jwt"
    assert chatgpt.jwks_uri == "https://chatgpt.com/oauth/jwks.json"
    assert set(shipped_records()) == set(known.documents)


def test_operators_override_extend_and_disable() -> None:
    """A table overrides fields, a new URL adds a record, enabled=false drops one."""
    extra = "https://agent.example/oauth/client.json"
    known = KnownClients.build(
        {
            CLAUDE: {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]},
            CHATGPT: {"enabled": False},
            extra: {
                "client_name": "Agent",
                "redirect_uris": ["https://agent.example/cb"],
            },
        }
    )
    claude = known.get(CLAUDE)
    assert claude is not None and claude.client_name == "Claude"
    assert claude.redirect_uris == ("https://claude.ai/api/mcp/auth_callback",)
    assert known.get(CHATGPT) is None
    agent = known.get(extra)
    assert agent is not None and agent.auth_method == "none"


def test_a_pinned_jwks_replaces_the_uri() -> None:
    """An operator may pin a vendor's keys instead of fetching them."""
    keys = {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}
    known = KnownClients.build({CHATGPT: {"jwks": keys}})
    chatgpt = known.get(CHATGPT)
    assert chatgpt is not None and chatgpt.jwks == keys and chatgpt.jwks_uri is None


@pytest.mark.parametrize(
    "overrides",
    [
        {CLAUDE: {"redirect_uris": []}},
        {CLAUDE: {"enabled": "no"}},
        {"http://plain.example/c": {"redirect_uris": ["https://a.example/cb"]}},
        {CLAUDE: {"token_endpoint_auth_method": "client_secret_post"}},
    ],
)
def test_bad_records_are_refused(overrides: dict[str, dict[str, object]]) -> None:
    """A record that would not be a valid document is named."""
    with pytest.raises(ValueError, match="known_clients"):
        KnownClients.build(overrides)


ENV = {
    "FJMCP_PUBLIC_URL": "http://127.0.0.1:8080",
    "FJMCP_FORGEJO_URL": "http://forgejo.test",
    "FJMCP_FORGEJO_CLIENT_ID": "x",
    "FJMCP_FORGEJO_CLIENT_SECRET": "y",
    "FJMCP_CHILD_COMMAND": "true",
}


@pytest.mark.parametrize(
    "value",
    [
        {"http://plain.example/c": {}},
        {CLAUDE: "off"},
        {CLAUDE: {"enabled": "no"}},
        [CLAUDE],
    ],
)
def test_config_refuses_known_clients_of_the_wrong_shape(value: object) -> None:
    """load_config reports a known_clients that is not a table of records."""
    with pytest.raises(ConfigError, match="(?i)known_clients"):
        load_config(
            environ={**ENV, "FJMCP_KNOWN_CLIENTS": json.dumps(value)},
            check_paths=False,
        )


def test_invalid_records_are_configuration_errors() -> None:
    """A record that is no valid document fails when the settings are built."""
    config = load_config(
        environ={
            **ENV,
            "FJMCP_KNOWN_CLIENTS": json.dumps({CLAUDE: {"redirect_uris": []}}),
        },
        check_paths=False,
    )
    with pytest.raises(ConfigError, match="no redirect_uris"):
        client_document_settings(config)


def test_config_reads_known_clients_from_the_environment() -> None:
    """known_clients is a JSON object in the environment."""
    config = load_config(
        environ={
            **ENV,
            "FJMCP_KNOWN_CLIENTS": json.dumps({CHATGPT: {"enabled": False}}),
        },
        check_paths=False,
    )
    assert config.known_clients == {CHATGPT: {"enabled": False}}
    hash(config)  # the configuration stays a hashable value
    assert client_document_settings(config).known_clients.get(CHATGPT) is None


def test_check_config_prints_known_clients_as_toml() -> None:
    """The effective configuration shows known_clients as a TOML inline table."""
    import tomllib

    from fjmcp.cli import render_config

    records = {CHATGPT: {"enabled": False}, CLAUDE: {"redirect_uris": ["https://a/b"]}}
    config = load_config(
        environ={**ENV, "FJMCP_KNOWN_CLIENTS": json.dumps(records)},
        check_paths=False,
    )
    line = next(
        x for x in render_config(config).splitlines() if x.startswith("known_clients")
    )
    assert tomllib.loads(line)["known_clients"] == records


def test_preflight_names_an_invalid_record() -> None:
    """serve and check-config refuse a known_clients record that is no document."""
    from fjmcp.preflight import preflight_problems

    config = load_config(
        environ={
            **ENV,
            "FJMCP_KNOWN_CLIENTS": json.dumps({CLAUDE: {"redirect_uris": []}}),
        },
        check_paths=False,
    )
    assert any("no redirect_uris" in p for p in preflight_problems(config))
