# -*- test-case-name: tests.test_upstream_grants_config -*-
"""
Tests of the read-only upstream grant's settings: scopes of its own need an
OAuth2 application of its own at Forgejo, and must be read-only there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fjmcp.config import ConfigError, load_config
from fjmcp.interfaces import UpstreamGrant
from fjmcp.settings import forgejo_settings, oauth_settings, upstream_grants
from tests.support import broker_toml

READ_ONLY = '["read:repository", "read:issue", "read:user", "read:organization"]'
APP = 'forgejo_ro_client_id = "ro-app"\nforgejo_ro_client_secret = "ro-secret"\n'


def _problems(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(broker_toml(tmp_path, extra))
    return e.value.render()


def test_read_only_scopes_and_application_make_a_grant_of_their_own(
    tmp_path: Path,
) -> None:
    """Both set: read-only consents use their scopes, through their application."""
    config = load_config(
        broker_toml(tmp_path, f"forgejo_scopes_read_only = {READ_ONLY}\n{APP}")
    )
    grants = upstream_grants(config)
    assert grants.separate
    assert grants.of("alice", "read-only") == UpstreamGrant(
        "alice", ("read:issue", "read:organization", "read:repository", "read:user")
    )
    assert grants.of("alice", "full") == UpstreamGrant("alice")
    forgejo = forgejo_settings(config)
    assert forgejo.read_only is not None
    assert forgejo.read_only.client_id == "ro-app"
    assert "ro-secret" not in repr(forgejo)
    assert oauth_settings(config).grants == grants


def test_without_scopes_of_their_own_read_only_shares_the_full_grant(
    tmp_path: Path,
) -> None:
    """The default: one grant at Forgejo per user; the broker alone narrows."""
    config = load_config(broker_toml(tmp_path))
    grants = upstream_grants(config)
    assert not grants.separate
    assert grants.of("alice", "read-only") == grants.of("alice", "full")
    assert forgejo_settings(config).read_only is None


def test_read_only_scopes_need_their_own_application(tmp_path: Path) -> None:
    """Through one application Forgejo would hand back the first grant's token."""
    text = _problems(tmp_path, f"forgejo_scopes_read_only = {READ_ONLY}\n")
    assert "needs forgejo_ro_client_id and forgejo_ro_client_secret" in text
    same = 'forgejo_ro_client_id = "client"\nforgejo_ro_client_secret = "s"\n'
    text = _problems(tmp_path, f"forgejo_scopes_read_only = {READ_ONLY}\n{same}")
    assert "must name another application" in text


def test_an_application_without_scopes_of_its_own_is_refused(tmp_path: Path) -> None:
    """A read-only application with nothing to ask for is a mistake, said."""
    assert "have no scopes of their own" in _problems(tmp_path, APP)


@pytest.mark.parametrize(
    ("scopes", "said"),
    [
        ('["read:repo", "read:user", "read:organization"]', "'read:repo' is not"),
        (
            '["write:repository", "read:user", "read:organization"]',
            "write:repository would let a read-only grant's token write",
        ),
        ('["all"]', "all would let"),
        ('["openid", "profile"]', "names no Forgejo token scope"),
        ('["read:repository", "read:organization"]', "lacks read:user"),
        ('["read:repository", "read:user"]', "lacks read:organization"),
    ],
)
def test_read_only_scopes_must_be_read_only_at_forgejo(
    tmp_path: Path, scopes: str, said: str
) -> None:
    """
    Forgejo ignores a name it does not know and gives a token with no token
    scope left everything: each way a read-only set could end up writing,
    or break the login, is refused by name.
    """
    text = _problems(tmp_path, f"forgejo_scopes_read_only = {scopes}\n{APP}")
    assert said in text


def test_check_config_warns_of_full_scopes_forgejo_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A narrowing forgejo_scopes without read:user or read:organization breaks
    the login at Forgejo 9.0+: a warning (older Forgejo does not narrow).
    """
    import io

    from fjmcp import cli

    path = broker_toml(tmp_path, 'forgejo_scopes = ["write:repository", "read:user"]')
    assert cli.main(["check-config", "--config", str(path)], out=io.StringIO()) == 0
    err = capsys.readouterr().err
    assert "forgejo_scopes lacks read:organization" in err
    assert "lacks read:user" not in err
