# -*- test-case-name: tests.test_tap -*-
"""Tests for `fjmcp.tap`: twistd options to Config, exit 2 on config errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import IService
from twisted.scripts._twistd_unix import ServerOptions

from fjmcp.config import config_fields, env_name
from fjmcp.tap import TWISTD_LOGGER, Options, makeService
from tests.support import broker_toml


def test_options_build_config(tmp_path: Path) -> None:
    """--config plus a flag gives the effective Config (flag wins)."""
    options: Any = Options()
    options.parseOptions(
        ["--config", str(broker_toml(tmp_path)), "--max-children", "9"]
    )
    assert options.config.max_children == 9
    assert options.config.forgejo_client_id == "client"


def test_config_error_exits_2_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad config prints one message with all problems and exits with 2."""
    monkeypatch.delenv("FJMCP_CONFIG", raising=False)
    options: Any = Options()
    with pytest.raises(SystemExit) as caught:
        options.parseOptions(["--config", str(tmp_path / "missing.toml")])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "missing required setting public_url" in err
    assert "Traceback" not in err


def test_help_lists_every_setting_with_env_and_default() -> None:
    """--help names every setting's flag, env variable and default."""
    text = str(Options())
    flat = " ".join(text.split())
    for f in config_fields():
        assert "--" + f.name.replace("_", "-") in flat
        assert env_name(f.name) in flat
    assert "default: 256" in flat


def test_twistd_logger_is_ours_unless_given(tmp_path: Path) -> None:
    """Under twistd, our observer becomes --logger unless one was named."""
    config = broker_toml(tmp_path)
    server = ServerOptions()
    server.parseOptions(["-n", "--pidfile=", "fjmcp", "--config", str(config)])
    from fjmcp.logs import twistd_observer

    assert server["logger"] is twistd_observer
    assert TWISTD_LOGGER == "fjmcp.logs.twistd_observer"
    custom = ServerOptions()
    custom.parseOptions(
        [
            "-n",
            "--logger",
            "twisted.logger.textFileLogObserver",
            "fjmcp",
            "--config",
            str(config),
        ]
    )
    assert custom["logger"] is not twistd_observer


def test_make_service_builds_tree(tmp_path: Path) -> None:
    """makeService returns the broker service without opening anything."""
    options: Any = Options()
    options.parseOptions(["--config", str(broker_toml(tmp_path))])
    service = makeService(options)
    assert IService.providedBy(service)
    assert not (tmp_path / "fjmcp.sqlite3").exists()
    assert sorted(os.listdir(tmp_path)) == ["fjmcp.toml", "token-keys"]
