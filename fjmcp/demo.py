# -*- test-case-name: tests.test_demo -*-
"""
``fjmcp demo`` (and ``make run``): try fjmcp in one command, on this machine.

One reactor runs, on loopback only:

- the **stand-in Forgejo** (`fjmcp.standin`, a fake) with a demo user and the
  broker's OAuth2 application registered at it, on a second port;
- the **broker**, the same service tree as ``twistd fjmcp``, on
  http://127.0.0.1:8080, whose child is ``python -m fjmcp.demo_child``
  (tools ``whoami`` and ``echo``), with MCP Inspector's origin allowed.

Its state lives under ``./var/demo/``: a demo configuration, a generated
token key file and Forgejo client secret (mode 0600), the demo password
(kept across runs) and the SQLite store. The store starts empty on every
run, because the stand-in forgets every token it issued when it stops.

It prints the MCP URL, the demo login and password, and how to connect MCP
Inspector or an SDK client; Ctrl-C or SIGTERM stops both servers and every
child. A non-loopback ``--host`` is refused before anything starts. This is
the only module besides the stand-in's own command that imports the
stand-in, and ``fjmcp.cli`` imports it only when ``demo`` is asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from attrs import define, frozen

from fjmcp.awaitables import maybe_await
from fjmcp.config import is_loopback_host

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort

    from fjmcp.config import Config
    from fjmcp.service import BrokerService
    from fjmcp.standin.app import StandinConfig, StandinForgejo
    from fjmcp.wiring import IBrokerReactor

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_READ_ONLY_CLIENT_ID",
    "DemoError",
    "DemoOptions",
    "DemoState",
    "RunningDemo",
    "banner",
    "demo_config_text",
    "main",
    "parser",
    "prepare_state",
    "standin_config",
    "start_demo",
]

DEMO_CLIENT_ID: Final = "fjmcp-demo"
#: The second application at the stand-in, through which read-only grants
#: are made (Forgejo keeps one grant per user and application).
DEMO_READ_ONLY_CLIENT_ID: Final = "fjmcp-demo-read-only"
#: What a read-only grant may do at the stand-in (as at Forgejo 9.0+).
DEMO_READ_ONLY_SCOPES: Final = (
    "read:repository",
    "read:issue",
    "read:user",
    "read:organization",
)
#: MCP Inspector's web UI, which talks to the broker from the browser.
INSPECTOR_ORIGINS: Final = ("http://localhost:6274", "http://127.0.0.1:6274")
STORE_NAME: Final = "fjmcp.sqlite3"


class DemoError(Exception):
    """The demo cannot run as asked (the message says why)."""


@frozen
class DemoOptions:
    """What ``fjmcp demo`` was asked for, checked."""

    host: str = "127.0.0.1"
    port: int = 8080
    forgejo_port: int = 8081
    state_dir: Path = Path("var/demo")
    user: str = "demo"
    password: str | None = None
    token_lifetime: int = 3600
    log_level: str = "info"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        """Check parsed arguments; `DemoError` names every problem."""
        problems = []
        if not is_loopback_host(args.host):
            problems.append(
                f"--host {args.host!r} is not a loopback address: the demo (and its "
                "stand-in Forgejo, which knows a password everyone can read) "
                "only listens on this machine"
            )
        if not 0 < args.port < 65536:
            problems.append(f"--port {args.port} is not a TCP port (1-65535)")
        if not 0 <= args.forgejo_port < 65536:
            problems.append(f"--forgejo-port {args.forgejo_port} is not 0-65535")
        if args.port == args.forgejo_port:
            problems.append("--port and --forgejo-port must differ")
        if not args.user or ":" in args.user or not args.user.isprintable():
            problems.append(f"--user {args.user!r} is not a usable login")
        if args.token_lifetime <= 0:
            problems.append("--token-lifetime must be positive")
        if problems:
            raise DemoError("; ".join(problems))
        return cls(
            host=args.host,
            port=args.port,
            forgejo_port=args.forgejo_port,
            state_dir=Path(args.state_dir),
            user=args.user,
            password=os.environ.get("FJMCP_DEMO_PASSWORD") or None,
            token_lifetime=args.token_lifetime,
            log_level=args.log_level,
        )

    @property
    def bind_address(self) -> str:
        """The loopback address both servers bind (``localhost`` is 127.0.0.1)."""
        host = self.host.strip("[]")
        return "127.0.0.1" if host.lower() == "localhost" else host

    @property
    def public_url(self) -> str:
        """Where the broker is reached."""
        address = self.bind_address
        netloc = f"[{address}]" if ":" in address else address
        return f"http://{netloc}:{self.port}"


@frozen
class DemoState:
    """The files under the state directory, made ready by `prepare_state`."""

    state_dir: Path
    password: str
    client_secret: str

    @property
    def store_path(self) -> Path:
        """The broker's SQLite store."""
        return self.state_dir / STORE_NAME

    @property
    def key_file(self) -> Path:
        """The token key file (mode 0600)."""
        return self.state_dir / "token-keys"

    @property
    def client_secret_file(self) -> Path:
        """The broker's client secret at the stand-in (mode 0600)."""
        return self.state_dir / "forgejo-client-secret"

    @property
    def password_file(self) -> Path:
        """The demo user's password (mode 0600), kept across runs."""
        return self.state_dir / "demo-password"

    @property
    def config_path(self) -> Path:
        """The generated broker configuration."""
        return self.state_dir / "demo.toml"


