# -*- test-case-name: tests.policy.test_commands -*-
"""Tests of the policy's operator surface: the config table, check-config, explain."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pytest

from fjmcp import cli
from fjmcp.admin import commands as admin
from fjmcp.config import ConfigError, load_config
from fjmcp.policy.rules import Mode
from tests.support import broker_toml

POLICY = """
[policy]
default_mode = "read-only"
full_access_forbidden = ["metadata-document"]

[[policy.rules]]
name = "no-repo-deletion"
effect = "deny"
tools = ["delete_repo"]

[[policy.rules]]
name = "ops-only"
effect = "allow"
orgs = ["ops"]
users = ["root"]
tools = ["delete_repo"]
"""


def test_policy_table_is_read_from_toml(tmp_path: Path) -> None:
    """The ``[policy]`` table becomes the config's parsed policy."""
    config = load_config(broker_toml(tmp_path, POLICY))
    assert config.policy.default_mode is Mode.READ_ONLY
    assert [r.name for r in config.policy.rules] == ["no-repo-deletion", "ops-only"]


def test_policy_problems_are_config_problems(tmp_path: Path) -> None:
    """Unknown keys in ``[policy]`` fail the configuration, named."""
    with pytest.raises(ConfigError) as e:
        load_config(broker_toml(tmp_path, "[policy]\ncolor = 1\n"))
    assert "policy: unknown key 'color'" in e.value.render()


def test_policy_from_the_environment(tmp_path: Path) -> None:
    """FJMCP_POLICY takes the table as a JSON object."""
    config = load_config(
        broker_toml(tmp_path),
        environ={"FJMCP_POLICY": json.dumps({"default_mode": "read-only"})},
    )
    assert config.policy.default_mode is Mode.READ_ONLY


def test_check_config_prints_the_table_and_warns_of_dead_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed config is TOML with the table; a shadowed rule is a warning."""
    out = io.StringIO()
    assert (
        cli.main(
            ["check-config", "--config", str(broker_toml(tmp_path, POLICY))], out=out
        )
        == 0
    )
    parsed = tomllib.loads(out.getvalue())
    assert parsed["policy"]["rules"][0]["name"] == "no-repo-deletion"
    assert "'ops-only' can never match" in capsys.readouterr().err


def test_admin_policy_explain(tmp_path: Path) -> None:
    """explain prints each mode's effective tool set and judges given tools."""
    out = io.StringIO()
    status = admin.main(
        [
            "--json",
            "policy",
            "explain",
            "--config",
            str(broker_toml(tmp_path, POLICY)),
            "--user",
            "alice",
            "--client",
            "https://app.example/client.json",
            "--tool",
            "get_file:ro",
            "--tool",
            "create_issue",
        ],
        out=out,
    )
    assert status == 0
    result = json.loads(out.getvalue())
    assert list(result["modes"]) == ["read-only"]
    assert "forbidden" in result["full_access"]
    tools = result["modes"]["read-only"]["tools"]
    assert tools["get_file:ro"] == "allowed"
    assert tools["create_issue"].startswith("refused: the grant is read-only")


def test_check_config_warns_of_clients_no_rule_can_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Known-client names are the records' own, exactly: a near miss is said."""
    table = """
[[policy.rules]]
name = "gpt-ro"
effect = "allow"
clients = ["chatgpt"]
tools = ["read-only"]
"""
    out = io.StringIO()
    path = broker_toml(tmp_path, table)
    assert cli.main(["check-config", "--config", str(path)], out=out) == 0
    err = capsys.readouterr().err
    assert "rule 'gpt-ro' can never match" in err
    assert "did you mean 'ChatGPT'?" in err


def test_admin_policy_explain_names_the_known_client(tmp_path: Path) -> None:
    """A known client's rules apply by its record's name, found by its id."""
    table = """
[[policy.rules]]
name = "gpt-ro"
effect = "allow"
clients = ["ChatGPT"]
tools = ["read-only"]
"""
    out = io.StringIO()
    args = ["--json", "policy", "explain", "--config"]
    args += [str(broker_toml(tmp_path, table)), "--user", "alice", "--client"]
    assert admin.main([*args, "https://chatgpt.com/oauth/client.json"], out=out) == 0
    result = json.loads(out.getvalue())
    assert result["known_client"] == "ChatGPT"
    assert result["modes"]["full"]["allowed_tools"] == {"read-only": "gpt-ro"}
    out = io.StringIO()
    assert admin.main([*args, "fjc_someone"], out=out) == 0
    assert json.loads(out.getvalue())["modes"]["full"]["allowed_tools"] is None
