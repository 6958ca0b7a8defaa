# -*- test-case-name: tests.test_config -*-
"""Tests for `fjmcp.config`: layering, validation, help text, example file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjmcp.config as config_module
from fjmcp.config import (
    AF_UNIX_PATH_MAX,
    SECRET_MASK,
    ConfigError,
    config_fields,
    env_name,
    load_config,
    option_help,
    render_example,
)

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "FJMCP_PUBLIC_URL": "https://mcp.example.org",
        "FJMCP_FORGEJO_URL": "https://forgejo.example.org/",
        "FJMCP_FORGEJO_CLIENT_ID": "client",
        "FJMCP_FORGEJO_CLIENT_SECRET": "s3cret-value",
        "FJMCP_CHILD_COMMAND": "python3 -m server",
        "FJMCP_STORE_PATH": str(tmp_path / "state" / "fjmcp.sqlite3"),
    }
    env.update(extra)
    return env


def _problems(**kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(**kw)
    return caught.value.problems


def test_happy_path_from_environment(tmp_path: Path) -> None:
    """A complete environment yields a Config with defaults filled in."""
    config = load_config(environ=_env(tmp_path))
    assert config.public_url == "https://mcp.example.org"
    assert config.mcp_url == "https://mcp.example.org/mcp"
    assert config.forgejo_url == "https://forgejo.example.org"
    assert config.listen == "tcp:8080:interface=127.0.0.1"
    assert config.child_command[0] == os.path.abspath(config.child_command[0])
    assert config.child_command[1:] == ("-m", "server")
    assert config.max_children == 256
    assert config.shutdown_timeout == 10.0
    assert config.admin_socket_path == tmp_path / "state" / "admin.sock"
    assert config.token_keys_path == tmp_path / "state" / "token-keys"


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    """TOML is overridden by the environment, which is overridden by flags."""
    toml = tmp_path / "fjmcp.toml"
    toml.write_text(
        "max_children = 10\nmax_children_per_user = 3\nlog_level = 'warn'\n"
    )
    env = _env(tmp_path, FJMCP_MAX_CHILDREN="20", FJMCP_LOG_LEVEL="error")
    config = load_config(toml, environ=env, flags={"max-children": "30"})
    assert config.max_children == 30
    assert config.log_level == "error"
    assert config.max_children_per_user == 3


def test_toml_arrays_and_env_json_lists(tmp_path: Path) -> None:
    """Lists are arrays in TOML and JSON arrays in the environment and flags."""
    toml = tmp_path / "fjmcp.toml"
    toml.write_text(
        'forgejo_scopes = ["read:user"]\nchild_env_passthrough = ["HOME"]\n'
    )
    env = _env(tmp_path, FJMCP_ALLOWED_ORIGINS='["https://A.example/"]')
    config = load_config(toml, environ=env, flags={"child-wrapper": '["env"]'})
    assert config.forgejo_scopes == ("read:user",)
    assert config.child_env_passthrough == ("HOME",)
    assert config.allowed_origins == ("https://a.example",)
    assert config.child_wrapper[0].endswith("/env")


def test_all_missing_fields_named_at_once() -> None:
    """With nothing given, every required setting is named with its env name."""
    problems = _problems(environ={"PATH": "/usr/bin"}, check_paths=False)
    required = [f.name for f in config_fields() if f.default is attrs.NOTHING]
    assert len(required) >= 5
    for name in required:
        assert any(name in p and env_name(name) in p for p in problems), name


def test_message_lists_every_problem() -> None:
    """The rendered error counts the problems and shows one per line."""
    error = ConfigError(["a", "b"])
    assert error.render().splitlines() == [
        "fjmcp: invalid configuration (2 problem(s)):",
        "  - a",
        "  - b",
    ]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"FJMCP_PUBLIC_URL": "ftp://x.example"}, "is not an http(s) URL"),
        ({"FJMCP_PUBLIC_URL": "http://mcp.example.org"}, "must be https"),
        ({"FJMCP_PUBLIC_URL": "https://mcp.example.org/base"}, "origin with no path"),
        ({"FJMCP_FORGEJO_URL": "forgejo"}, "forgejo_url 'forgejo' is not"),
        ({"FJMCP_MAX_CHILDREN": "0"}, "max_children must be positive"),
        ({"FJMCP_SHUTDOWN_TIMEOUT": "-1"}, "shutdown_timeout must be positive"),
        ({"FJMCP_MAX_CHILDREN": "many"}, "FJMCP_MAX_CHILDREN"),
        ({"FJMCP_LOG_FORMAT": "xml"}, "must be one of text, json"),
        ({"FJMCP_FORGEJO_SCOPES": "read"}, "JSON array of strings"),
        ({"FJMCP_CHILD_COMMAND": "no-such-binary-fjmcp"}, "not found on PATH"),
        ({"FJMCP_CHILD_COMMAND": "[]"}, "child_command is empty"),
        ({"FJMCP_CHILD_TOKEN_ENV": "NOT-A-NAME"}, "is not a variable name"),
    ],
)
def test_validation_branches(
    tmp_path: Path, extra: dict[str, str], needle: str
) -> None:
    """Each validation rule reports its problem by setting name."""
    problems = _problems(environ=_env(tmp_path, **extra))
    assert any(needle in p for p in problems), problems


def test_http_allowed_on_loopback(tmp_path: Path) -> None:
    """http is accepted for a loopback public_url (v4, v6 and localhost)."""
    for url in ("http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost"):
        config = load_config(environ=_env(tmp_path, FJMCP_PUBLIC_URL=url))
        assert config.public_is_loopback


def test_toml_file_problems(tmp_path: Path) -> None:
    """Missing, invalid and unknown-key TOML files are reported clearly."""
    missing = _problems(path=tmp_path / "nope.toml", environ=_env(tmp_path))
    assert any("does not exist" in p for p in missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    assert any(
        "not valid TOML" in p for p in _problems(path=bad, environ=_env(tmp_path))
    )
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("max_childs = 3\n")
    assert any(
        "unknown key 'max_childs'" in p
        for p in _problems(path=unknown, environ=_env(tmp_path))
    )


def test_toml_wrong_types(tmp_path: Path) -> None:
    """A TOML value of the wrong type names the setting."""
    toml = tmp_path / "fjmcp.toml"
    toml.write_text('max_children = "ten"\nrequest_timeout = true\n')
    problems = _problems(path=toml, environ=_env(tmp_path))
    assert any(p.startswith("max_children: must be a whole number") for p in problems)
    assert any(p.startswith("request_timeout: must be a number") for p in problems)


def test_unwritable_store_path(tmp_path: Path) -> None:
    """A store in a directory the broker cannot write to is reported."""
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    problems = _problems(
        environ=_env(tmp_path, FJMCP_STORE_PATH=str(locked / "db" / "s.sqlite3"))
    )
    assert any("is not writable" in p for p in problems)


def test_unwritable_store_path_via_file(tmp_path: Path) -> None:
    """A store path under a regular file (not a directory) cannot be created."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    blocker.chmod(0o400)
    problems = _problems(
        environ=_env(tmp_path, FJMCP_STORE_PATH=str(blocker / "s.sqlite3"))
    )
    assert any("store_path" in p for p in problems)


