# -*- test-case-name: tests.test_demo -*-
"""
Tests for `fjmcp.demo`'s checks and generated state, without starting
servers (``tests/integration/test_demo.py`` runs the demo for real).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from fjmcp import demo
from fjmcp.config import load_config
from fjmcp.demo import (
    DEMO_CLIENT_ID,
    DEMO_READ_ONLY_CLIENT_ID,
    DemoError,
    DemoOptions,
    demo_config_text,
    prepare_state,
    standin_config,
)


def options_for(*argv: str) -> DemoOptions:
    return DemoOptions.from_args(demo.parser().parse_args(list(argv)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_are_the_documented_ports_on_loopback() -> None:
    """Without options the broker is on 127.0.0.1:8080 and the stand-in on 8081."""
    options = options_for()
    assert options.public_url == "http://127.0.0.1:8080"
    assert options.forgejo_port == 8081
    assert options.state_dir == Path("var/demo")
    assert options.user == "demo"


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "example.org", "10.0.0.1"],  # noqa: S104
)
def test_a_non_loopback_host_is_refused(host: str) -> None:
    """The demo refuses any address another machine could reach."""
    with pytest.raises(DemoError, match="not a loopback address"):
        options_for("--host", host)


def test_main_refuses_a_non_loopback_host_before_starting_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``fjmcp demo --host 0.0.0.0`` exits 2 and creates no state."""
    state = tmp_path / "state"
    argv = ["--host", "0.0.0.0", "--state-dir", str(state)]  # noqa: S104
    assert demo.main(argv) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert not state.exists()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("localhost", "http://127.0.0.1:8080"),
        ("127.0.0.2", "http://127.0.0.2:8080"),
        ("::1", "http://[::1]:8080"),
    ],
)
def test_loopback_hosts_are_accepted(host: str, url: str) -> None:
    """localhost means 127.0.0.1; other loopback addresses are used as given."""
    assert options_for("--host", host).public_url == url


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "0"],
        ["--port", "70000"],
        ["--forgejo-port", "-1"],
        ["--port", "9000", "--forgejo-port", "9000"],
        ["--user", "a:b"],
        ["--user", ""],
        ["--token-lifetime", "0"],
    ],
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    """Ports out of range, equal ports, odd logins and lifetimes are refused."""
    with pytest.raises(DemoError):
        options_for(*argv)


def test_prepare_state_makes_private_files_and_keeps_the_password(
    tmp_path: Path,
) -> None:
    """
    The state directory is 0700, the key file, client secret and password
    0600; the password survives a second run, the client secret does not.
    """
    options = options_for("--state-dir", str(tmp_path / "var"))
    first = prepare_state(options)
    assert mode(first.state_dir) == 0o700
    for path in (first.key_file, first.client_secret_file, first.password_file):
        assert mode(path) == 0o600, path
    assert first.password_file.read_text().strip() == first.password
    key_text = first.key_file.read_text()
    assert len(key_text.split()) == 2

    second = prepare_state(options)
    assert second.password == first.password
    assert second.client_secret != first.client_secret
    assert second.key_file.read_text() == key_text


def test_prepare_state_replaces_a_key_file_others_can_read(tmp_path: Path) -> None:
    """A key file open to others is never used; a private one takes its place."""
    options = options_for("--state-dir", str(tmp_path))
    state = prepare_state(options)
    os.chmod(state.key_file, 0o644)
    old = state.key_file.read_text()
    prepare_state(options)
    assert mode(state.key_file) == 0o600
    assert state.key_file.read_text() != old


def test_prepare_state_empties_the_store_of_the_last_run(tmp_path: Path) -> None:
    """The last run's store files go (the stand-in forgot its tokens)."""
    options = options_for("--state-dir", str(tmp_path))
    state = prepare_state(options)
    for suffix in ("", "-wal", "-shm"):
        Path(str(state.store_path) + suffix).write_text("old")
    prepare_state(options)
    assert not state.store_path.exists()
    assert not Path(str(state.store_path) + "-wal").exists()