def parser() -> argparse.ArgumentParser:
    """The command line of ``fjmcp demo``."""
    p = argparse.ArgumentParser(
        prog="fjmcp demo",
        description="Try fjmcp on this machine: a stand-in Forgejo (a fake) with a "
        "demo user, and the broker with a small demo MCP server as its child, "
        "both on loopback. Ctrl-C stops everything.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="Loopback address (default 127.0.0.1)."
    )
    p.add_argument(
        "--port", type=int, default=8080, help="The broker's port (default 8080)."
    )
    p.add_argument(
        "--forgejo-port",
        type=int,
        default=8081,
        help="The stand-in Forgejo's port (default 8081; 0: any free port).",
    )
    p.add_argument(
        "--state-dir",
        default="var/demo",
        help="Where the demo keeps its files (default ./var/demo).",
    )
    p.add_argument("--user", default="demo", help="The demo login (default demo).")
    p.add_argument(
        "--token-lifetime",
        type=int,
        default=3600,
        metavar="S",
        help="Lifetime of the stand-in's Forgejo tokens (default 3600 s).",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warn", "error", "critical"],
        help="The broker's log level (default info; logs go to stderr).",
    )
    p.epilog = (
        "The demo password is generated once and kept in STATE_DIR/demo-password; "
        "FJMCP_DEMO_PASSWORD sets another."
    )
    return p


# --- state --------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_private(path: Path) -> str | None:
    """A small private file's text, or None if it is missing or open to others."""
    try:
        if path.stat().st_mode & 0o077:
            return None
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _remove_store(store_path: Path) -> None:
    """
    Remove the last run's store (the stand-in has forgotten its tokens); the
    caller holds the store's lock.
    """
    for candidate in store_path.parent.glob(store_path.name + "*"):
        if candidate.name != store_path.name + ".lock" and candidate.is_file():
            candidate.unlink()


def prepare_state(options: DemoOptions) -> DemoState:
    """
    Make the state directory ready: private files (key file, client secret,
    password), an empty store, and the directory itself mode 0700. Nothing
    is written while another broker holds the store (`DemoError`).
    """
    from fjmcp.store.lock import StoreLock

    state_dir = options.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise DemoError(f"cannot create {state_dir}: {e.strerror}") from e
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise DemoError(f"{state_dir} is not writable")
    # A running demo (or any broker) on this state holds the store's lock:
    # then touch nothing, not even the client secret or password it uses.
    store_path = state_dir / STORE_NAME
    try:
        lock = StoreLock.acquire(str(store_path))
    except Exception as e:
        raise DemoError(f"the demo state in {state_dir} is in use: {e}") from e
    try:
        return _prepare_locked_state(options, store_path)
    finally:
        lock.release()


def _prepare_locked_state(options: DemoOptions, store_path: Path) -> DemoState:
    """`prepare_state`, once the store's lock is held."""
    from fjmcp.oauth.keys import load_keyring, prepend_new_key

    state_dir = options.state_dir
    key_file = state_dir / "token-keys"
    try:
        load_keyring(key_file)
    except Exception:
        # Missing, unreadable or open to others: the demo makes a fresh one.
        key_file.unlink(missing_ok=True)
        prepend_new_key(key_file)

    password_file = state_dir / "demo-password"
    password = options.password or _read_private(password_file)
    if password is None:
        password = secrets.token_urlsafe(9)
    _write_private(password_file, password + "\n")

    client_secret = secrets.token_urlsafe(32)
    _write_private(state_dir / "forgejo-client-secret", client_secret + "\n")
    _remove_store(store_path)
    return DemoState(state_dir, password, client_secret)


