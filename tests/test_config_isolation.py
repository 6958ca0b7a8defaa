# -*- test-case-name: tests.test_config_isolation -*-
"""The children's isolation settings: parsing and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.config import ChildLimits, ConfigError, load_config, render_example
from tests.test_config import _env


def _problems(tmp_path: Path, **extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(environ=_env(tmp_path, **extra))
    return caught.value.problems


def test_defaults(tmp_path: Path) -> None:
    """auto sandbox, token in the environment, limits on by default."""
    config = load_config(environ=_env(tmp_path))
    assert config.child_sandbox == "auto"
    assert config.child_token_via == "env"
    assert config.child_uid_range == ()
    assert config.child_limits.processes > 0 and config.child_limits.memory > 0
    assert config.child_runtime_path == tmp_path / "state" / "children"
    hash(config)  # still a hashable value


def test_values_from_the_environment(tmp_path: Path) -> None:
    """JSON in FJMCP_*: the range as an array, the limits as an object."""
    config = load_config(
        environ=_env(
            tmp_path,
            FJMCP_CHILD_SANDBOX="none",
            FJMCP_CHILD_UID_RANGE="[200000, 500]",
            FJMCP_CHILD_LIMITS='{"memory": 1048576, "processes": 10}',
            FJMCP_CHILD_TOKEN_VIA="fd",
            FJMCP_CHILD_SANDBOX_BINDS='["/srv/data"]',
        )
    )
    assert config.child_uid_range == (200000, 500)
    assert config.child_limits == ChildLimits(memory=1048576, processes=10)
    assert config.child_token_via == "fd"
    assert config.child_sandbox_binds == ("/srv/data",)


def test_limits_table_from_toml(tmp_path: Path) -> None:
    """child_limits is a TOML table; an unknown key names itself."""
    path = tmp_path / "c.toml"
    path.write_text("child_limits = {open_files = 64, cpu_seconds = 5}\n")
    config = load_config(path, environ=_env(tmp_path))
    assert config.child_limits == ChildLimits(open_files=64, cpu_seconds=5)
    path.write_text("child_limits = {threads = 3}\n")
    with pytest.raises(ConfigError, match="unknown limit 'threads'"):
        load_config(path, environ=_env(tmp_path))


@pytest.mark.parametrize(
    "value",
    ["[1]", "[0, 5]", "[5, 0]", "[1, 2, 3]", '["a", 1]', "[2147483000, 10000]"],
)
def test_bad_uid_ranges(tmp_path: Path, value: str) -> None:
    """[first, count] of whole numbers > 0, within the uid space."""
    (problem,) = _problems(tmp_path, FJMCP_CHILD_UID_RANGE=value)
    assert "child_uid_range" in problem


@pytest.mark.parametrize(
    "command",
    [
        'sh -c "server --token $FORGEJO_ACCESS_TOKEN"',
        '["server", "--token=${FORGEJO_ACCESS_TOKEN}"]',
    ],
)
def test_token_in_argv_is_refused(tmp_path: Path, command: str) -> None:
    """An argv that expands the token would show it in /proc/*/cmdline."""
    problems = _problems(tmp_path, FJMCP_CHILD_COMMAND=command)
    assert any("puts the token into argv" in p for p in problems), problems


def test_token_variable_name_in_the_wrapper_is_refused(tmp_path: Path) -> None:
    """The wrapper too, under the configured variable name."""
    problems = _problems(
        tmp_path,
        FJMCP_CHILD_TOKEN_ENV="GITEA_TOKEN",
        FJMCP_CHILD_WRAPPER='["env", "X=$GITEA_TOKEN"]',
    )
    assert any("child_wrapper puts the token" in p for p in problems), problems


def test_other_isolation_problems(tmp_path: Path) -> None:
    """Relative binds, bad variable names, uid range with child_user, an
    unknown profile."""
    problems = _problems(
        tmp_path,
        FJMCP_CHILD_SANDBOX_BINDS='["data"]',
        FJMCP_CHILD_TOKEN_FD_ENV="not a name",
        FJMCP_CHILD_UID_RANGE="[300000, 5]",
        FJMCP_CHILD_USER="root",
        FJMCP_CHILD_SANDBOX="docker",
    )
    text = "\n".join(problems)
    for needle in (
        "not an absolute path",
        "not a variable name",
        "set one",
        "child_sandbox",
    ):
        assert needle in text, problems


@given(st.dictionaries(st.text(max_size=12), st.integers(), max_size=4))
def test_limits_from_any_table(table: dict[str, int]) -> None:
    """Any table either parses to its values or is refused with a ValueError."""
    try:
        limits = ChildLimits.from_table(table)
    except ValueError:
        return
    assert limits.as_table() | table == limits.as_table()


def test_example_shows_the_limits_as_a_toml_table() -> None:
    """The generated example writes child_limits as an inline table."""
    assert "# child_limits = {memory = " in render_example()
