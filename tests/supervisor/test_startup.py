# -*- test-case-name: tests.supervisor.test_startup -*-
"""prepare_isolation: the profile, the root refusal, uids, the spec factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed

from fjmcp.config import ChildLimits, Config
from fjmcp.interfaces import UpstreamToken
from fjmcp.settings import child_settings, isolation_settings
from fjmcp.supervisor.sandbox import Tools
from fjmcp.supervisor.startup import IsolationError, prepare_isolation

BARE = Tools(setpriv="/usr/bin/setpriv", prlimit="/usr/bin/prlimit")
BWRAP = Tools(setpriv="/usr/bin/setpriv", prlimit="/usr/bin/prlimit", bwrap="/b/bwrap")
TOKEN = UpstreamToken(
    user="alice", access_token="tok-alice", expires_at=0.0, generation=1
)


class Runner:
    """A store that knows one row and records the rows written."""

    def __init__(self) -> None:
        self.written: list[tuple[str, int]] = []

    def run(self, fn: Callable[..., Any], /, *args: Any) -> Deferred[Any]:
        """Answer the read, record the write."""
        if fn.__name__ == "all_child_uids_txn":
            return succeed({"carol": 400000})
        self.written.append((args[0], args[1]))
        return succeed(None)


def config(tmp_path: Path, **kw: Any) -> Config:
    values: dict[str, Any] = {
        "public_url": "http://127.0.0.1:1",
        "forgejo_url": "http://127.0.0.1:2",
        "forgejo_client_id": "c",
        "forgejo_client_secret": "s",
        "child_command": ("/usr/bin/true",),
        "store_path": str(tmp_path / "state" / "s.sqlite3"),
        "child_limits": ChildLimits(open_files=64),
    }
    values.update(kw)
    return Config(**values)


async def prepare(cfg: Config, runner: Any = None, **kw: Any) -> Any:
    return await prepare_isolation(
        isolation_settings(cfg),
        child_settings(cfg),
        runner or Runner(),
        clock_seconds=lambda: 5.0,
        systemd=False,
        cgroup_root=Path("/nonexistent"),
        **{"probe": lambda tools, uid: None, "setid": True, **kw},
    )


@pytest_twisted.ensureDeferred
async def test_root_without_sandbox_is_refused(tmp_path: Path) -> None:
    """Root, no bwrap, no uid: refused, naming the explicit way out."""
    with pytest.raises(IsolationError, match='child_sandbox = "none"'):
        await prepare(config(tmp_path), euid=0, tools=BARE)


@pytest_twisted.ensureDeferred
async def test_explicit_none_as_root_starts_with_a_warning(
    tmp_path: Path, logged: list[Any]
) -> None:
    """child_sandbox = "none" written out: it starts, and warns of the risk."""
    iso = await prepare(config(tmp_path, child_sandbox="none"), euid=0, tools=BARE)
    assert iso.profile == "none"
    assert any("no sandbox" in str(e.get("log_format")) for e in logged)


@pytest_twisted.ensureDeferred
async def test_auto_picks_bubblewrap_and_the_spec_is_wrapped(tmp_path: Path) -> None:
    """auto with bwrap: bubblewrap; the spec's argv is the chain, the token
    on descriptor 3 (file mode) and not in the environment."""
    cfg = config(tmp_path, child_token_via="file")
    iso = await prepare(cfg, euid=0, tools=BWRAP)
    assert iso.profile == "bubblewrap"
    spec = iso.spec_factory(TOKEN, "session=x user=alice")
    assert spec.argv[0] == "/bin/sh" and "/b/bwrap" in spec.argv
    assert spec.argv[-1] == "/usr/bin/true"
    assert "tok-alice" not in spec.env.values()
    assert not any("tok-alice" in arg for arg in spec.argv)
    assert spec.env["FORGEJO_TOKEN_FILE"] == "/run/fjmcp/token"
    assert spec.inputs == {3: b"tok-alice"}
    assert (spec.uid, spec.gid) == (None, None)  # setpriv does it, in the argv
    assert spec.secrets == ("tok-alice",)


@pytest_twisted.ensureDeferred
async def test_uid_range_gives_each_user_a_uid(tmp_path: Path) -> None:
    """Loaded rows are kept; a new user gets the lowest free uid, written."""
    runner = Runner()
    cfg = config(tmp_path, child_sandbox="none", child_uid_range=(400000, 4))
    iso = await prepare(cfg, runner, euid=0, tools=BARE)
    spec = iso.spec_factory(TOKEN, "l")
    assert "--reuid=400001" in spec.argv and "--regid=400001" in spec.argv
    carol = UpstreamToken(user="carol", access_token="t", expires_at=0.0, generation=1)
    assert "--reuid=400000" in iso.spec_factory(carol, "l").argv
    assert runner.written == [("alice", 400001)]


@pytest_twisted.ensureDeferred
async def test_unusable_runtime_directory_is_refused(tmp_path: Path) -> None:
    """The children's records must be writable."""
    (tmp_path / "file").write_text("")
    cfg = config(tmp_path, child_runtime_dir=str(tmp_path / "file" / "sub"))
    with pytest.raises(IsolationError, match="runtime directory"):
        await prepare(cfg, euid=1000, tools=BWRAP)


@pytest_twisted.ensureDeferred
async def test_bubblewrap_that_cannot_run(tmp_path: Path) -> None:
    """Named bubblewrap that cannot make namespaces: refused, saying why;
    auto falls back to none (and a root broker is then refused)."""
    broken = {"probe": lambda tools, uid: "No permission to create namespace"}
    with pytest.raises(IsolationError, match="unprivileged user namespaces"):
        await prepare(
            config(tmp_path, child_sandbox="bubblewrap", child_uid_range=(5000, 2)),
            euid=0,
            tools=BWRAP,
            **broken,
        )
    iso = await prepare(config(tmp_path), euid=1000, tools=BWRAP, **broken)
    assert iso.profile == "none"
    with pytest.raises(IsolationError, match="root"):
        await prepare(config(tmp_path), euid=0, tools=BWRAP, **broken)


@pytest_twisted.ensureDeferred
async def test_uids_need_setuid(tmp_path: Path) -> None:
    """child_uid_range without CAP_SETUID/CAP_SETGID is refused at start."""
    with pytest.raises(IsolationError, match="CAP_SETUID"):
        await prepare(
            config(tmp_path, child_uid_range=(5000, 2)),
            euid=1000,
            tools=BWRAP,
            setid=False,
        )


def test_probe_on_this_machine() -> None:
    """The real probe answers None or a reason (never raises)."""
    from fjmcp.supervisor.sandbox import find_tools
    from fjmcp.supervisor.startup import probe_bubblewrap

    answer = probe_bubblewrap(find_tools(), None)
    assert answer is None or isinstance(answer, str)
