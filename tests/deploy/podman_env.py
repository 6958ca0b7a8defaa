# -*- test-case-name: tests.deploy.test_image -*-
"""
A private podman for the image test: its own configuration (committed
beside this module), storage under ``.image-cache/`` and run state under
``/tmp``, so the machine's podman setup is neither used nor changed.

The base image is Debian's, made with ``debootstrap`` (no registry image
can be pulled on the project's machines) and imported into that storage;
it is cached behind a stamp that records the recipe, so only the first run
pays for it. The Python dependencies go into the build context as a
wheelhouse built on the host, so the image build needs no network.

`PodmanRefused` carries the step this machine refused and its error: the
test skips with it rather than failing, as it does without root or podman.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from attrs import frozen

from tests.support import REPO

__all__ = [
    "BASE_IMAGE",
    "Podman",
    "PodmanRefused",
    "build_context",
    "missing_tools",
    "prepare_base",
    "wheelhouse",
]

HERE: Final = Path(__file__).resolve().parent
CACHE: Final = REPO / ".image-cache"
SUITE: Final = "bookworm"
MIRROR: Final = os.environ.get("FJMCP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES: Final = ("python3", "python3-venv")
BASE_IMAGE: Final = f"localhost/fjmcp-test-base:{SUITE}"
TOOLS: Final = ("podman", "runc", "debootstrap")
#: Bounds for the slow steps (a fresh debootstrap takes about a minute).
DEBOOTSTRAP_TIMEOUT: Final = 600.0
STEP_TIMEOUT: Final = 300.0


class PodmanRefused(Exception):
    """This machine refused a step the test needs (the message says which)."""


def missing_tools() -> str | None:
    """Why the image test cannot run here, or None when it can try."""
    if os.geteuid() != 0:
        return "the image test needs root (debootstrap and rootful podman)"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return (
            f"{', '.join(absent)} not installed (`make test` installs them as root "
            "with apt: `make image-deps`)"
        )
    return None


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@frozen
class Podman:
    """The podman command line with the private configuration and storage."""

    root: Path
    runroot: Path

    @classmethod
    def private(cls) -> Podman:
        """Storage in the checkout's cache, run state in /tmp (short socket paths)."""
        key = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
        return cls(CACHE / "storage", Path(f"/tmp/fjmcp-podman-{key}"))

    def env(self) -> dict[str, str]:
        """The environment podman runs with: only our configuration files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERS_")}
        env["CONTAINERS_CONF"] = str(HERE / "podman" / "containers.conf")
        env["CONTAINERS_STORAGE_CONF"] = str(HERE / "podman" / "storage.conf")
        return env

    def argv(self, *args: str) -> list[str]:
        """A podman command line with the private storage and run state."""
        return [
            "podman",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot / "run"),
            "--tmpdir",
            str(self.runroot / "tmp"),
            *args,
        ]

    def run(
        self,
        *args: str,
        timeout: float = STEP_TIMEOUT,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run podman; a failure (with ``check``) raises with its output."""
        done = subprocess.run(
            self.argv(*args),
            env=self.env(),
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])} exited {done.returncode}:\n"
                + _tail(done.stderr.decode("utf-8", "replace"), 30)
            )
        return done

    def probe(self) -> None:
        """Run a trivial container; `PodmanRefused` with the error if it cannot."""
        done = self.run(
            "run", "--rm", "--network", "host", BASE_IMAGE, "true", check=False
        )
        if done.returncode != 0:
            raise PodmanRefused(
                "`podman run` refused on this machine: "
                + _tail(done.stderr.decode("utf-8", "replace"), 5)
            )


def _recipe() -> str:
    return f"{SUITE} {MIRROR} minbase {','.join(BASE_PACKAGES)}"


def _rootfs_archive() -> Path:
    """The debootstrapped root as a tar file, made once per recipe."""
    archive = CACHE / f"rootfs-{SUITE}.tar"
    stamp = CACHE / f"rootfs-{SUITE}.stamp"
    if archive.exists() and stamp.exists() and stamp.read_text() == _recipe():
        return archive
    CACHE.mkdir(exist_ok=True)
    rootfs = CACHE / f"rootfs-{SUITE}"
    shutil.rmtree(rootfs, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            capture_output=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise PodmanRefused(
                f"debootstrap {SUITE} from {MIRROR} failed: "
                + _tail((done.stdout + done.stderr).decode("utf-8", "replace"), 5)
            )
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    stamp.write_text(_recipe())
    return archive


def prepare_base(podman: Podman) -> None:
    """
    Make the Debian base image once: debootstrap (cached as a tar file behind
    a stamp that holds the recipe), then ``podman import``. `PodmanRefused`
    names the step that this machine refused.
    """
    if podman.run("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        stamp = CACHE / f"rootfs-{SUITE}.stamp"
        if stamp.exists() and stamp.read_text() == _recipe():
            return
    archive = _rootfs_archive()
    done = podman.run("import", str(archive), BASE_IMAGE, check=False)
    if done.returncode != 0:
        raise PodmanRefused(
            "`podman import` refused: "
            + _tail(done.stderr.decode("utf-8", "replace"), 5)
        )


def wheelhouse(python: str) -> Path:
    """
    The runtime dependencies as wheels (pinned by constraints.txt), plus the
    build backend, made with this venv's pip; kept while constraints.txt and
    pyproject.toml are unchanged.
    """
    inputs = b"".join(
        (REPO / name).read_bytes() for name in ("constraints.txt", "pyproject.toml")
    )
    key = hashlib.sha256(inputs).hexdigest()[:16]
    target = CACHE / f"wheelhouse-{key}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(target),
            "--constraint",
            str(REPO / "constraints.txt"),
            str(REPO),
            "setuptools>=69",
            "wheel",
        ],
        capture_output=True,
        timeout=STEP_TIMEOUT,
        check=True,
    )
    for built in target.glob("fjmcp-*.whl"):
        built.unlink()  # the image builds its own from the context
    (target / ".complete").touch()
    return target


def build_context(destination: Path, wheels: Path) -> Path:
    """
    The checkout's files (tracked and untracked, not ignored) as they are
    now, plus the wheelhouse: what ``podman build`` gets as its context.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    names: Sequence[str] = [n for n in listed.decode().split("\0") if n]
    for name in names:
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the work tree, not yet in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    shutil.copytree(wheels, destination / "wheelhouse")
    return destination
