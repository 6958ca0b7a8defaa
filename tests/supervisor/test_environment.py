# -*- test-case-name: tests.supervisor.test_environment -*-
"""
What a child is started with: exactly the allowed environment, the wrapper
before the command, the configured ids, and its token as the secret to redact.
"""

from __future__ import annotations

import grp
import os
import pwd
from typing import Any

import attrs
import pytest

from fjmcp.config import Config
from fjmcp.interfaces import UpstreamToken
from fjmcp.settings import child_settings
from fjmcp.supervisor.environment import (
    ChildSettings,
    ChildSpecError,
    child_spec,
    resolve_ids,
)

TOKEN = UpstreamToken(
    user="alice", access_token="gto_abc123", expires_at=0.0, generation=1
)

BROKER_ENV = {
    "PATH": "/opt/broker/bin:/usr/bin",
    "LANG": "de_DE.UTF-8",
    "HOME": "/var/lib/fjmcp",
    "FJMCP_FORGEJO_CLIENT_SECRET": "broker-secret",
    "HTTPS_PROXY": "http://proxy:3128",
    "FORGEJO_ACCESS_TOKEN": "someone-elses-token",
}


def make_settings(**overrides: Any) -> ChildSettings:
    """The child settings of a valid configuration with the given keys changed."""
    values: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8080",
        "forgejo_url": "https://forgejo.example.org",
        "forgejo_client_id": "cid",
        "forgejo_client_secret": "broker-secret",
        "child_command": ("/usr/bin/forgejo-mcp", "--stdio"),
    }
    values.update(overrides)
    return child_settings(Config(**values))


def test_env_holds_only_the_allowed_names() -> None:
    """Without passthrough: PATH, LANG, the token and the URL, nothing of the broker."""
    spec = child_spec(make_settings(), token=TOKEN, label="s", environ=BROKER_ENV)
    assert dict(spec.env) == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "FORGEJO_ACCESS_TOKEN": "gto_abc123",
        "FORGEJO_URL": "https://forgejo.example.org",
    }
    assert "broker-secret" not in repr(spec)
    assert "gto_abc123" not in repr(spec)


def test_passthrough_overrides_defaults_and_adds_names() -> None:
    """Passed-through names replace defaults or add to them; unset ones are skipped."""
    settings = make_settings(child_env_passthrough=("PATH", "HTTPS_PROXY", "NOT_SET"))
    spec = child_spec(settings, token=TOKEN, label="s", environ=BROKER_ENV)
    assert spec.env["PATH"] == "/opt/broker/bin:/usr/bin"
    assert spec.env["HTTPS_PROXY"] == "http://proxy:3128"
    assert spec.env["LANG"] == "C.UTF-8"
    assert "NOT_SET" not in spec.env
    assert set(spec.env) == {
        "PATH",
        "LANG",
        "HTTPS_PROXY",
        "FORGEJO_ACCESS_TOKEN",
        "FORGEJO_URL",
    }


def test_token_and_url_win_over_passthrough() -> None:
    """A passed-through variable of the token's name cannot replace the user's token."""
    settings = make_settings(child_env_passthrough=("FORGEJO_ACCESS_TOKEN",))
    spec = child_spec(settings, token=TOKEN, label="s", environ=BROKER_ENV)
    assert spec.env["FORGEJO_ACCESS_TOKEN"] == "gto_abc123"


def test_custom_variable_names() -> None:
    """child_token_env and child_url_env name the variables."""
    settings = make_settings(child_token_env="GITEA_TOKEN", child_url_env="GITEA_HOST")
    spec = child_spec(settings, token=TOKEN, label="s", environ={})
    assert spec.env["GITEA_TOKEN"] == "gto_abc123"
    assert spec.env["GITEA_HOST"] == "https://forgejo.example.org"
    assert "FORGEJO_ACCESS_TOKEN" not in spec.env


def test_wrapper_prefix_and_spec_fields() -> None:
    """argv is wrapper + command; secrets, label, limits and grace come through."""
    settings = make_settings(
        child_wrapper=("/usr/bin/nice", "-n", "5"),
        max_line_bytes=1024,
        child_stop_grace=7.5,
    )
    spec = child_spec(settings, token=TOKEN, label="session=ab user=alice", environ={})
    assert spec.argv == ("/usr/bin/nice", "-n", "5", "/usr/bin/forgejo-mcp", "--stdio")
    assert spec.secrets == ("gto_abc123",)
    assert spec.label == "session=ab user=alice"
    assert (spec.max_line_bytes, spec.stop_grace) == (1024, 7.5)
    assert (spec.uid, spec.gid) == (None, None)


def test_default_environ_is_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without environ, the broker's os.environ is the source of passthrough."""
    monkeypatch.setenv("FJMCP_TEST_PASSED", "yes")
    monkeypatch.setenv("FJMCP_TEST_HIDDEN", "no")
    settings = make_settings(child_env_passthrough=("FJMCP_TEST_PASSED",))
    spec = child_spec(settings, token=TOKEN, label="s")
    assert spec.env["FJMCP_TEST_PASSED"] == "yes"
    assert "FJMCP_TEST_HIDDEN" not in spec.env


def test_uid_gid_from_names() -> None:
    """child_user gives its uid and primary gid; child_group overrides the gid."""
    me = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(os.getgid())
    assert resolve_ids(me.pw_name, None) == (me.pw_uid, me.pw_gid)
    assert resolve_ids(None, group.gr_name) == (None, group.gr_gid)
    assert resolve_ids(me.pw_name, group.gr_name) == (me.pw_uid, group.gr_gid)
    assert resolve_ids(str(me.pw_uid), str(group.gr_gid)) == (me.pw_uid, group.gr_gid)
    spec = child_spec(
        make_settings(child_user=me.pw_name), token=TOKEN, label="s", environ={}
    )
    assert (spec.uid, spec.gid) == (me.pw_uid, me.pw_gid)


def test_unknown_user_or_group_is_a_clear_error() -> None:
    """An unknown child_user or child_group names the setting and the value."""
    with pytest.raises(
        ChildSpecError, match="child_user 'no-such-user-x9' is not a user"
    ):
        resolve_ids("no-such-user-x9", None)
    with pytest.raises(
        ChildSpecError, match="child_group 'no-such-group-x9' is not a group"
    ):
        child_spec(
            make_settings(child_group="no-such-group-x9"),
            token=TOKEN,
            label="s",
            environ={},
        )


def test_empty_token_is_not_a_secret() -> None:
    """An empty token is never registered for redaction (it would match everywhere)."""
    empty = attrs.evolve(TOKEN, access_token="")
    assert child_spec(make_settings(), token=empty, label="s", environ={}).secrets == ()