def standin_config(options: DemoOptions, state: DemoState) -> StandinConfig:
    """The stand-in's users and the broker's application registered at it."""
    from fjmcp.standin.app import StandinClient, StandinConfig, StandinUser

    return StandinConfig(
        users=(
            StandinUser(
                options.user,
                state.password,
                full_name="Demo User",
                email=f"{options.user}@example.invalid",
            ),
        ),
        clients=(
            StandinClient(
                DEMO_CLIENT_ID,
                state.client_secret,
                (options.public_url + "/oauth/callback",),
            ),
            StandinClient(
                DEMO_READ_ONLY_CLIENT_ID,
                state.client_secret,
                (options.public_url + "/oauth/callback",),
            ),
        ),
        token_lifetime=options.token_lifetime,
    )


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def demo_config_text(options: DemoOptions, state: DemoState, forgejo_url: str) -> str:
    """The broker's configuration for the demo, as TOML."""
    address = options.bind_address
    listen = f"tcp:{options.port}:interface={address.replace(':', chr(92) + ':')}"
    lines = [
        "# Generated by `fjmcp demo` at every start; edits are overwritten.",
        f"public_url = {_toml(options.public_url)}",
        f"listen = {_toml(listen)}",
        f"forgejo_url = {_toml(forgejo_url)}",
        f"forgejo_client_id = {_toml(DEMO_CLIENT_ID)}",
        "forgejo_client_secret_file = "
        + _toml(str(state.client_secret_file.resolve())),
        "# Read-only consents get a grant of their own at the stand-in, which",
        "# refuses its token every write (as Forgejo 9.0+ does).",
        f"forgejo_scopes_read_only = {_toml(list(DEMO_READ_ONLY_SCOPES))}",
        f"forgejo_ro_client_id = {_toml(DEMO_READ_ONLY_CLIENT_ID)}",
        "forgejo_ro_client_secret_file = "
        + _toml(str(state.client_secret_file.resolve())),
        f"child_command = {_toml([sys.executable, '-m', 'fjmcp.demo_child'])}",
        *demo_isolation_lines(),
        f"store_path = {_toml(str(state.store_path.resolve()))}",
        f"token_keys_file = {_toml(str(state.key_file.resolve()))}",
        f"allowed_origins = {_toml(list(INSPECTOR_ORIGINS))}",
        f"log_level = {_toml(options.log_level)}",
        "",
    ]
    return "\n".join(lines)


def demo_isolation_lines() -> list[str]:
    """
    The strongest confinement this machine allows for the demo's children:
    bubblewrap when ``bwrap`` can make its namespaces (with a systemd-run
    scope under systemd), else an explicit ``none`` (a root demo would
    otherwise be refused); the token on a descriptor either way (the demo
    child reads it there), and the package readable inside.
    """
    from fjmcp.supervisor.sandbox import find_tools
    from fjmcp.supervisor.startup import probe_bubblewrap, under_systemd

    package = str(Path(__file__).resolve().parent)
    tools = find_tools()
    profile = "none"
    if tools.bwrap and probe_bubblewrap(tools, None) is None:
        profile = "bubblewrap"
        if tools.systemd_run and under_systemd():
            profile = "bubblewrap+systemd-run"
    return [
        f"child_sandbox = {_toml(profile)}",
        f"child_sandbox_binds = {_toml([package])}",
        'child_token_via = "fd"',
    ]


# --- running ------------------------------------------------------------------


