# -*- test-case-name: tests.deploy.test_image -*-
"""
The container image, built from the ``Containerfile`` and run for real
(``make image-test``; ``make test`` runs it too).

The base is Debian's python3 made with debootstrap (`tests.deploy.podman_env`),
the target is ``runtime`` and the child is the package's demo child. The
container runs with host networking, its broker on a free 127.0.0.1 port,
and talks to a stand-in Forgejo served by this test on the host. The test
walks a whole OAuth login and an MCP session through it, checks who the
processes run as, replaces the container on the same volume and finds the
client and tokens still there, and stops it with ``podman stop`` inside its
stop timeout with exit status 0 and no process left.

Without root, podman, runc or debootstrap, or when this machine refuses a
step (the error is in the reason), the tests skip.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.client import Agent, HTTPConnectionPool

from fjmcp.awaitables import maybe_await
from fjmcp.oauth.pkce import new_verifier, s256
from fjmcp.standin.app import StandinClient, StandinConfig, start_standin
from tests.deploy.podman_env import (
    BASE_IMAGE,
    Podman,
    PodmanRefused,
    build_context,
    missing_tools,
    prepare_base,
    wheelhouse,
)
from tests.e2e.live import free_port, http_get
from tests.integration.lifecycle import McpClient, make_user
from tests.integration.test_oauth_walkthrough import (
    Browser,
    _field,
    _location,
    _query,
)

pytestmark = [pytest.mark.image, pytest.mark.integration]

reactor: Any = _reactor
IMAGE = "localhost/fjmcp:image-test"
UID = "65532"
FORGEJO_CLIENT = "fjmcp-image"
REDIRECT = "http://127.0.0.1:45999/callback"
SHUTDOWN_TIMEOUT = 10
STOP_TIMEOUT = 30
WAIT = 60.0
ENTRYPOINT = [
    "twistd",
    "-n",
    "--pidfile=",
    "fjmcp",
    "--config",
    "/etc/fjmcp/fjmcp.toml",
]
OCI_LABELS = ("created", "revision", "version", "source")


@pytest.fixture(scope="module")
def podman() -> Podman:
    """The private podman, with the Debian base ready; skips saying why not."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    podman = Podman.private()
    try:
        prepare_base(podman)
        podman.probe()
    except PodmanRefused as e:
        pytest.skip(str(e))
    return podman


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ``runtime`` target built on the Debian base, offline, from this tree."""
    context = build_context(
        tmp_path_factory.mktemp("context"), wheelhouse(sys.executable)
    )
    podman.run(
        "build",
        "--format",
        "docker",
        "--network",
        "none",
        "--target",
        "runtime",
        "--build-arg",
        f"BASE={BASE_IMAGE}",
        "--build-arg",
        "PIP_NO_INDEX=1",
        "--build-arg",
        "VERSION=0.1.0",
        "--build-arg",
        "REVISION=image-test",
        "--build-arg",
        "CREATED=2026-01-01T00:00:00Z",
        "--tag",
        IMAGE,
        "--file",
        str(context / "Containerfile"),
        str(context),
        timeout=600,
    )
    # Earlier builds' layers, no longer tagged, would pile up in the cache.
    podman.run("image", "prune", "--force", check=False)
    return IMAGE


def test_the_image_declares_its_user_volume_health_check_labels_and_entrypoint(
    podman: Podman, image: str
) -> None:
    """The image's metadata is what operators and their tools rely on."""
    inspected = json.loads(podman.run("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert "FJMCP_HEALTHCHECK_URL" in " ".join(inspected["Healthcheck"]["Test"])
    assert "FJMCP_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz" in config["Env"]
    labels = config["Labels"]
    for name in OCI_LABELS:
        assert labels[f"org.opencontainers.image.{name}"], name
    assert labels["org.opencontainers.image.revision"] == "image-test"
    info = podman.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "cat",
        image,
        "/etc/build-info",
    ).stdout.decode()
    assert "revision=image-test" in info and "version=0.1.0" in info


async def _podman(podman: Podman, *args: str) -> tuple[int, str]:
    """Run podman without blocking the reactor; (status, stdout + stderr)."""
    out, err, status = await getProcessOutputAndValue(
        "podman", podman.argv(*args)[1:], env=podman.env()
    )
    return status, (out + err).decode("utf-8", "replace")


def _health_status(url: str) -> int:
    """The status of GET url, 0 while nothing answers."""
    try:
        return http_get(url, 2.0)[0]
    except OSError:  # URLError too: nothing listens yet
        return 0


async def _until_healthy(url: str, podman: Podman, name: str) -> None:
    """Poll /healthz until 200; fail with the container's log at the deadline."""
    deadline = reactor.seconds() + WAIT
    while True:
        status = await deferLater(reactor, 0, _health_status, url)
        if status == 200:
            return
        if reactor.seconds() > deadline:
            _, logs = await _podman(podman, "logs", name)
            raise AssertionError(f"{name} not healthy within {WAIT:g}s:\n{logs}")
        await deferLater(reactor, 0.2, lambda: None)


def _config(port: int, forgejo_url: str) -> str:
    lines = {
        "public_url": f"http://127.0.0.1:{port}",
        "listen": f"tcp:{port}:interface=127.0.0.1",
        "forgejo_url": forgejo_url,
        "forgejo_client_id": FORGEJO_CLIENT,
        "forgejo_client_secret_file": "/run/secrets/forgejo-client-secret",
        "child_command": ["/opt/fjmcp/bin/python", "-m", "fjmcp.demo_child"],
        "store_path": "/data/fjmcp.sqlite3",
        "shutdown_timeout": float(SHUTDOWN_TIMEOUT),
    }
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in lines.items()) + "\n"


