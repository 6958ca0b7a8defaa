# -*- test-case-name: tests.test_preflight -*-
"""
Tests for `fjmcp.preflight`: check-config refuses what serve would refuse,
and serve refuses before it creates a directory or a database.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from fjmcp import cli
from fjmcp.config import ConfigError, load_config
from fjmcp.preflight import preflight, preflight_problems
from tests.support import broker_toml


def test_a_ready_configuration_passes(tmp_path: Path) -> None:
    """With a private key file and a writable state directory, nothing is wrong."""
    config = load_config(broker_toml(tmp_path))
    assert preflight_problems(config) == []
    assert preflight(config) is config


def test_a_missing_key_file_is_refused_with_the_command_that_makes_it(
    tmp_path: Path,
) -> None:
    """No token key file: the problem names gen-key."""
    config = load_config(broker_toml(tmp_path))
    (tmp_path / "token-keys").unlink()
    with pytest.raises(ConfigError) as caught:
        preflight(config)
    assert "gen-key" in caught.value.render()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    """A key file with group or other bits is refused, as the daemon refuses it."""
    config = load_config(broker_toml(tmp_path))
    (tmp_path / "token-keys").chmod(0o644)
    assert preflight_problems(config)


def test_check_config_and_serve_refuse_a_missing_key_file_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 where serve would; serve creates no store or directory."""
    path = broker_toml(tmp_path)
    store = tmp_path / "new" / "fjmcp.sqlite3"
    argv = ["--config", str(path), "--store-path", str(store)]
    before = sorted(os.listdir(tmp_path))
    missing = f"{store.parent / 'token-keys'} does not exist"
    assert cli.main(["check-config", *argv], out=io.StringIO()) == 2
    assert missing in capsys.readouterr().err
    assert cli.main(["serve", *argv], out=io.StringIO()) == 2
    assert missing in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before