@define
class RunningDemo:
    """The two servers of a started demo."""

    options: DemoOptions
    state: DemoState
    config: Config
    standin: StandinForgejo
    standin_port: IListeningPort
    service: BrokerService
    _stopped: bool = False

    @property
    def mcp_url(self) -> str:
        """Where MCP clients connect."""
        return self.config.mcp_url

    async def stop(self) -> None:
        """Stop the broker (children included), then the stand-in."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.service.stopService()
        finally:
            await maybe_await(self.standin_port.stopListening())


async def start_demo(
    reactor: IBrokerReactor,
    options: DemoOptions,
    *,
    handle_signals: bool = True,
    on_failed_start: Callable[[int], None] | None = None,
) -> RunningDemo:
    """
    Prepare the state, start the stand-in, then the broker; fires once both
    listen. `DemoError` when the state or a port cannot be had.

    :param on_failed_start: told the exit status when the broker fails to
        start (it has then asked the reactor to stop, see `BrokerService`).
    """
    from fjmcp.config import ConfigError, load_config
    from fjmcp.logs import register_config_secrets
    from fjmcp.service import build_service
    from fjmcp.standin.app import start_standin

    state = prepare_state(options)
    try:
        standin, standin_port = await start_standin(
            reactor,
            standin_config(options, state),
            host=options.bind_address,
            port=options.forgejo_port,
        )
    except Exception as e:
        from fjmcp.listening import listen_failure

        raise DemoError(listen_failure("the stand-in Forgejo", e)) from e
    try:
        state.config_path.write_text(
            demo_config_text(options, state, standin.base_url), encoding="utf-8"
        )
        try:
            config = load_config(state.config_path, environ={"PATH": os.defpath})
        except ConfigError as e:
            raise DemoError(e.render()) from e
        register_config_secrets(config)
        service = build_service(
            config,
            reactor,
            handle_signals=handle_signals,
            on_failed_start=on_failed_start,
        )
        service.startService()
        try:
            await service.ready
        except Exception as e:
            await service.stopService()
            raise DemoError(f"the broker cannot start: {e}") from e
    except BaseException:
        await maybe_await(standin_port.stopListening())
        raise
    return RunningDemo(options, state, config, standin, standin_port, service)


def _sandbox_note(profile: str) -> str:
    if profile == "none":
        return "  (no sandbox here: install bubblewrap; docs/isolation.md)"
    return "  (the strongest profile this machine allows; docs/isolation.md)"


def banner(demo: RunningDemo) -> str:
    """What the demo prints once it runs: where, who, and how to connect."""
    o = demo.options
    sandbox = demo.config.child_sandbox
    return f"""
fjmcp demo is running (on this machine only).

  MCP URL:          {demo.mcp_url}
  Forgejo:          {demo.standin.base_url}  (a stand-in: a fake, for demos)
  Demo login:       {o.user}
  Demo password:    {demo.state.password}
  State:            {o.state_dir}/ (the store starts empty on every run)
  Child sandbox:    {sandbox}{_sandbox_note(sandbox)}

Connect MCP Inspector (needs Node 22 or newer):
  1. npx @modelcontextprotocol/inspector      (opens http://localhost:6274)
  2. Transport Type: Streamable HTTP, URL: {demo.mcp_url}; Connect
  3. Allow the client on fjmcp's consent page, then sign in at the stand-in
     Forgejo as {o.user} with the password above
  4. Tools: call whoami -> "{o.user}" (the child asked Forgejo with the
     token the broker gave it); echo answers its text

Or an SDK client (Python `mcp`, TypeScript `@modelcontextprotocol/sdk`)
with OAuth: give it {demo.mcp_url}; it finds the broker's OAuth server
and registers itself; your app opens the authorization URL in a browser
(allow, then sign in as {o.user}) and takes the code from its redirect URI
(see docs/connect.md and tests/e2e/sdk_client.py).

Press Ctrl-C to stop.
"""


def main(argv: list[str]) -> int:
    """Run the demo until Ctrl-C or SIGTERM; the exit status."""
    args = parser().parse_args(argv)
    try:
        options = DemoOptions.from_args(args)
    except DemoError as e:
        print(f"fjmcp demo: {e}", file=sys.stderr)
        return 2

    from twisted.internet.defer import Deferred
    from twisted.internet.error import ReactorNotRunning
    from twisted.logger import Logger

    from fjmcp.logs import make_observer
    from fjmcp.service import installed_reactor

    reactor = installed_reactor()
    outcome = {"status": 0}
    running: list[RunningDemo] = []

    def stop_reactor() -> None:
        if reactor.running:
            try:
                reactor.stop()
            except ReactorNotRunning:  # already stopping
                return

    def failed(status: int) -> None:
        outcome["status"] = status

    async def start() -> None:
        try:
            demo = await start_demo(reactor, options, on_failed_start=failed)
        except DemoError as e:
            print(f"fjmcp demo: {e}", file=sys.stderr)
            outcome["status"] = outcome["status"] or 1
            stop_reactor()
            return
        except Exception:
            # A bug, not a situation: say so with the traceback, and stop.
            Logger().failure("fjmcp demo: cannot start")
            outcome["status"] = outcome["status"] or 1
            stop_reactor()
            return
        running.append(demo)
        out: IO[str] = sys.stdout
        out.write(banner(demo))
        out.flush()

    async def shutdown() -> None:
        if running:
            await running[0].stop()
            outcome["status"] = outcome["status"] or running[0].service.exit_status

    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo(
        [make_observer("text", options.log_level, sys.stderr)],
        redirectStandardIO=False,
    )
    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()))
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(shutdown())
    )
    reactor.run()
    return outcome["status"]