def test_admin_socket_too_long_reported_with_others(tmp_path: Path) -> None:
    """An over-long admin socket is one problem among all the others."""
    long_dir = tmp_path / ("d" * (AF_UNIX_PATH_MAX + 10))
    problems = _problems(
        environ=_env(
            tmp_path,
            FJMCP_ADMIN_SOCKET=str(long_dir / "admin.sock"),
            FJMCP_MAX_CHILDREN="0",
        )
    )
    assert any("admin_socket" in p and "at most 107" in p for p in problems)
    assert any("max_children must be positive" in p for p in problems)


def test_default_admin_socket_length_checked(tmp_path: Path) -> None:
    """The default socket beside a deeply nested store is checked too."""
    deep = tmp_path / ("s" * 120) / "fjmcp.sqlite3"
    problems = _problems(environ=_env(tmp_path, FJMCP_STORE_PATH=str(deep)))
    assert any("admin_socket" in p for p in problems)


def test_secret_from_file(tmp_path: Path) -> None:
    """forgejo_client_secret_file reads the secret from disk, stripped."""
    secret = tmp_path / "secret"
    secret.write_text("from-file-secret\n")
    env = _env(tmp_path, FJMCP_FORGEJO_CLIENT_SECRET_FILE=str(secret))
    del env["FJMCP_FORGEJO_CLIENT_SECRET"]
    assert load_config(environ=env).forgejo_client_secret == "from-file-secret"
    env["FJMCP_FORGEJO_CLIENT_SECRET_FILE"] = str(tmp_path / "missing")
    assert any("cannot read" in p for p in _problems(environ=env))


