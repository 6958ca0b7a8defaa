# -*- test-case-name: tests.test_init_config -*-
"""
Tests for ``fjmcp init-config`` in production mode (`fjmcp.init_config`):
a commented configuration that loads, a private state directory and key
file, and the next steps with the redirect URI to register at Forgejo.
"""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

from fjmcp import cli
from fjmcp.config import config_fields, load_config
from fjmcp.oauth.keys import load_keyring


def _init(tmp_path: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.main(
        [
            "init-config",
            "--public-url",
            "https://mcp.example.org",
            "--forgejo-url",
            "https://git.example.org/",
            "--forgejo-client-id",
            "abc-123",
            "--out",
            str(tmp_path / "etc" / "fjmcp.toml"),
            "--state-dir",
            str(tmp_path / "state"),
            "--child-command",
            f"{sys.executable} -m fjmcp.demo_child",
            *extra,
        ],
        out=out,
    )
    return status, out.getvalue()


def test_production_mode_writes_a_config_that_loads_and_private_state(
    tmp_path: Path,
) -> None:
    """The config loads once the secret is in place; state 0700, key file 0600."""
    status, printed = _init(tmp_path)
    assert status == 0, printed
    target = tmp_path / "etc" / "fjmcp.toml"
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "token-keys").stat().st_mode) == 0o600
    load_keyring(state / "token-keys")
    text = target.read_text()
    assert "forgejo_client_secret =" not in text.replace("# forgejo_client_secret", "")
    # Every setting is there, set or commented with its default.
    for f in config_fields():
        assert f.name in text, f.name
    (tmp_path / "etc" / "forgejo-client-secret").write_text("s3cret-from-forgejo\n")
    config = load_config(target, environ={"PATH": "/usr/bin:/bin"})
    assert config.public_url == "https://mcp.example.org"
    assert config.forgejo_url == "https://git.example.org"
    assert config.forgejo_client_id == "abc-123"
    assert config.forgejo_client_secret == "s3cret-from-forgejo"
    assert config.store_path == str(state / "fjmcp.sqlite3")
    assert config.listen == "tcp:8080:interface=127.0.0.1"


def test_production_mode_prints_the_redirect_uri_and_next_steps(
    tmp_path: Path,
) -> None:
    """The output says what to register at Forgejo and how to start."""
    _, printed = _init(tmp_path)
    assert "https://mcp.example.org/oauth/callback" in printed
    assert "fjmcp check-config --config" in printed
    assert "twistd -n --pidfile= fjmcp" in printed
    assert "s3cret" not in printed


def test_production_mode_keeps_existing_files_and_needs_forgejo(
    tmp_path: Path,
) -> None:
    """An existing config and key file are kept; a missing --forgejo-url is refused."""
    _init(tmp_path)
    keys = (tmp_path / "state" / "token-keys").read_text()
    status, printed = _init(tmp_path)
    assert status == 0 and "exists; keeping it" in printed
    status, _ = _init(tmp_path, "--force")
    assert status == 0
    assert (tmp_path / "state" / "token-keys").read_text() == keys
    assert (
        cli.main(
            ["init-config", "--public-url", "https://a.example", "--out", "x"],
            out=io.StringIO(),
        )
        == 2
    )