class Deployment:
    """One container setup: config, secret and volume; containers run on it."""

    def __init__(self, podman: Podman, image: str, directory: Path, port: int) -> None:
        self.podman = podman
        self.image = image
        self.directory = directory
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.volume = f"fjmcp-image-test-{secrets.token_hex(4)}"
        self.names: list[str] = []

    def mounts(self) -> list[str]:
        """The volume, the configuration and the client secret."""
        return [
            "--volume",
            f"{self.volume}:/data",
            "--volume",
            f"{self.directory / 'fjmcp.toml'}:/etc/fjmcp/fjmcp.toml:ro",
            "--volume",
            f"{self.directory / 'secret'}:/run/secrets/forgejo-client-secret:ro",
        ]

    async def start(self) -> str:
        """A new container on the deployment's volume; its name once healthy."""
        name = f"fjmcp-image-test-{secrets.token_hex(4)}"
        self.names.append(name)
        status, out = await _podman(
            self.podman,
            "run",
            "--detach",
            "--init",
            "--name",
            name,
            "--network",
            "host",
            "--stop-timeout",
            str(STOP_TIMEOUT),
            "--health-interval",
            "disable",
            "--env",
            f"FJMCP_HEALTHCHECK_URL={self.base}/healthz",
            *self.mounts(),
            self.image,
        )
        assert status == 0, out
        await _until_healthy(self.base + "/healthz", self.podman, name)
        return name

    async def processes(self, name: str) -> list[tuple[str, str, str]]:
        """(host pid, host user, command) of every process in the container."""
        status, out = await _podman(self.podman, "top", name, "hpid", "huser", "args")
        assert status == 0, out
        rows = []
        for line in out.splitlines()[1:]:
            hpid, huser, args = line.split(None, 2)
            rows.append((hpid, huser, args))
        return rows

    async def stop(self, name: str) -> tuple[float, int]:
        """``podman stop``: (seconds it took, the container's exit status)."""
        began = time.monotonic()
        status, out = await _podman(self.podman, "stop", name)
        took = time.monotonic() - began
        assert status == 0, out
        status, out = await _podman(
            self.podman, "inspect", "--format", "{{.State.ExitCode}}", name
        )
        assert status == 0, out
        return took, int(out.strip().splitlines()[-1])

    def cleanup(self) -> None:
        """Remove every container and the volume."""
        for name in self.names:
            self.podman.run("rm", "--force", name, check=False)
        self.podman.run("volume", "rm", "--force", self.volume, check=False)