def test_prepare_state_refuses_a_store_held_by_another_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    While a broker (a running demo) holds the store's lock, a second demo on
    the same state directory leaves every file alone: the store, and the
    client secret, password and key file the running demo uses.
    """
    from fjmcp.store.lock import StoreLock

    options = options_for("--state-dir", str(tmp_path))
    state = prepare_state(options)
    state.store_path.write_text("in use")
    files = (state.client_secret_file, state.password_file, state.key_file)
    before = [path.read_text() for path in files]
    monkeypatch.setenv("FJMCP_DEMO_PASSWORD", "another-pass")
    lock = StoreLock.acquire(str(state.store_path))
    try:
        with pytest.raises(DemoError, match="in use"):
            prepare_state(options_for("--state-dir", str(tmp_path)))
        assert state.store_path.read_text() == "in use"
        assert [path.read_text() for path in files] == before
    finally:
        lock.release()


def test_password_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FJMCP_DEMO_PASSWORD sets the demo password."""
    monkeypatch.setenv("FJMCP_DEMO_PASSWORD", "chosen-pass")
    options = options_for("--state-dir", str(tmp_path))
    assert prepare_state(options).password == "chosen-pass"


def test_generated_config_loads_and_is_what_the_demo_promises(tmp_path: Path) -> None:
    """
    The demo configuration is valid: loopback URL and listen address, the
    demo child, Inspector's origin allowed, the state under the state dir.
    """
    options = options_for("--state-dir", str(tmp_path), "--port", "18123")
    state = prepare_state(options)
    state.config_path.write_text(
        demo_config_text(options, state, "http://127.0.0.1:18124"), encoding="utf-8"
    )
    config = load_config(state.config_path, environ={"PATH": os.defpath})
    assert config.public_url == "http://127.0.0.1:18123"
    assert config.mcp_url == "http://127.0.0.1:18123/mcp"
    assert config.listen == "tcp:18123:interface=127.0.0.1"
    assert config.forgejo_url == "http://127.0.0.1:18124"
    assert config.forgejo_client_id == DEMO_CLIENT_ID
    assert config.forgejo_client_secret == state.client_secret
    assert config.forgejo_ro_client_id == DEMO_READ_ONLY_CLIENT_ID
    assert config.forgejo_ro_client_secret == state.client_secret
    assert "read:user" in config.forgejo_scopes_read_only
    assert config.child_command[1:] == ("-m", "fjmcp.demo_child")
    assert os.path.samefile(config.child_command[0], sys.executable)
    assert "http://localhost:6274" in config.allowed_origins
    assert Path(config.store_path).parent == tmp_path.resolve()
    assert config.token_keys_path == state.key_file.resolve()
    assert state.client_secret not in state.config_path.read_text()


def test_ipv6_listen_address_is_escaped(tmp_path: Path) -> None:
    """On ::1 the endpoint string escapes the address's colons."""
    options = options_for("--state-dir", str(tmp_path), "--host", "::1")
    state = prepare_state(options)
    text = demo_config_text(options, state, "http://[::1]:9")
    state.config_path.write_text(text, encoding="utf-8")
    config = load_config(state.config_path, environ={"PATH": os.defpath})
    assert config.listen == "tcp:8080:interface=\\:\\:1"
    assert config.public_url == "http://[::1]:8080"


def test_standin_registers_the_broker_callback_and_the_demo_user(
    tmp_path: Path,
) -> None:
    """
    The stand-in knows the demo user and, with the broker's exact callback
    URL, its two applications: full access and read-only grants.
    """
    options = options_for("--state-dir", str(tmp_path), "--user", "kim")
    state = prepare_state(options)
    config = standin_config(options, state)
    [user] = config.users
    assert (user.login, user.password) == ("kim", state.password)
    full, read_only = config.clients
    assert (full.client_id, read_only.client_id) == (
        DEMO_CLIENT_ID,
        DEMO_READ_ONLY_CLIENT_ID,
    )
    for client in (full, read_only):
        assert client.client_secret == state.client_secret
        assert client.redirect_uris == ("http://127.0.0.1:8080/oauth/callback",)
