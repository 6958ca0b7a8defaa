# -*- test-case-name: tests.deploy.test_units -*-
"""
The deployment units, each checked by the tool that runs it where this
machine has it: ``systemd-analyze verify`` for the systemd units (PID 1 is
not systemd here, so verification in a private ``--root`` is the proof),
``caddy validate`` for the Caddyfile; the Quadlet units are parsed (Debian's
podman 4.3 has no Quadlet). The timeouts are checked against the broker's
own ``shutdown_timeout`` default, so the broker, not its supervisor, stops
the children.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import attrs
import pytest

from fjmcp.config import Config
from tests.support import REPO

pytestmark = pytest.mark.deploy

DEPLOY = REPO / "deploy"
SYSTEMD = DEPLOY / "systemd"
UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
SHUTDOWN_TIMEOUT = float(attrs.fields(Config).shutdown_timeout.default or 0)


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd-style unit as {section: [(key, value), ...]} (keys repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    """Every value of ``key`` in ``section``."""
    return [v for k, v in unit.get(section, []) if k == key]


def seconds(text: str) -> float:
    """A systemd time span such as ``30s``, ``2min`` or ``45``."""
    for suffix, factor in (("min", 60.0), ("ms", 0.001), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# --- systemd ------------------------------------------------------------------------


def _systemd_root(tmp_path: Path, *, drop_in: bool) -> Path:
    """A private root with the system's unit files, ours, and a stand-in twistd."""
    units = next((d for d in UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if shutil.which("systemd-analyze") is None or units is None:
        pytest.skip(
            "systemd-analyze or the system's unit files are missing (`make test` "
            "installs Debian's systemd as root)"
        )
    root = tmp_path / "root"
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for name in ("fjmcp.service", "fjmcp.socket"):
        shutil.copy(SYSTEMD / name, target / name)
    if drop_in:
        shutil.copytree(SYSTEMD / "fjmcp.service.d", target / "fjmcp.service.d")
    twistd = root / "opt/fjmcp/bin/twistd"
    twistd.parent.mkdir(parents=True)
    twistd.write_text("#!/bin/sh\n")
    twistd.chmod(stat.S_IRWXU)
    return root


@pytest.mark.parametrize("drop_in", [False, True], ids=["plain", "child-uids"])
def test_systemd_analyze_verifies_the_units_without_a_warning(
    tmp_path: Path, drop_in: bool
) -> None:
    """systemd-analyze verify accepts service and socket, with or without drop-in."""
    root = _systemd_root(tmp_path, drop_in=drop_in)
    done = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            f"--root={root}",
            "fjmcp.service",
            "fjmcp.socket",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_service_is_hardened_and_lets_the_broker_stop_its_children() -> None:
    """Hardening, state, the credential, and a stop timeout past the broker's."""
    unit = parse_unit(SYSTEMD / "fjmcp.service")
    service = dict(unit["Service"])
    assert service["User"] == "fjmcp"
    assert service["ExecStart"].endswith(
        "twistd -n --pidfile= fjmcp --config /etc/fjmcp/fjmcp.toml"
    )
    for key, value in {
        "ProtectSystem": "strict",
        "StateDirectory": "fjmcp",
        "RuntimeDirectory": "fjmcp",
        "LogsDirectory": "fjmcp",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectProc": "invisible",
        "KillMode": "mixed",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == value, key
    assert "AF_INET" in service["RestrictAddressFamilies"]
    assert service["LoadCredential"].startswith("forgejo-client-secret:")
    assert "%d/forgejo-client-secret" in service["Environment"]
    # bubblewrap as the fjmcp user needs unprivileged user namespaces.
    assert "RestrictNamespaces" not in service and "PrivateUsers" not in service
    assert "AmbientCapabilities" not in service
    assert seconds(service["TimeoutStopSec"]) > SHUTDOWN_TIMEOUT


def test_the_child_uids_drop_in_adds_setuid_and_setgid_and_nothing_more() -> None:
    """Per-user uids need CAP_SETUID/CAP_SETGID: the drop-in grants exactly those."""
    drop_in = dict(
        parse_unit(SYSTEMD / "fjmcp.service.d" / "child-uids.conf")["Service"]
    )
    assert drop_in == {
        "CapabilityBoundingSet": "CAP_SETUID CAP_SETGID",
        "AmbientCapabilities": "CAP_SETUID CAP_SETGID",
    }


def test_the_socket_unit_listens_on_loopback() -> None:
    """Socket activation hands the broker a loopback port (Caddy is the public face)."""
    socket = dict(parse_unit(SYSTEMD / "fjmcp.socket")["Socket"])
    assert socket["ListenStream"].startswith("127.0.0.1:")


# --- Quadlet --------------------------------------------------------------------------


def test_the_quadlet_unit_keeps_state_in_a_named_volume_and_outwaits_the_broker() -> (
    None
):
    """
    Named volume on /data, env file for secrets, StopTimeout >
    shutdown_timeout, and an init as PID 1 to reap what children leave.
    """
    unit = parse_unit(DEPLOY / "podman" / "fjmcp.container")
    volumes = values(unit, "Container", "Volume")
    assert "fjmcp-data.volume:/data" in volumes
    assert any(v.endswith(":/etc/fjmcp/fjmcp.toml:ro") for v in volumes)
    assert values(unit, "Container", "EnvironmentFile")
    assert values(unit, "Container", "Image")
    (publish,) = values(unit, "Container", "PublishPort")
    assert publish.startswith("127.0.0.1:")
    (stop_timeout,) = values(unit, "Container", "StopTimeout")
    assert seconds(stop_timeout) > SHUTDOWN_TIMEOUT
    (systemd_timeout,) = values(unit, "Service", "TimeoutStopSec")
    assert seconds(systemd_timeout) > seconds(stop_timeout)
    assert values(unit, "Container", "RunInit") == ["true"]
    volume = parse_unit(DEPLOY / "podman" / "fjmcp-data.volume")
    assert values(volume, "Volume", "VolumeName") == ["fjmcp-data"]


# --- Caddy ----------------------------------------------------------------------------


def test_caddy_validates_the_caddyfile() -> None:
    """caddy validate accepts the Caddyfile, which streams without buffering."""
    caddyfile = DEPLOY / "caddy" / "Caddyfile"
    text = caddyfile.read_text()
    assert "flush_interval -1" in text
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed (`make test` installs Debian's as root)")
    done = subprocess.run(
        ["caddy", "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stderr + done.stdout
