# -*- test-case-name: tests.test_cli -*-
"""Tests for the ``fjmcp`` command: check-config, version, lazy commands."""

from __future__ import annotations

import io
import json
import sys
import tomllib
from pathlib import Path

import pytest

from fjmcp import cli
from fjmcp.config import SECRET_MASK, load_config
from tests.support import broker_toml


def test_check_config_prints_masked_toml(tmp_path: Path) -> None:
    """check-config prints the effective config as TOML, secrets masked, exit 0."""
    out = io.StringIO()
    status = cli.main(
        ["check-config", "--config", str(broker_toml(tmp_path)), "--max-children", "7"],
        out=out,
    )
    assert status == 0
    text = out.getvalue()
    assert "s3cret-value" not in text
    parsed = tomllib.loads(text)
    assert parsed["forgejo_client_secret"] == SECRET_MASK
    assert parsed["max_children"] == 7
    assert parsed["listen"] == "tcp:8080:interface=127.0.0.1"


def test_check_config_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 and names every problem."""
    bad = broker_toml(tmp_path, "max_children = 0\nlog_format = 'xml'")
    assert cli.main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "max_children must be positive" in err
    assert "log_format" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """version prints the package version and the build fields."""
    out = io.StringIO()
    assert cli.main(["version", "--json"], out=out) == 0
    info = json.loads(out.getvalue())
    assert set(info) == {"version", "git_revision", "build_date"}
    assert info["version"] != ""


def test_serve_help_lists_env_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """serve --help shows each option's env name and default."""
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--listen" in text and "FJMCP_LISTEN" in text
    assert "FJMCP_MAX_REQUEST_BYTES" in text and "default: 4194304" in text


def test_serve_config_error_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve with a broken config exits 2 before starting anything."""
    assert cli.main(["serve", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_lazy_command_missing_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lazily imported command whose module is absent says so and exits 3."""
    monkeypatch.setitem(
        cli.LAZY_COMMANDS, "demo", ("fjmcp.no_such_demo", "main", "demo")
    )
    assert cli.main(["demo", "--x"]) == 3
    assert "not available in this build" in capsys.readouterr().err


def test_lazy_command_runs_with_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazy command's main gets the remaining argv."""
    seen: list[list[str]] = []
    module = type(sys)("fjmcp_fake_cmd")

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fjmcp_fake_cmd", module)
    monkeypatch.setitem(cli.LAZY_COMMANDS, "demo", ("fjmcp_fake_cmd", "main", "demo"))
    assert cli.main(["demo", "--port", "1"]) == 0
    assert seen == [["--port", "1"]]


def test_init_config_writes_loadable_local_config(tmp_path: Path) -> None:
    """init-config writes a loopback config that loads; it keeps an existing one."""
    target = tmp_path / "var" / "fjmcp.toml"
    out = io.StringIO()
    assert (
        cli.main(["init-config", "--out", str(target), "--port", "18099"], out=out) == 0
    )
    config = load_config(target, environ={"PATH": "/usr/bin:/bin"})
    assert config.listen == "tcp:18099:interface=127.0.0.1"
    assert config.public_is_loopback
    assert config.state_dir == (tmp_path / "var").resolve()
    target.write_text("# mine\n")
    assert cli.main(["init-config", "--out", str(target)], out=out) == 0
    assert target.read_text() == "# mine\n"


def test_example_config_command(tmp_path: Path) -> None:
    """example-config prints the same text as the committed example."""
    out = io.StringIO()
    assert cli.main(["example-config"], out=out) == 0
    repo = Path(__file__).resolve().parent.parent
    assert out.getvalue() == (repo / "fjmcp.toml.example").read_text()


def test_admin_without_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """admin status with no daemon says it is not running and exits 1."""
    status = cli.main(["admin", "--config", str(broker_toml(tmp_path)), "status"])
    assert status == 1
    assert "not running" in capsys.readouterr().err