def test_secret_file_follows_layer_precedence(tmp_path: Path) -> None:
    """A secret's file counts in its own layer: file < env < flags, either form."""
    secret = tmp_path / "secret"
    secret.write_text("from-file-secret\n")
    toml = tmp_path / "fjmcp.toml"
    toml.write_text('forgejo_client_secret = "from-toml"\n')
    env = _env(tmp_path, FJMCP_FORGEJO_CLIENT_SECRET_FILE=str(secret))
    del env["FJMCP_FORGEJO_CLIENT_SECRET"]
    # An env file beats a TOML value.
    assert load_config(toml, environ=env).forgejo_client_secret == "from-file-secret"
    # A flag file beats an env value.
    env = _env(tmp_path)
    flags = {"forgejo_client_secret_file": str(secret)}
    config = load_config(toml, environ=env, flags=flags)
    assert config.forgejo_client_secret == "from-file-secret"
    # A flag value beats an env file.
    env = _env(tmp_path, FJMCP_FORGEJO_CLIENT_SECRET_FILE=str(secret))
    del env["FJMCP_FORGEJO_CLIENT_SECRET"]
    flags = {"forgejo_client_secret": "from-flag"}
    assert load_config(environ=env, flags=flags).forgejo_client_secret == "from-flag"


def test_secret_and_its_file_in_one_layer_is_a_problem(tmp_path: Path) -> None:
    """Setting a secret and its file in the same layer is ambiguous: reported."""
    secret = tmp_path / "secret"
    secret.write_text("x")
    env = _env(tmp_path, FJMCP_FORGEJO_CLIENT_SECRET_FILE=str(secret))
    problems = _problems(environ=env)
    assert any("are both set" in p for p in problems)


def test_store_path_under_a_file_is_not_a_directory(tmp_path: Path) -> None:
    """A store path below an executable regular file is reported, even as root."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    blocker.chmod(0o700)
    problems = _problems(
        environ=_env(tmp_path, FJMCP_STORE_PATH=str(blocker / "db" / "s.sqlite3"))
    )
    assert any(p.endswith(f"{blocker} is not a directory") for p in problems)


def test_default_store_path_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With store_path unset, its default is validated like an explicit one."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    blocker.chmod(0o700)
    default = str(blocker / "fjmcp.sqlite3")
    real_default = config_module._default
    monkeypatch.setattr(
        config_module,
        "_default",
        lambda name: default if name == "store_path" else real_default(name),
    )
    env = _env(tmp_path)
    del env["FJMCP_STORE_PATH"]
    problems = _problems(environ=env)
    assert any(p.startswith(f"store_path {default}:") for p in problems)


def test_stop_grace_must_leave_time_for_the_drain(tmp_path: Path) -> None:
    """child_stop_grace at or over shutdown_timeout is a problem."""
    problems = _problems(
        environ=_env(tmp_path, FJMCP_CHILD_STOP_GRACE="10", FJMCP_SHUTDOWN_TIMEOUT="10")
    )
    assert any("must be less than shutdown_timeout" in p for p in problems)
    config = load_config(
        environ=_env(tmp_path, FJMCP_CHILD_STOP_GRACE="9", FJMCP_SHUTDOWN_TIMEOUT="10")
    )
    assert config.child_stop_grace == 9.0


def test_unknown_child_user_and_group_reported(tmp_path: Path) -> None:
    """child_user and child_group must exist; both are reported at once."""
    problems = _problems(
        environ=_env(
            tmp_path,
            FJMCP_CHILD_USER="no-such-user-fjmcp",
            FJMCP_CHILD_GROUP="no-such-group-fjmcp",
        )
    )
    assert "child_user 'no-such-user-fjmcp' is not a user on this system" in problems
    assert "child_group 'no-such-group-fjmcp' is not a group on this system" in problems
    config = load_config(
        environ=_env(tmp_path, FJMCP_CHILD_USER="0", FJMCP_CHILD_GROUP="root")
    )
    assert (config.child_user, config.child_group) == ("0", "root")


def test_passthrough_refuses_broker_settings_and_child_variables(
    tmp_path: Path,
) -> None:
    """
    child_env_passthrough may not name FJMCP_* variables (the client secret
    among them) nor child_token_env/child_url_env; each name is a problem,
    reported with the others.
    """
    names = [
        "HOME",
        "FJMCP_FORGEJO_CLIENT_SECRET",
        "FJMCP_ANYTHING",
        "FORGEJO_ACCESS_TOKEN",
        "FORGEJO_URL",
    ]
    problems = _problems(
        environ=_env(
            tmp_path,
            FJMCP_CHILD_ENV_PASSTHROUGH=json.dumps(names),
            FJMCP_MAX_CHILDREN="0",
        )
    )
    mentioned = [p for p in problems if p.startswith("child_env_passthrough")]
    assert len(mentioned) == 4
    assert not any("'HOME'" in p for p in mentioned)
    for name in names[1:]:
        assert any(repr(name) in p for p in mentioned), name
    assert any("FORGEJO_ACCESS_TOKEN" in p and "child_token_env" in p for p in problems)
    assert any("'FORGEJO_URL'" in p and "child_url_env" in p for p in problems)
    assert any("max_children must be positive" in p for p in problems)


def test_passthrough_checks_the_configured_child_variables(tmp_path: Path) -> None:
    """
    With child_token_env/child_url_env renamed, those names are refused and
    the default names may be passed through.
    """
    env = _env(
        tmp_path,
        FJMCP_CHILD_TOKEN_ENV="GITEA_TOKEN",
        FJMCP_CHILD_URL_ENV="GITEA_HOST",
        FJMCP_CHILD_ENV_PASSTHROUGH='["FORGEJO_ACCESS_TOKEN", "FORGEJO_URL"]',
    )
    config = load_config(environ=env)
    assert config.child_env_passthrough == ("FORGEJO_ACCESS_TOKEN", "FORGEJO_URL")
    env["FJMCP_CHILD_ENV_PASSTHROUGH"] = '["GITEA_TOKEN", "GITEA_HOST"]'
    problems = _problems(environ=env)
    assert any("'GITEA_TOKEN'" in p and "child_token_env" in p for p in problems)
    assert any("'GITEA_HOST'" in p and "child_url_env" in p for p in problems)


def test_passthrough_of_lower_case_fjmcp_name_is_allowed(tmp_path: Path) -> None:
    """Only the broker's own FJMCP_* names are refused (names are case-sensitive)."""
    env = _env(tmp_path, FJMCP_CHILD_ENV_PASSTHROUGH='["fjmcp_note", "XFJMCP_A"]')
    config = load_config(environ=env)
    assert config.child_env_passthrough == ("fjmcp_note", "XFJMCP_A")


