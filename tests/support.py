# -*- test-case-name: tests.test_service, tests.test_cli, tests.test_tap -*-
"""
Helpers for tests in any directory: a valid broker configuration, loaded the
way the daemon loads it (through `load_config`, with its checks), so tests
that need "a configuration that works" do not each spell the settings out;
and a fresh interpreter for checks on what an import loads.

Component-local doubles stay in their directories' ``support`` modules
(``tests.oauth.support.make_config`` builds a `Config` without any I/O).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fjmcp.config import Config, env_name, load_config

__all__ = [
    "REPO",
    "assert_python_succeeds",
    "broker_config",
    "broker_environ",
    "broker_toml",
]

#: The checkout's root.
REPO = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path) -> dict[str, str]:
    """The required settings: a loopback broker whose store is in tmp_path."""
    return {
        "public_url": "http://127.0.0.1:8080",
        "forgejo_url": "https://forgejo.example.org",
        "forgejo_client_id": "client",
        "forgejo_client_secret": "s3cret-value",
        "child_command": "python3",
        "store_path": str(tmp_path / "fjmcp.sqlite3"),
    }


def broker_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    """
    A ``FJMCP_*`` environment with every required setting (the child is
    ``python3``, found on a PATH that holds this interpreter), plus ``extra``
    variables, which win.
    """
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"}
    env.update((env_name(k), v) for k, v in _settings(tmp_path).items())
    env.update(extra)
    return env


def broker_config(tmp_path: Path, **extra: str) -> Config:
    """The `Config` loaded from `broker_environ` (``extra``: more variables)."""
    return load_config(environ=broker_environ(tmp_path, **extra))


def broker_toml(tmp_path: Path, extra: str = "") -> Path:
    """
    ``tmp_path/fjmcp.toml`` with every required setting (the child is this
    interpreter, by absolute path), then the ``extra`` TOML lines; the token
    key file beside the store is created when missing, so the broker can
    start with it.
    """
    from fjmcp.oauth.keys import prepend_new_key

    if not (tmp_path / "token-keys").exists():
        prepend_new_key(tmp_path / "token-keys")
    settings: dict[str, object] = {
        **_settings(tmp_path),
        "child_command": [sys.executable],
    }
    path = tmp_path / "fjmcp.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join([*lines, extra]))
    return path


def assert_python_succeeds(code: str) -> None:
    """
    Run ``code`` in a fresh interpreter in the checkout's root and assert it
    exits 0 (its output is the assertion's message otherwise).
    """
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