@pytest.fixture
def deployment(podman: Podman, image: str, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment directory and volume, removed after the test."""
    deployment = Deployment(podman, image, tmp_path, free_port())
    try:
        yield deployment
    finally:
        deployment.cleanup()


async def _sign_in(browser: Browser, base: str, forgejo: str) -> dict[str, Any]:
    """Register, consent, log in at the stand-in, callback, token."""
    response, body = await browser.request(
        "POST",
        base + "/oauth/register",
        json={
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Image test client",
        },
    )
    assert response.code == 201, body
    client_id = json.loads(body)["client_id"]
    verifier = new_verifier()
    response, body = await browser.request(
        "GET",
        base + "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "state": "st",
            "scope": "mcp offline_access",
            "resource": base + "/mcp",
        },
    )
    assert response.code == 200, body
    response, body = await browser.request(
        "POST",
        base + "/oauth/consent",
        data={
            "request": _field(body, "request"),
            "csrf": _field(body, "csrf"),
            "decision": "allow",
        },
    )
    assert response.code == 303, body
    login_url = _location(response)
    assert login_url.startswith(forgejo)
    response, body = await browser.request("GET", login_url)
    assert response.code == 200, body
    response, body = await browser.request(
        "POST",
        forgejo + "/login/oauth/authorize",
        data={
            **_query(login_url),
            "_csrf": _field(body, "_csrf"),
            "user_name": "alice",
            "password": "alice-password",
        },
    )
    assert response.code in (302, 303), body
    response, body = await browser.request("GET", _location(response))
    assert response.code == 302, body
    response, body = await browser.request(
        "POST",
        base + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": _query(_location(response))["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "resource": base + "/mcp",
        },
    )
    assert response.code == 200, body
    tokens: dict[str, Any] = json.loads(body)
    tokens["client_id"] = client_id
    return tokens


async def _whoami(base: str, access_token: str) -> tuple[McpClient, str]:
    """Initialize a session and call whoami; the client and the session id."""
    client = McpClient(base + "/mcp", access_token)
    session = await client.initialize()
    call = await client.call(session, "whoami")
    assert call.ok, call.body
    assert "alice" in json.dumps(call.result), call.result
    return client, session


def _alive(hpid: str) -> bool:
    return os.path.exists(f"/proc/{hpid}")


@pytest_twisted.ensureDeferred
async def test_the_image_serves_a_login_and_a_session_and_keeps_its_state(
    deployment: Deployment,
) -> None:
    """OAuth and MCP through the container, as uid 65532; state survives; clean stop."""
    client_secret = secrets.token_urlsafe(24)
    standin, standin_port = await start_standin(
        reactor,
        StandinConfig(
            users=(make_user("alice"),),
            clients=(
                StandinClient(
                    FORGEJO_CLIENT,
                    client_secret,
                    (deployment.base + "/oauth/callback",),
                ),
            ),
        ),
    )
    forgejo: str = standin.base_url
    directory = deployment.directory
    (directory / "fjmcp.toml").write_text(_config(deployment.port, forgejo))
    secret = directory / "secret"
    secret.write_text(client_secret + "\n")
    os.chown(secret, int(UID), int(UID))
    secret.chmod(0o400)
    pool = HTTPConnectionPool(reactor, persistent=False)
    browser = Browser(Agent(reactor, connectTimeout=5, pool=pool), pool)
    clients: list[McpClient] = []
    try:
        status, out = await _podman(
            deployment.podman,
            "run",
            "--rm",
            "--network",
            "none",
            *deployment.mounts(),
            "--entrypoint",
            "fjmcp",
            deployment.image,
            "admin",
            "--config",
            "/etc/fjmcp/fjmcp.toml",
            "gen-key",
        )
        assert status == 0, out

        first = await deployment.start()
        status, out = await _podman(deployment.podman, "healthcheck", "run", first)
        assert status == 0, out
        tokens = await _sign_in(browser, deployment.base, forgejo)
        client, _ = await _whoami(deployment.base, tokens["access_token"])
        clients.append(client)
        processes = await deployment.processes(first)
        assert {user for _, user, _ in processes} == {UID}, processes
        assert any("fjmcp.demo_child" in args for _, _, args in processes), processes
        assert any("twistd" in args for _, _, args in processes), processes
        # podman's --init (catatonit) is the container's PID 1.
        assert any(a.startswith("/run/podman-init ") for _, _, a in processes)

        await client.close()
        took, exit_status = await deployment.stop(first)
        assert exit_status == 0
        assert took < STOP_TIMEOUT, took
        left = [p for p in processes if _alive(p[0])]
        assert not left, left

        second = await deployment.start()
        # The client and its tokens are still there: the access token opens a
        # session (its Forgejo token unsealed with the key on the volume) and
        # the refresh token rotates.
        client, _ = await _whoami(deployment.base, tokens["access_token"])
        clients.append(client)
        response, body = await browser.request(
            "POST",
            deployment.base + "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": tokens["client_id"],
            },
        )
        assert response.code == 200, body
        processes = await deployment.processes(second)
        await client.close()
        took, exit_status = await deployment.stop(second)
        assert (exit_status, took < STOP_TIMEOUT) == (0, True), took
        assert not [p for p in processes if _alive(p[0])]
    finally:
        for client in clients:
            await client.close()
        await browser.pool.closeCachedConnections()
        await maybe_await(standin_port.stopListening())