def test_masked_hides_secrets(tmp_path: Path) -> None:
    """masked() replaces every secret value and keeps the rest."""
    masked = load_config(environ=_env(tmp_path)).masked()
    assert masked["forgejo_client_secret"] == SECRET_MASK
    assert masked["forgejo_client_id"] == "client"
    assert "s3cret-value" not in repr(masked)


def test_repr_masks_secrets(tmp_path: Path) -> None:
    """A Config's repr (log_source, tracebacks) never shows a secret."""
    config = load_config(environ=_env(tmp_path))
    assert "s3cret-value" not in repr(config)
    assert f"forgejo_client_secret={SECRET_MASK!r}" in repr(config)
    assert "forgejo_client_id='client'" in repr(config)


def test_option_help_names_env_and_default() -> None:
    """Every setting's help line shows its env name and its default."""
    for f in config_fields():
        text = option_help(f.name)
        assert env_name(f.name) in text
        assert "default:" in text
    assert "default: required" in option_help("public_url")
    assert 'default: "tcp:8080:interface=127.0.0.1"' in option_help("listen")
    assert "FJMCP_FORGEJO_CLIENT_SECRET_FILE" in option_help("forgejo_client_secret")
    assert "JSON array" in option_help("allowed_origins")


def test_example_file_in_sync() -> None:
    """fjmcp.toml.example is what `fjmcp example-config` prints."""
    committed = (REPO / "fjmcp.toml.example").read_text(encoding="utf-8")
    assert committed == render_example(), (
        "regenerate: .venv/bin/fjmcp example-config > fjmcp.toml.example"
    )


def test_example_file_names_every_key() -> None:
    """Every setting appears in the example with its env name."""
    text = render_example()
    for f in config_fields():
        assert f"{f.name} = " in text
        assert env_name(f.name) in text


def test_example_file_parses_and_loads(tmp_path: Path) -> None:
    """The example, with its required example values, is valid TOML config."""
    example = tmp_path / "example.toml"
    example.write_text(render_example())
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "FJMCP_CHILD_COMMAND": "python3",
        "FJMCP_STORE_PATH": str(tmp_path / "s.sqlite3"),
    }
    config = load_config(example, environ=env)
    assert config.public_url == "https://mcp.example.org"


@given(st.text(max_size=200))
def test_env_list_parser_never_crashes(text: str) -> None:
    """Any env text for a list setting is either a list or a clear problem."""
    env = {"FJMCP_ALLOWED_ORIGINS": text, "PATH": "/usr/bin"}
    try:
        load_config(environ=env, check_paths=False)
    except ConfigError as e:
        assert all(isinstance(p, str) for p in e.problems)
