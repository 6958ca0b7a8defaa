# -*- test-case-name: tests.supervisor.test_sandbox -*-
"""The confinement argv, checked as argv (no process is started)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjmcp.config import ChildLimits
from fjmcp.supervisor.preamble import preamble
from fjmcp.supervisor.sandbox import (
    SANDBOX_HOME,
    TOKEN_DIR,
    TOKEN_FD,
    Sandbox,
    SandboxError,
    Tools,
    resolve_profile,
    root_refusal,
    token_delivery,
    wrap,
)

TOOLS = Tools(
    setpriv="/usr/bin/setpriv",
    prlimit="/usr/bin/prlimit",
    bwrap="/usr/bin/bwrap",
    systemd_run="/usr/bin/systemd-run",
)
LIMITS = ChildLimits(
    memory=1 << 30, address_space=1 << 31, cpu_seconds=60, open_files=256, processes=64
)
COMMAND = ("/srv/venv/bin/server", "--stdio")


def sandbox(profile: str = "bubblewrap", **kw: object) -> Sandbox:
    """A sandbox on a merged-/usr machine with /etc/fjmcp present."""
    values: dict[str, object] = {
        "profile": profile,
        "tools": TOOLS,
        "limits": LIMITS,
        "reads": ("/srv/venv",),
        "hidden": ("/var/lib/fjmcp", "/etc/fjmcp", "/srv/venv/secret"),
        "existing": frozenset(
            {"/usr", "/etc", "/etc/shadow", "/etc/fjmcp", "/var/lib/fjmcp"}
        ),
        "directories": frozenset({"/usr", "/etc", "/etc/fjmcp", "/var/lib/fjmcp"}),
        "symlinks": frozenset({"/bin", "/lib"}),
    }
    values.update(kw)
    return Sandbox(**values)  # type: ignore[arg-type]


def pairs(argv: tuple[str, ...], flag: str) -> list[tuple[str, ...]]:
    """The operands following each occurrence of ``flag``."""
    width = {"--ro-bind": 2, "--symlink": 2, "--file": 2, "--setenv": 2}.get(flag, 1)
    return [tuple(argv[i + 1 : i + 1 + width]) for i, a in enumerate(argv) if a == flag]


def test_bubblewrap_unshares_everything_but_the_network() -> None:
    """User, PID, IPC and UTS namespaces, a non-zero uid, no capabilities,
    killed with the broker; no --unshare-net (children reach Forgejo)."""
    argv = wrap(sandbox(), COMMAND, uid=None, gid=None, token_file=False)
    bwrap = argv.index("/usr/bin/bwrap")
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv[bwrap:]
    assert "--unshare-net" not in argv and "--unshare-all" not in argv
    assert "--die-with-parent" in argv
    assert pairs(argv, "--uid") == [("1000",)]
    assert pairs(argv, "--cap-drop") == [("ALL",)]
    assert argv[-len(COMMAND) - 1 :] == ("--", *COMMAND)


def test_bubblewrap_view_of_the_filesystem() -> None:
    """Read-only /usr, /etc and the command's prefix; merged-/usr links;
    /etc/shadow and broker paths masked; private /tmp, /run and HOME."""
    argv = wrap(sandbox(), COMMAND, uid=None, gid=None, token_file=False)
    binds = pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in binds and ("/etc", "/etc") in binds
    assert ("/srv/venv", "/srv/venv") in binds
    assert ("/dev/null", "/etc/shadow") in binds
    assert ("usr/bin", "/bin") in pairs(argv, "--symlink")
    # /etc/fjmcp is under the bound /etc: an empty tmpfs over it; the state
    # directory is under no bound tree, so nothing shows it anyway.
    assert ("/etc/fjmcp",) in pairs(argv, "--tmpfs")
    assert ("/var/lib/fjmcp",) not in pairs(argv, "--tmpfs")
    assert not any(a == "--bind" for a in argv)  # nothing writable from outside
    for private in ("/tmp", "/run"):
        assert (private,) in pairs(argv, "--tmpfs")
    assert ("HOME", SANDBOX_HOME) in pairs(argv, "--setenv")
    # masks come after the binds they hide parts of
    assert argv.index("/etc/fjmcp") > argv.index("/etc")


def test_token_file_is_0600_on_the_private_tmpfs() -> None:
    """bwrap copies the token from its descriptor into /run/fjmcp/token, 0600."""
    argv = wrap(sandbox(), COMMAND, uid=None, gid=None, token_file=True)
    i = argv.index("--file")
    assert argv[i - 2 : i] == ("--perms", "0600")
    assert argv[i + 1 : i + 3] == (str(TOKEN_FD), f"{TOKEN_DIR}/token")
    assert argv.index("/run") < i  # the tmpfs exists first


def test_uid_change_then_parent_death_signal() -> None:
    """setpriv changes gid and uid, clears groups, and sets the parent-death
    signal (after the change, which would clear it), before bwrap."""
    argv = wrap(sandbox(), COMMAND, uid=200001, gid=200001, token_file=False)
    s = argv.index("/usr/bin/setpriv")
    chain = argv[s : argv.index("--", s)]
    assert chain[1:] == (
        "--regid=200001",
        "--reuid=200001",
        "--clear-groups",
        "--pdeathsig=KILL",
    )
    assert s < argv.index("/usr/bin/bwrap")


def test_none_profile_is_setpriv_with_pdeathsig_only() -> None:
    """No namespaces under none; the parent-death signal is always set."""
    argv = wrap(sandbox("none"), COMMAND, uid=None, gid=None, token_file=False)
    assert "/usr/bin/bwrap" not in argv
    assert "--pdeathsig=KILL" in argv
    assert argv[-len(COMMAND) :] == COMMAND


def test_rlimits_before_setpriv_in_the_shell_or_prlimit_for_nproc() -> None:
    """rlimits come first (as the broker): set by the preamble shell's
    ulimit (address space in KiB), or, for a child with a uid of its own
    (RLIMIT_NPROC counts per uid and does not bind root; ulimit has no
    portable flag for it), all of them by prlimit."""
    as_root = wrap(sandbox("none"), COMMAND, uid=None, gid=None, token_file=False)
    assert as_root[: as_root.index("--") + 1] == (
        *preamble(limits=["-v", str((1 << 31) // 1024), "-t", "60", "-n", "256"]),
    )
    assert "/usr/bin/prlimit" not in as_root
    own = wrap(sandbox("none"), COMMAND, uid=300, gid=300, token_file=False)
    assert own[:6] == (
        "/usr/bin/prlimit",
        f"--as={1 << 31}",
        "--cpu=60",
        "--nofile=256",
        "--nproc=64",
        "--",
    )
    assert own.index("/usr/bin/prlimit") < own.index("/usr/bin/setpriv")
    assert "/bin/sh" not in own


def test_no_limits_no_limits_shell() -> None:
    """With every limit 0, neither prlimit nor a shell is in the chain."""
    argv = wrap(
        sandbox("none", limits=ChildLimits()),
        COMMAND,
        uid=None,
        gid=None,
        token_file=False,
    )
    assert argv == ("/usr/bin/setpriv", "--pdeathsig=KILL", "--", *COMMAND)


def test_bubblewrap_without_a_uid_change_needs_no_setpriv() -> None:
    """bwrap --die-with-parent sets the parent-death signal itself; setpriv
    is there only to change the uid (and set the signal after it)."""
    argv = wrap(sandbox(), COMMAND, uid=None, gid=None, token_file=False)
    assert "/usr/bin/setpriv" not in argv and "--die-with-parent" in argv
    changed = wrap(sandbox(), COMMAND, uid=7, gid=7, token_file=False)
    assert changed.index("/usr/bin/setpriv") < changed.index("/usr/bin/bwrap")


def test_systemd_run_scope_first_with_resource_properties() -> None:
    """systemd-run --scope heads the chain with MemoryMax and TasksMax;
    combined with bubblewrap, bwrap still confines."""
    argv = wrap(
        sandbox("bubblewrap+systemd-run", limits=LIMITS),
        COMMAND,
        uid=None,
        gid=None,
        token_file=False,
    )
    assert argv[:2] == ("/usr/bin/systemd-run", "--scope")
    props = pairs(argv, "--property")
    assert (f"MemoryMax={1 << 30}",) in props and ("TasksMax=64",) in props
    assert "/usr/bin/bwrap" in argv


def test_token_delivery_per_mode() -> None:
    """env puts the token in the environment; fd and file keep it out of
    it, on descriptor 3 (a file inside bubblewrap, /dev/fd/3 without)."""
    kw = {"token_env": "T", "file_env": "TF", "fd_env": "TD"}
    env = token_delivery("env", "tok", bubblewrap=True, **kw)
    assert env.env == {"T": "tok"} and env.inputs == {}
    fd = token_delivery("fd", "tok", bubblewrap=True, **kw)
    assert fd.env == {"TD": "3"} and fd.inputs == {3: b"tok"}
    f = token_delivery("file", "tok", bubblewrap=True, **kw)
    assert f.env == {"TF": "/run/fjmcp/token"} and f.inputs == {3: b"tok"}
    bare = token_delivery("file", "tok", bubblewrap=False, **kw)
    assert bare.env == {"TF": "/dev/fd/3"}


#: Tokens as Forgejo issues them (hex, or prefixed): never shorter than 8.
TOKENS = st.text(
    alphabet=string.ascii_letters + string.digits + "_-", min_size=8, max_size=64
)


@given(TOKENS)
def test_the_token_travels_only_where_asked(token: str) -> None:
    """file and fd keep the token out of the environment and put it on
    descriptor 3 only; env puts it in the one variable (`wrap` never sees
    it: the argv cannot hold it)."""
    kw = {"token_env": "T", "file_env": "F", "fd_env": "D"}
    for via in ("file", "fd"):
        delivery = token_delivery(via, token, bubblewrap=True, **kw)
        assert all(token not in value for value in delivery.env.values())
        assert delivery.inputs == {TOKEN_FD: token.encode()}
    assert token_delivery("env", token, bubblewrap=True, **kw).env == {"T": token}


def test_resolve_profile() -> None:
    """auto picks bubblewrap when bwrap is found, none otherwise; a named
    profile without its tool, or systemd-run off systemd, is refused."""
    assert resolve_profile("auto", TOOLS, systemd=False) == "bubblewrap"
    no_bwrap = Tools(setpriv="/usr/bin/setpriv", prlimit="/usr/bin/prlimit")
    assert resolve_profile("auto", no_bwrap, systemd=False) == "none"
    with pytest.raises(SandboxError, match="bubblewrap"):
        resolve_profile("bubblewrap", no_bwrap, systemd=False)
    with pytest.raises(SandboxError, match="PID 1 is not systemd"):
        resolve_profile("systemd-run", TOOLS, systemd=False)
    assert resolve_profile("systemd-run", TOOLS, systemd=True) == "systemd-run"


def test_root_without_sandbox_or_uid_is_refused_unless_explicit() -> None:
    """Root, no sandbox, no uid: refused; explicit none, a uid, bubblewrap or
    a non-root broker: allowed."""
    refused = root_refusal(euid=0, requested="auto", profile="none", has_uid=False)
    assert refused is not None and 'child_sandbox = "none"' in refused
    assert root_refusal(euid=0, requested="none", profile="none", has_uid=False) is None
    assert root_refusal(euid=0, requested="auto", profile="none", has_uid=True) is None
    assert (
        root_refusal(euid=0, requested="auto", profile="bubblewrap", has_uid=False)
        is None
    )
    assert (
        root_refusal(euid=1000, requested="auto", profile="none", has_uid=False) is None
    )
