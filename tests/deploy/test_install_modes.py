# -*- test-case-name: tests.deploy.test_install_modes -*-
"""
``fjmcp serve`` works however the package was installed, and the documented
development install makes ``twistd fjmcp`` work too.

Each mode gets a fresh venv filled offline from the wheelhouse the image
test also uses (`tests.deploy.podman_env.wheelhouse`): a wheel install, and
a plain PEP 660 editable install (``pip install -e .``), where twistd cannot
find the plugin (it scans ``sys.path``, which that mode leaves without the
checkout) but ``fjmcp serve`` must still start the broker. The development
install (``make install``: editable *compat* mode) is this suite's own
``.venv``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fjmcp.oauth.keys import prepend_new_key
from tests.deploy.podman_env import wheelhouse
from tests.e2e.live import Process, clean_env, free_port
from tests.support import REPO

pytestmark = [pytest.mark.deploy, pytest.mark.integration]

INSTALL_TIMEOUT = 300


def _venv_with(tmp_path: Path, *pip_args: str) -> Path:
    """A new venv with fjmcp installed offline by ``pip install <pip_args>``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheelhouse(sys.executable)),
            "--constraint",
            str(REPO / "constraints.txt"),
            *pip_args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
        env={**clean_env(), "PIP_CONFIG_FILE": "/dev/null"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _serve(venv: Path, tmp_path: Path) -> None:
    """``fjmcp serve`` from the venv starts listening and stops on SIGTERM."""
    state = tmp_path / "state"
    state.mkdir()
    prepend_new_key(state / "token-keys")
    port = free_port()
    settings = {
        "public_url": f"http://127.0.0.1:{port}",
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "forgejo_url": "https://forgejo.example.org",
        "forgejo_client_id": "client",
        "forgejo_client_secret": "install-mode-secret",
        "child_command": [str(venv / "bin" / "python")],
        "store_path": str(state / "fjmcp.sqlite3"),
    }
    config = tmp_path / "fjmcp.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()))
    process = Process.start(
        "fjmcp serve",
        [str(venv / "bin" / "fjmcp"), "serve", "--config", str(config)],
        cwd=tmp_path,
        env=clean_env({"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}),
    )
    try:
        process.wait_for(rf"listening on .*port={port}")
    finally:
        status = process.stop()
    assert status == 0, process.output


def test_serve_works_from_a_wheel_install(tmp_path: Path) -> None:
    """pip install . (a built wheel): fjmcp serve and twistd fjmcp both work."""
    venv = _venv_with(tmp_path, str(REPO))
    _serve(venv, tmp_path)
    twistd = subprocess.run(
        [str(venv / "bin" / "twistd"), "fjmcp", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert twistd.returncode == 0 and "--config" in twistd.stdout, twistd.stderr


def test_serve_works_from_a_plain_editable_install(tmp_path: Path) -> None:
    """pip install -e . (PEP 660): fjmcp serve still starts the broker."""
    venv = _venv_with(tmp_path, "--editable", str(REPO))
    _serve(venv, tmp_path)


def test_the_development_install_gives_twistd_the_plugin() -> None:
    """make install's compat-mode editable install lets twistd find fjmcp."""
    assert "editable_mode=compat" in (REPO / "Makefile").read_text()
    assert "editable_mode=compat" in (REPO / "README.md").read_text()
    twistd = Path(sys.executable).parent / "twistd"
    done = subprocess.run(
        [str(twistd), "fjmcp", "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout
