# -*- test-case-name: tests.test_config -*-
"""
The broker's configuration: one frozen value built from TOML < env < flags.

Every setting is declared once, as an attrs field whose metadata carries its
kind, help text and whether it is a secret; the TOML reader, the ``FJMCP_*``
environment reader, the command-line options and ``check-config`` are all
derived from that one declaration, so a key cannot exist in one and not in
another.
"""

from __future__ import annotations

import functools
import grp
import ipaddress
import json
import os
import pwd
import re
import shlex
import shutil
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
from attrs import field, frozen

from fjmcp.policy.rules import PolicyConfig, parse_policy
from fjmcp.store.target import StoreTarget, StoreUrlError, parse_store_url, sqlite_url

__all__ = [
    "ChildLimits",
    "Config",
    "CONFIG_ENV",
    "CONFIG_OPTION",
    "ConfigError",
    "FrozenTable",
    "ENV_PREFIX",
    "SettingOption",
    "SECRET_MASK",
    "config_fields",
    "env_name",
    "flag_name",
    "default_text",
    "is_loopback_host",
    "load_config",
    "option_help",
    "render_example",
    "secret_file_keys",
    "setting_options",
]

ENV_PREFIX: Final = "FJMCP_"
#: Names the configuration file when ``--config`` is not given.
CONFIG_ENV: Final = ENV_PREFIX + "CONFIG"
SECRET_MASK: Final = "********"  # noqa: S105 - the mask, not a secret
MIB: Final = 1024 * 1024
MINUTE: Final = 60.0
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
AF_UNIX_PATH_MAX: Final = 107

#: The longest node id: it prefixes every session id.
NODE_ID_MAX: Final = 32
_NODE_ID: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,31})")


@frozen(kw_only=True)
class ChildLimits:
    """
    Resource limits of one child (0: no limit): bytes of memory (a cgroup's
    or systemd's, counting what the child really uses), bytes of address
    space (``RLIMIT_AS``: a blunt fallback where no cgroup may be written;
    Go and Node reserve far more than they use), seconds of CPU time,
    percent of one CPU (systemd-run only), open files, processes.
    """

    memory: int = 0
    address_space: int = 0
    cpu_seconds: int = 0
    cpu_percent: int = 0
    open_files: int = 0
    processes: int = 0

    @classmethod
    def from_table(cls, table: Any) -> ChildLimits:
        """From a TOML table or JSON object; `ValueError` names a bad key."""
        if isinstance(table, ChildLimits):
            return table
        if not isinstance(table, dict):
            raise ValueError("must be a table such as {memory = 1073741824}")
        known = {f.name for f in attrs.fields(cls)}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"unknown limit {key!r} (known: {sorted(known)})")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"limit {key} must be a whole number >= 0")
        return cls(**table)

    def as_table(self) -> dict[str, int]:
        """The limits as a plain mapping (example file, ``check-config``)."""
        return attrs.asdict(self)


class FrozenTable(dict[str, Any]):
    """
    A setting that is a TOML table (``known_clients``): a dict that hashes
    by its JSON form, so `Config` stays a hashable value. Nobody changes it
    after loading.
    """

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, default=str))


class ConfigError(Exception):
    """
    The configuration cannot be used; ``problems`` lists every reason at once.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """One message naming every problem, for an operator to fix in one go."""
        lines = [f"fjmcp: invalid configuration ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _setting(
    default: Any = attrs.NOTHING,
    *,
    kind: str,
    help: str,
    secret: bool = False,
    positive: bool = False,
) -> Any:
    """Declare one setting: its kind drives parsing from env, flags and TOML."""
    meta = {"kind": kind, "help": help, "secret": secret, "positive": positive}
    # A secret never shows in a repr: a Config reaches log events as part of
    # the objects that hold it (``log_source``), tracebacks and test output.
    shown: Any = _masked_repr if secret else True
    if isinstance(default, list | dict):
        frozen_default = tuple(default) if isinstance(default, list) else default
        return field(default=frozen_default, metadata=meta, repr=shown)
    return field(default=default, metadata=meta, repr=shown)


def _masked_repr(value: object) -> str:
    return repr(SECRET_MASK) if value else repr(value)


@frozen(kw_only=True)
class Config:
    """
    The effective configuration of one broker process.

    Durations are seconds (floats), sizes are bytes. Lists are tuples so the
    value stays hashable and immutable.
    """

    # --- where the broker is and who it is --------------------------------
    public_url: str = _setting(
        kind="url",
        help="Origin the broker is reached at (issuer and resource base; "
        "https, or http on a loopback host; no path). MCP lives at <public_url>/mcp.",
    )
    listen: str = _setting(
        "tcp:8080:interface=127.0.0.1",
        kind="str",
        help="Twisted server endpoint string to listen on "
        "(e.g. systemd:domain=INET:index=0 for socket activation).",
    )
    display_name: str = _setting(
        "fjmcp",
        kind="str",
        help="This broker's name as users see it on the consent page.",
    )
    metrics_listen: str = _setting(
        "",
        kind="str",
        help="Twisted endpoint for GET /metrics (Prometheus), apart from listen "
        "and never public, e.g. tcp:9464:interface=127.0.0.1 (empty: no metrics). "
        "A tcp endpoint must name its interface=.",
    )
    # --- upstream Forgejo --------------------------------------------------
    forgejo_url: str = _setting(kind="url", help="Base URL of the Forgejo instance.")
    forgejo_client_id: str = _setting(
        kind="str", help="Client id of the OAuth2 application registered at Forgejo."
    )
    forgejo_client_secret: str = _setting(
        kind="str",
        secret=True,
        help="Client secret of that application (or forgejo_client_secret_file).",
    )
    forgejo_scopes: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Scopes asked of Forgejo for full-access grants (empty: Forgejo's "
        "default, everything the user may do).",
    )
    forgejo_scopes_read_only: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Scopes asked of Forgejo for read-only grants, e.g. read:repository "
        "read:issue read:user read:organization (empty: read-only grants share the "
        "full-access grant). Needs forgejo_ro_client_id: Forgejo keeps one "
        "grant per user and application. See docs/policy.md.",
    )
    forgejo_ro_client_id: str = _setting(
        "",
        kind="str",
        help="Client id of a second OAuth2 application at Forgejo, through which "
        "read-only grants are made (with forgejo_scopes_read_only).",
    )
    forgejo_ro_client_secret: str = _setting(
        "",
        kind="str",
        secret=True,
        help="Client secret of that application (or forgejo_ro_client_secret_file).",
    )
    forgejo_timeout: float = _setting(
        10.0, kind="float", positive=True, help="Timeout for each call to Forgejo."
    )
    # --- children -----------------------------------------------------------
    child_command: tuple[str, ...] = _setting(
        kind="argv",
        help="The stdio MCP server to run per session (TOML array, or a string "
        "split like a shell would; never run through a shell).",
    )
    child_wrapper: tuple[str, ...] = _setting(
        [], kind="argv", help="Optional argv prefix put before child_command."
    )
    child_user: str | None = _setting(
        None, kind="optstr", help="Run children as this user (needs CAP_SETUID)."
    )
    child_group: str | None = _setting(
        None, kind="optstr", help="Run children with this group (needs CAP_SETGID)."
    )
    child_env_passthrough: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Names of the broker's environment variables a child may see "
        "(never FJMCP_* ones, nor child_token_env or child_url_env, which the "
        "broker sets).",
    )
    child_token_env: str = _setting(
        "FORGEJO_ACCESS_TOKEN",
        kind="str",
        help="Variable that carries the user's Forgejo token into the child.",
    )
    child_url_env: str = _setting(
        "FORGEJO_URL",
        kind="str",
        help="Variable that carries forgejo_url into the child.",
    )
    max_children: int = _setting(
        256,
        kind="int",
        positive=True,
        help="Most children alive at once (503 past it).",
    )
    max_children_per_user: int = _setting(
        32, kind="int", positive=True, help="Most children of one user (429 past it)."
    )
    max_concurrent_spawns: int = _setting(
        0,
        kind="int",
        help="Most new children starting at once (until their first line); "
        "later starts queue. 0: four per core.",
    )
    max_line_bytes: int = _setting(
        16 * MIB,
        kind="int",
        positive=True,
        help="Longest JSON-RPC line a child may write to stdout.",
    )
    child_stop_grace: float = _setting(
        3.0, kind="float", positive=True, help="Seconds from SIGTERM to SIGKILL."
    )
    child_drain_timeout: float = _setting(
        120.0,
        kind="float",
        positive=True,
        help="How long requests in flight may finish on a child being replaced.",
    )
    child_sandbox: str = _setting(
        "auto",
        kind="choice:auto,none,bubblewrap,systemd-run,bubblewrap+systemd-run",
        help="How children are confined (docs/isolation.md). auto: bubblewrap "
        "when bwrap is installed, else none with a warning; none must be "
        "written explicitly for a root broker with no child_user or "
        "child_uid_range.",
    )
    child_sandbox_binds: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Absolute paths bubblewrap shows children read-only, besides "
        "/usr, /etc and the directories child_command names.",
    )
    child_uid_range: tuple[int, ...] = _setting(
        [],
        kind="range",
        help="[first, count]: give each Forgejo user a uid of their own from "
        "this range, kept in the store (needs CAP_SETUID/CAP_SETGID).",
    )
    child_token_via: str = _setting(
        "env",
        kind="choice:env,file,fd",
        help="How the token reaches the child: env (child_token_env, weakest), "
        "file (a 0600 file named by child_token_file_env), fd (an inherited "
        "pipe whose number is in child_token_fd_env).",
    )
    child_token_file_env: str = _setting(
        "FORGEJO_TOKEN_FILE",
        kind="str",
        help="With child_token_via = file: the variable naming the token file.",
    )
    child_token_fd_env: str = _setting(
        "FORGEJO_TOKEN_FD",
        kind="str",
        help="With child_token_via = fd: the variable holding the descriptor.",
    )
    child_limits: ChildLimits = _setting(
        ChildLimits(memory=2048 * MIB, open_files=1024, processes=256),
        kind="limits",
        help="Resource limits per child (0: none): memory (bytes, cgroup or "
        "systemd), address_space (bytes, RLIMIT_AS), cpu_seconds, cpu_percent "
        "(systemd-run), open_files, processes (docs/isolation.md).",
    )
    child_runtime_dir: str | None = _setting(
        None,
        kind="optpath",
        help="Where live children are recorded, so a restarted broker stops "
        "any a crash left (default: children beside the store).",
    )
    identity_child_max_in_flight: int = _setting(
        64,
        kind="int",
        positive=True,
        help="Most stateless (2026-07-28) requests in flight on one identity's "
        "child (429 past it).",
    )
    held_call_timeout: float = _setting(
        300.0,
        kind="float",
        positive=True,
        help="How long a stateless call waiting for the client's input (sampling, "
        "elicitation, roots) is held before it is cancelled at the child; also "
        "the lifetime of its requestState.",
    )
    max_held_calls_per_identity: int = _setting(
        16,
        kind="int",
        positive=True,
        help="Stateless calls of one identity that may wait for input at once.",
    )
    stateless_cache_ttl_ms: int = _setting(
        0,
        kind="int",
        help="ttlMs on the cacheable results of stateless (2026-07-28) requests "
        "(0: clients must not reuse them).",
    )
    # --- store and keys -----------------------------------------------------
    store_path: str = _setting(
        "/var/lib/fjmcp/fjmcp.sqlite3", kind="path", help="SQLite database file."
    )
    store_url: str = _setting(
        "",
        kind="str",
        help="Where the store lives: sqlite:///path/to/file or postgresql://user@"
        "host/db (several nodes); empty: sqlite:// with store_path.",
    )
    store_password_file: str | None = _setting(
        None,
        kind="optpath",
        help="File holding the PostgreSQL password (kept out of store_url).",
    )
    store_pool_size: int = _setting(
        4,
        kind="int",
        positive=True,
        help="Most connections the daemon holds to PostgreSQL (SQLite uses one).",
    )
    node_id: str = _setting(
        "",
        kind="str",
        help="This node's name among several on one store (letters, digits, -): "
        "the prefix of its session ids and its name in sealed requestState, so "
        "a retry reaching another node is told where its call is held; empty: "
        "the host name.",
    )
    revocation_propagation: float = _setting(
        30.0,
        kind="float",
        positive=True,
        help="Longest a node trusts a cached bearer token after it was revoked "
        "on another node (PostgreSQL notifications are faster).",
    )
    token_keys_file: str | None = _setting(
        None,
        kind="optpath",
        help="AES-GCM key file sealing Forgejo tokens (default: token-keys beside "
        "the store).",
    )
    admin_socket: str | None = _setting(
        None,
        kind="optpath",
        help="Unix socket for `fjmcp admin` (default: admin.sock beside the store).",
    )
    # --- sessions and streams ----------------------------------------------
    session_idle_timeout: float = _setting(
        30 * MINUTE, kind="float", positive=True, help="Idle sessions end after this."
    )
    reaper_interval: float = _setting(
        30.0,
        kind="float",
        positive=True,
        help="How often idle sessions are looked for.",
    )
    stream_resume_window: float = _setting(
        60.0,
        kind="float",
        positive=True,
        help="How long a dropped stream's replay buffer is kept for Last-Event-ID.",
    )
    sse_keepalive_interval: float = _setting(
        15.0, kind="float", positive=True, help="SSE comment interval on idle streams."
    )
    stream_buffer_bytes: int = _setting(
        4 * MIB,
        kind="int",
        positive=True,
        help="Bytes a slow stream may have unsent before it is closed.",
    )
    stream_write_deadline: float = _setting(
        30.0,
        kind="float",
        positive=True,
        help="Seconds a stream may stay over its buffer cap before it is closed.",
    )
    # --- OAuth --------------------------------------------------------------
    access_token_ttl: float = _setting(
        HOUR, kind="float", positive=True, help="Lifetime of broker access tokens."
    )
    refresh_token_ttl: float = _setting(
        30 * DAY, kind="float", positive=True, help="Lifetime of broker refresh tokens."
    )
    auth_code_ttl: float = _setting(
        600.0, kind="float", positive=True, help="Lifetime of authorization codes."
    )
    known_clients: Mapping[str, Any] = _setting(
        FrozenTable(),
        kind="table",
        help="Known-client records by client metadata document URL, over the "
        "shipped ones (Claude.ai, Claude Code, ChatGPT): a table of document "
        "fields overrides a record field by field or adds one; enabled = false "
        "disables one. See docs/connect.md.",
    )
    client_document_timeout: float = _setting(
        5.0,
        kind="float",
        positive=True,
        help="Seconds to fetch a client metadata document or JWKS, in all.",
    )
    client_document_max_bytes: int = _setting(
        64 * 1024,
        kind="int",
        positive=True,
        help="Largest client metadata document or JWKS fetched.",
    )
    client_document_cache_min: float = _setting(
        300.0,
        kind="float",
        positive=True,
        help="Fetched client documents are cached at least this long.",
    )
    client_document_cache_max: float = _setting(
        DAY,
        kind="float",
        positive=True,
        help="Fetched client documents are cached at most this long.",
    )
    client_document_cache_entries: int = _setting(
        1000,
        kind="int",
        positive=True,
        help="Most client documents (and JWKS) cached at once.",
    )
    client_document_negative_ttl: float = _setting(
        60.0,
        kind="float",
        positive=True,
        help="How long a client document that could not be used is not fetched again.",
    )
    refresh_reuse_grace: float = _setting(
        30.0,
        kind="float",
        help="A refresh token retried within this many seconds gets the same "
        "answer again (0: any reuse revokes the grant).",
    )
    client_retention: float = _setting(
        30 * DAY,
        kind="float",
        positive=True,
        help="Registered clients without live tokens, unused this long, are purged.",
    )
    # --- Forgejo token upkeep ----------------------------------------------
    refresh_interval: float = _setting(
        60.0, kind="float", positive=True, help="How often Forgejo tokens are checked."
    )
    refresh_margin: float = _setting(
        120.0,
        kind="float",
        positive=True,
        help="Refresh a Forgejo token that expires within this many seconds.",
    )
    user_check_interval: float = _setting(
        300.0,
        kind="float",
        positive=True,
        help="Per user with live sessions, how often Forgejo /api/v1/user is asked.",
    )
    # --- HTTP ---------------------------------------------------------------
    max_request_bytes: int = _setting(
        4 * MIB, kind="int", positive=True, help="Largest request body accepted (413)."
    )
    request_timeout: float = _setting(
        60.0,
        kind="float",
        positive=True,
        help="Seconds a client may take to send a request (slow clients are cut).",
    )
    shutdown_timeout: float = _setting(
        10.0,
        kind="float",
        positive=True,
        help="On SIGTERM, the most time before every child is stopped and reaped.",
    )
    drain_health_grace: float = _setting(
        0.0,
        kind="float",
        help="On SIGTERM, seconds /healthz answers 503 before the port closes "
        "(behind a balancer: longer than its check interval times fall).",
    )
    allowed_origins: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Browser origins allowed besides public_url's (Origin check and CORS).",
    )
    # --- rate limits (per node: behind N nodes they multiply) ----------------
    trusted_proxies: tuple[str, ...] = _setting(
        [],
        kind="list",
        help="Addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For names the client for the rate limits.",
    )
    rate_limit_authorize: float = _setting(
        60.0,
        kind="float",
        positive=True,
        help="/oauth/authorize requests per minute per client IP (429 past it).",
    )
    rate_limit_token: float = _setting(
        120.0,
        kind="float",
        positive=True,
        help="/oauth/token requests per minute per confidential client, or per "
        "public client and IP.",
    )
    rate_limit_token_failures: float = _setting(
        30.0,
        kind="float",
        positive=True,
        help="Failed /oauth/token requests per minute per client IP.",
    )
    rate_limit_token_global: float = _setting(
        6000.0,
        kind="float",
        positive=True,
        help="/oauth/token requests per minute in all.",
    )
    rate_limit_register: float = _setting(
        600.0,
        kind="float",
        positive=True,
        help="/oauth/register requests per minute per client IP (clients "
        "register again on every connect).",
    )
    # --- logging ------------------------------------------------------------
    audit_log: str = _setting(
        "",
        kind="str",
        help="Audit log file (one JSON line per MCP request and OAuth grant, "
        "refresh, revocation and consent; rotated by size), - for standard "
        "output, empty for none.",
    )
    audit_log_rotate_bytes: int = _setting(
        16 * MIB,
        kind="int",
        positive=True,
        help="The audit file is rotated past this size (10 old files kept).",
    )
    log_format: str = _setting(
        "text", kind="choice:text,json", help="Log as text lines or one JSON per line."
    )
    log_level: str = _setting(
        "info",
        kind="choice:debug,info,warn,error,critical",
        help="Lowest level logged.",
    )
    # --- least privilege (a TOML table: keep it last) -------------------------
    policy: PolicyConfig = _setting(
        PolicyConfig(),
        kind="policy",
        help="The [policy] table: consent default, read-only judgement and "
        "allow/deny rules (docs/policy.md); a JSON object in env and flags.",
    )

    # --- derived values -----------------------------------------------------
    @property
    def mcp_url(self) -> str:
        """The protected resource: where MCP clients connect."""
        return self.public_url + "/mcp"

    @property
    def state_dir(self) -> Path:
        """The directory that holds the store (and by default the keys and socket)."""
        return Path(self.store_path).parent

    @property
    def node_name(self) -> str:
        """``node_id``, or this host's name (up to its first dot)."""
        return self.node_id or default_node_id()

    def store_target(self) -> StoreTarget:
        """
        The store to open: ``store_url``, or the SQLite file ``store_path``;
        the PostgreSQL password read from ``store_password_file``.
        """
        password = None
        if self.store_password_file:
            password = Path(self.store_password_file).read_text("utf-8").strip("\r\n")
        url = self.store_url or sqlite_url(self.store_path)
        return parse_store_url(url, password=password, pool_size=self.store_pool_size)

    @property
    def token_keys_path(self) -> Path:
        """The key file, explicit or beside the store."""
        if self.token_keys_file:
            return Path(self.token_keys_file)
        return self.state_dir / "token-keys"

    @property
    def admin_socket_path(self) -> Path:
        """The admin socket, explicit or beside the store."""
        if self.admin_socket:
            return Path(self.admin_socket)
        return self.state_dir / "admin.sock"

    @property
    def child_runtime_path(self) -> Path:
        """The children's records, explicit or beside the store."""
        if self.child_runtime_dir:
            return Path(self.child_runtime_dir)
        return self.state_dir / "children"

    @property
    def public_is_loopback(self) -> bool:
        """Whether public_url names a loopback host (DNS-rebinding rules apply)."""
        return is_loopback_host(urlsplit(self.public_url).hostname or "")

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for display."""
        out: dict[str, Any] = {}
        for f in config_fields():
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = SECRET_MASK
            elif isinstance(value, ChildLimits):
                value = value.as_table()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, PolicyConfig):
                value = value.as_table()
            out[f.name] = value
        return out


def config_fields() -> tuple[attrs.Attribute[Any], ...]:
    """Every setting, in declaration order."""
    return attrs.fields(Config)


def env_name(name: str) -> str:
    """The environment variable for a setting: ``FJMCP_PUBLIC_URL``."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """The command-line flag for a setting, without dashes: ``public-url``."""
    return name.replace("_", "-")


def default_text(f: attrs.Attribute[Any]) -> str:
    """A setting's default as shown in ``--help`` and the example file."""
    if f.default is attrs.NOTHING:
        return "required"
    if f.metadata["secret"]:
        return "(secret)"
    if f.default is None:
        return "unset"
    if isinstance(f.default, ChildLimits):
        return json.dumps(f.default.as_table())
    if isinstance(f.default, PolicyConfig):
        return "{}"
    value = list(f.default) if isinstance(f.default, tuple) else f.default
    return json.dumps(value)


def option_help(name: str) -> str:
    """A setting's ``--help`` line: its help, env name and default."""
    for f in config_fields():
        if f.name == name:
            extra = ""
            if f.metadata["kind"] in ("list", "argv"):
                extra = "; a JSON array"
            elif f.metadata["kind"] in ("table", "policy"):
                extra = "; a JSON object"
            if f.metadata["secret"]:
                extra += f"; or {env_name(name + _FILE_SUFFIX)} naming a file"
            return (
                f"{f.metadata['help']} [env {env_name(name)}{extra}; "
                f"default: {default_text(f)}]"
            )
    raise KeyError(name)


@frozen
class SettingOption:
    """One command-line option: a setting, a secret's file, or ``--config``."""

    name: str
    metavar: str
    help: str

    @property
    def flag(self) -> str:
        """The flag without dashes: ``public-url``."""
        return flag_name(self.name)


#: ``--config``: the TOML file (its short form ``-c`` is the parser's to add).
CONFIG_OPTION: Final = SettingOption(
    "config", "FILE", f"TOML configuration file [env {CONFIG_ENV}]."
)


def setting_options() -> tuple[SettingOption, ...]:
    """
    The command-line options of every setting and then of every secret's
    file, so ``fjmcp serve`` and ``twistd fjmcp`` offer the same ones.
    """
    return (
        *(SettingOption(f.name, "VALUE", option_help(f.name)) for f in config_fields()),
        *(
            SettingOption(
                key,
                "FILE",
                f"File holding {key.removesuffix(_FILE_SUFFIX)} [env {env_name(key)}].",
            )
            for key in secret_file_keys()
        ),
    )


#: Example values for required settings in ``fjmcp.toml.example``.
_EXAMPLES: Final[Mapping[str, str]] = {
    "public_url": '"https://mcp.example.org"',
    "forgejo_url": '"https://forgejo.example.org"',
    "forgejo_client_id": '"00000000-0000-0000-0000-000000000000"',
    "forgejo_client_secret": '"change-me"',
    "child_command": '["forgejo-mcp"]',
}


_POLICY_EXAMPLE: Final = [
    "# policy = {}",
    "# or, as a table:",
    "# [policy]",
    '# default_mode = "full"',
    '# full_access_forbidden = ["metadata-document"]',
    "# trust_child_annotations = true",
    "# read_only_tools = []",
    "# [[policy.rules]]",
    '# name = "no-repo-deletion"',
    '# effect = "deny"',
    '# tools = ["delete_repo"]',
]


def render_example() -> str:
    """
    The text of ``fjmcp.toml.example``: every setting with its help, env
    name and default, generated from the declaration (a test keeps the
    committed file in sync: ``fjmcp example-config > fjmcp.toml.example``).
    """
    out = [
        "# fjmcp configuration: every setting, with its environment variable and",
        "# default. Precedence: this file < FJMCP_* environment < command-line flags.",
        "# Lists are TOML arrays here and JSON arrays in the environment and flags.",
        "# Durations are seconds, sizes bytes. Required settings are uncommented",
        "# (with example values); the others show their defaults.",
    ]
    for f in config_fields():
        out.append("")
        words = str(f.metadata["help"]).split()
        line = "#"
        for word in words:
            if len(line) + 1 + len(word) > 78:
                out.append(line)
                line = "#"
            line += " " + word
        out.append(line)
        if f.metadata["secret"]:
            out.append(
                f"# env {env_name(f.name)}, or a file named by "
                f"{f.name}{_FILE_SUFFIX} / {env_name(f.name + _FILE_SUFFIX)}"
            )
        else:
            out.append(f"# env {env_name(f.name)}")
        if f.default is attrs.NOTHING:
            out.append(f"{f.name} = {_EXAMPLES.get(f.name, '...')}")
        elif f.default is None:
            out.append(f"# {f.name} =  (unset by default)")
        elif isinstance(f.default, ChildLimits):
            table = ", ".join(f"{k} = {v}" for k, v in f.default.as_table().items())
            out.append(f"# {f.name} = {{{table}}}")
        elif isinstance(f.default, PolicyConfig):
            out += _POLICY_EXAMPLE
        else:
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            out.append(f"# {f.name} = {json.dumps(default)}")
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str) -> bool:
    """
    True for localhost names and loopback addresses (v4 and v6); remembered
    for the last few hosts, as ``/mcp`` asks it of every request's Host.
    """
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- reading raw values --------------------------------------------------------

_FIELD_NAMES = frozenset(f.name for f in attrs.fields(Config))
_FILE_SUFFIX = "_file"


def _secret_file_keys() -> set[str]:
    return {f.name + _FILE_SUFFIX for f in attrs.fields(Config) if f.metadata["secret"]}


def secret_file_keys() -> list[str]:
    """Keys that name a file holding a secret (``forgejo_client_secret_file``)."""
    return sorted(_secret_file_keys())


def _parse_text(kind: str, text: str) -> Any:
    """Parse a value given as text (environment or flag) by its kind."""
    if kind == "table":
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return value
    if kind in ("list", "argv"):
        stripped = text.strip()
        if stripped.startswith("["):
            value = json.loads(stripped)
            if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value
            ):
                raise ValueError("must be a JSON array of strings")
            return value
        if kind == "argv":
            return shlex.split(text)
        raise ValueError("must be a JSON array of strings")
    if kind == "policy":
        return json.loads(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind in ("range", "limits"):
        return json.loads(text)
    return text


def _coerce(kind: str, value: Any) -> Any:
    """Check and normalise a value of any origin to its field's type."""
    if kind in ("list", "argv"):
        if isinstance(value, str):
            if kind == "argv":
                return tuple(shlex.split(value))
            raise ValueError("must be a list of strings")
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) for v in value
        ):
            raise ValueError("must be a list of strings")
        return tuple(value)
    if kind == "table":
        if not isinstance(value, dict):
            raise ValueError("must be a table")
        return FrozenTable(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        return value
    if kind == "range":
        return _coerce_range(value)
    if kind == "limits":
        return ChildLimits.from_table(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of seconds")
        return float(value)
    if kind == "policy":
        return parse_policy(value)
    if kind in ("optstr", "optpath") and value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split(",")
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
    return value


def _coerce_range(value: Any) -> tuple[int, ...]:
    """``[first, count]`` of positive whole numbers, or ``[]`` (unset)."""
    if isinstance(value, tuple | list) and not value:
        return ()
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[0] <= 0
        or value[1] <= 0
    ):
        raise ValueError("must be [first, count], two whole numbers > 0")
    if value[0] + value[1] > 2**31:
        raise ValueError("the range goes past the largest uid")
    return (value[0], value[1])


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"config file {path} does not exist")
        return {}
    except PermissionError:
        problems.append(f"config file {path} is not readable")
        return {}
    except tomllib.TOMLDecodeError as e:
        problems.append(f"config file {path} is not valid TOML: {e}")
        return {}
    allowed = _FIELD_NAMES | _secret_file_keys()
    for key in sorted(data):
        if key not in allowed:
            problems.append(f"{path}: unknown key {key!r}")
    return {k: v for k, v in data.items() if k in allowed}


def _read_env(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    names = [*_secret_file_keys(), *(f.name for f in attrs.fields(Config))]
    given = [
        (n, environ[env_name(n)], env_name(n)) for n in names if env_name(n) in environ
    ]
    return _read_text(given, problems)


def _read_flags(flags: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    given = []
    for key, text in flags.items():
        if text is not None:
            name = key.replace("-", "_")
            given.append((name, text, f"--{flag_name(name)}"))
    return _read_text(given, problems)


def _read_text(
    given: Iterable[tuple[str, Any, str]], problems: list[str]
) -> dict[str, Any]:
    """
    The settings given as text, each as (name, text, where it was given): a
    secret's file name is kept as is, a setting parsed by its kind (a problem
    names where), anything else ignored.
    """
    out: dict[str, Any] = {}
    kinds = {f.name: f.metadata["kind"] for f in attrs.fields(Config)}
    file_keys = _secret_file_keys()
    for name, text, where in given:
        if name in file_keys:
            out[name] = text
        elif name in kinds:
            try:
                out[name] = _parse_text(kinds[name], str(text))
            except ValueError as e:
                problems.append(f"{where}: {e}")
    return out


def _resolve_secret_files(layer: dict[str, Any], problems: list[str]) -> None:
    """
    ``forgejo_client_secret_file`` fills the secret from disk (credentials),
    within one layer (file, environment or flags).
    """
    for key in sorted(_secret_file_keys()):
        path = layer.pop(key, None)
        if path is None:
            continue
        name = key[: -len(_FILE_SUFFIX)]
        if name in layer:
            problems.append(f"{name} and {key} are both set; set one of them")
            continue
        try:
            layer[name] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            problems.append(f"{key}: cannot read {path}: {e.strerror}")


# --- validation ------------------------------------------------------------------


def _check_public_url(value: str, problems: list[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"public_url {value!r} is not an http(s) URL")
        return
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        problems.append(
            f"public_url {value!r} must be https (http only on a loopback host)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        problems.append(f"public_url {value!r} must be an origin with no path")


def _check_url(name: str, value: str, problems: list[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"{name} {value!r} is not an http(s) URL")


def _resolve_argv0(
    argv: tuple[str, ...], what: str, path_env: str | None, problems: list[str]
) -> tuple[str, ...]:
    if not argv:
        problems.append(f"{what} is empty")
        return argv
    found = shutil.which(argv[0], path=path_env)
    if found is None:
        problems.append(f"{what}: {argv[0]!r} not found on PATH or not executable")
        return argv
    return (os.path.abspath(found), *argv[1:])


def default_node_id() -> str:
    """The host name up to its first dot, kept to letters, digits and ``-``."""
    name = socket.gethostname().split(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", name).strip("-")[:NODE_ID_MAX]
    return cleaned or "node"


def _check_node_id(values: Mapping[str, Any], problems: list[str]) -> None:
    node = values.get("node_id") or ""
    if node and not _NODE_ID.fullmatch(node):
        problems.append(
            f"node_id {node!r}: use 1 to {NODE_ID_MAX} letters, digits and '-' "
            "(it prefixes session ids, and HAProxy routes on it)"
        )


def _check_store_url(values: Mapping[str, Any], problems: list[str]) -> str | None:
    """
    ``store_url`` names an engine fjmcp speaks; a ``sqlite:`` URL becomes
    ``store_path`` (which the rest of the checks and the defaults use).
    """
    url = values.get("store_url") or ""
    if not url:
        return "sqlite"
    try:
        target = parse_store_url(url)
    except StoreUrlError as e:
        problems.append(str(e))
        return None
    if target.backend == "sqlite" and isinstance(values, dict):
        values["store_path"] = target.location
    return target.backend


def _check_store_path(path: str, problems: list[str]) -> None:
    target = Path(path)
    parent = target.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        problems.append(f"store_path {path}: {probe} is not a directory")
    elif not os.access(probe, os.W_OK | os.X_OK):
        problems.append(f"store_path {path}: directory {probe} is not writable")
    elif target.exists() and not os.access(target, os.R_OK | os.W_OK):
        problems.append(f"store_path {path}: file is not readable and writable")


def _normalise_origin(value: str) -> str:
    return value.rstrip("/").lower()


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    check_paths: bool = True,
) -> Config:
    """
    Build the effective configuration: TOML file < ``FJMCP_*`` env < flags.

    Every problem is collected before one `ConfigError` is raised, so an
    operator fixes the file in one pass. ``check_paths`` may be turned off by
    commands that only read the config (e.g. to mint tokens on a store that
    is elsewhere); it never is for the daemon.
    """
    problems: list[str] = []
    layers = [
        _read_toml(Path(path), problems) if path is not None else {},
        _read_env(os.environ if environ is None else environ, problems),
        _read_flags(flags or {}, problems),
    ]
    raw: dict[str, Any] = {}
    for layer in layers:
        # A secret's file is read in its own layer, so that a higher layer's
        # file beats a lower layer's value and the other way round.
        _resolve_secret_files(layer, problems)
        raw.update(layer)

    values: dict[str, Any] = {}
    for f in attrs.fields(Config):
        meta = f.metadata
        if f.name not in raw:
            if f.default is attrs.NOTHING:
                problems.append(
                    f"missing required setting {f.name} "
                    f"(TOML key {f.name}, env {env_name(f.name)})"
                )
            continue
        try:
            value = _coerce(meta["kind"], raw[f.name])
        except ValueError as e:
            problems.append(f"{f.name}: {e}")
            continue
        if meta["positive"] and value <= 0:
            problems.append(f"{f.name} must be positive, got {value}")
            continue
        values[f.name] = value

    if values.get("stateless_cache_ttl_ms", 0) < 0:
        problems.append("stateless_cache_ttl_ms must not be negative")
    if "public_url" in values:
        values["public_url"] = values["public_url"].rstrip("/")
        _check_public_url(values["public_url"], problems)
    if "forgejo_url" in values:
        values["forgejo_url"] = values["forgejo_url"].rstrip("/")
        _check_url("forgejo_url", values["forgejo_url"], problems)
    if "allowed_origins" in values:
        values["allowed_origins"] = tuple(
            _normalise_origin(o) for o in values["allowed_origins"]
        )
    path_env = (os.environ if environ is None else environ).get("PATH", os.defpath)
    if "child_command" in values:
        if values.get("child_wrapper"):
            values["child_wrapper"] = _resolve_argv0(
                values["child_wrapper"], "child_wrapper", path_env, problems
            )
        else:
            values["child_command"] = _resolve_argv0(
                values["child_command"], "child_command", path_env, problems
            )
    if values.get("refresh_reuse_grace", 0.0) < 0:
        problems.append("refresh_reuse_grace must be 0 or more")
    for name in ("child_token_env", "child_url_env"):
        if name in values and not values[name].isidentifier():
            problems.append(f"{name} {values[name]!r} is not a variable name")
    _check_passthrough(values, problems)
    _check_token_not_in_argv(values, problems)
    _check_child_isolation(values, problems)
    _check_node_id(values, problems)
    backend = _check_store_url(values, problems)
    if check_paths and backend == "sqlite":
        _check_store_path(values.get("store_path", _default("store_path")), problems)
    grace = values.get("child_stop_grace", _default("child_stop_grace"))
    budget = values.get("shutdown_timeout", _default("shutdown_timeout"))
    if grace >= budget:
        problems.append(
            f"child_stop_grace ({grace:g}s) must be less than shutdown_timeout "
            f"({budget:g}s): in-flight requests get the difference at shutdown"
        )
    problems.extend(_check_child_ids(values))
    _check_client_documents(values, problems)
    _check_read_only_grant(values, problems)

    _check_admin_socket(values, problems)
    _check_metrics_listen(values.get("metrics_listen", ""), problems)
    _check_networks(values.get("trusted_proxies", ()), problems)
    if check_paths:
        _check_audit_log(values.get("audit_log", ""), problems)

    if problems:
        raise ConfigError(problems)
    return Config(**values)


def _check_metrics_listen(listen: str, problems: list[str]) -> None:
    """A metrics endpoint on TCP must say its interface (Twisted's default is all)."""
    kind = listen.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6", "ssl") and "interface=" not in listen:
        problems.append(
            f"metrics_listen {listen!r} names no interface= and would listen on "
            "every address; metrics are never public: add interface=127.0.0.1 "
            "(or a private address)"
        )


def _check_audit_log(path: str, problems: list[str]) -> None:
    """The audit file's directory must exist and be writable."""
    if not path or path == "-":
        return
    directory = Path(path).absolute().parent
    if not directory.is_dir():
        problems.append(f"audit_log {path}: directory {directory} does not exist")
    elif not os.access(directory, os.W_OK):
        problems.append(f"audit_log {path}: directory {directory} is not writable")


def _check_networks(values: Iterable[str], problems: list[str]) -> None:
    """Every trusted proxy must be an address or a network."""
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            problems.append(
                f"trusted_proxies: {value!r} is not an IP address or network"
            )


def _check_client_documents(values: Mapping[str, Any], problems: list[str]) -> None:
    """
    known_clients must be a table of tables keyed by https URLs (each record
    is checked as a client document when the settings are built); the cache
    bounds must be ordered.
    """
    for url, record in values.get("known_clients", {}).items():
        if not url.startswith("https://"):
            problems.append(f"known_clients: {url!r} is not an https URL")
        elif not isinstance(record, dict):
            problems.append(f"known_clients[{url!r}] must be a table")
        elif not isinstance(record.get("enabled", True), bool):
            problems.append(f"known_clients[{url!r}].enabled must be true or false")
    low = values.get("client_document_cache_min", _default("client_document_cache_min"))
    high = values.get(
        "client_document_cache_max", _default("client_document_cache_max")
    )
    if low > high:
        problems.append(
            f"client_document_cache_min ({low:g}s) must not exceed "
            f"client_document_cache_max ({high:g}s)"
        )


#: Forgejo's OAuth2 token scope groups (Forgejo 9.0+: `read:` allows GET,
#: `write:` every method, as for personal access tokens) and the scopes it
#: reads as OpenID Connect ones, not as limits (services/auth/oauth2.go,
#: grantAdditionalScopes).
FORGEJO_SCOPE_GROUPS: Final = (
    "activitypub",
    "admin",
    "issue",
    "misc",
    "notification",
    "organization",
    "package",
    "repository",
    "user",
)
FORGEJO_OIDC_SCOPES: Final = frozenset({"openid", "profile", "email", "groups"})
FORGEJO_TOKEN_SCOPES: Final = frozenset(
    {"all", "public-only"}
    | {
        f"{level}:{group}"
        for level in ("read", "write")
        for group in FORGEJO_SCOPE_GROUPS
    }
)


def forgejo_scope_problems(name: str, scopes: Iterable[str]) -> list[str]:
    """
    Why a read-only grant's scope set would not be read-only at Forgejo:
    Forgejo drops a name it does not know and grants everything when no
    token scope is left, and the broker reads ``/api/v1/user`` and
    ``/api/v1/user/orgs`` with the token (``read:user``, ``read:organization``).
    """
    given = set(scopes)
    problems = [
        f"{name}: {scope!r} is not a Forgejo token scope (Forgejo ignores it)"
        for scope in sorted(given - FORGEJO_TOKEN_SCOPES - FORGEJO_OIDC_SCOPES)
    ]
    widening = sorted(s for s in given if s == "all" or s.startswith("write:"))
    if widening:
        problems.append(
            f"{name}: {', '.join(widening)} would let a read-only grant's token write"
        )
    if not given & FORGEJO_TOKEN_SCOPES:
        problems.append(
            f"{name} names no Forgejo token scope: Forgejo would give the token "
            "full access"
        )
    for needed in ("read:user", "read:organization"):
        if given & FORGEJO_TOKEN_SCOPES and needed not in given:
            problems.append(
                f"{name} lacks {needed}: the broker reads the user and their "
                "organizations with the token at login and at each user check"
            )
    return problems


def full_scope_warnings(scopes: Iterable[str]) -> list[str]:
    """
    What ``forgejo_scopes`` lacks where Forgejo 9.0+ narrows its tokens: the
    broker reads the user (``read:user``) and their organizations (and
    ``read:organization``) at login; for ``check-config``, warnings only (a
    Forgejo before 9.0 does not narrow OAuth2 tokens at all).
    """
    given = set(scopes)
    if not given & FORGEJO_TOKEN_SCOPES or "all" in given:
        return []
    notes = [
        f"forgejo_scopes: {s!r} is not a Forgejo token scope (Forgejo ignores it)"
        for s in sorted(given - FORGEJO_TOKEN_SCOPES - FORGEJO_OIDC_SCOPES)
    ]
    for group in ("user", "organization"):
        if not {f"read:{group}", f"write:{group}"} & given:
            notes.append(
                f"forgejo_scopes lacks read:{group}: Forgejo 9.0 and later will "
                "refuse the broker's login (it reads the user and their "
                "organizations with the token)"
            )
    return notes


def _check_read_only_grant(values: Mapping[str, Any], problems: list[str]) -> None:
    """
    Read-only grants with scopes of their own need an OAuth2 application of
    their own at Forgejo, which keeps one grant per user and application
    with the scopes of the first consent: through one application a second
    scope set would silently get the first grant's token.
    """
    full = set(values.get("forgejo_scopes", ()))
    narrow = set(values.get("forgejo_scopes_read_only", ()))
    client_id = values.get("forgejo_ro_client_id", "")
    secret = values.get("forgejo_ro_client_secret", "")
    separate = bool(narrow) and narrow != full
    if separate:
        problems.extend(forgejo_scope_problems("forgejo_scopes_read_only", narrow))
        if not client_id or not secret:
            problems.append(
                "forgejo_scopes_read_only needs forgejo_ro_client_id and "
                "forgejo_ro_client_secret: an OAuth2 application of its "
                "own at Forgejo (Forgejo keeps one grant per user and application)"
            )
        elif client_id == values.get("forgejo_client_id"):
            problems.append(
                "forgejo_ro_client_id must name another application than "
                "forgejo_client_id (Forgejo keeps one grant per user and application)"
            )
    elif client_id or secret:
        problems.append(
            "forgejo_ro_client_id is set but read-only grants have no "
            "scopes of their own: set forgejo_scopes_read_only (different from "
            "forgejo_scopes)"
        )


def _check_passthrough(values: Mapping[str, Any], problems: list[str]) -> None:
    """
    child_env_passthrough may not hand a child the broker's own settings
    (``FJMCP_*``, the client secret among them) nor the variables the broker
    sets for the child (the token's and the URL's).
    """
    set_by_broker = {
        values.get(name, _default(name)): name
        for name in ("child_token_env", "child_url_env")
    }
    for var in values.get("child_env_passthrough", ()):
        if var.startswith(ENV_PREFIX):
            problems.append(
                f"child_env_passthrough: {var!r} is one of the broker's own "
                f"settings ({ENV_PREFIX}*); a child may not see it"
            )
        elif var in set_by_broker:
            problems.append(
                f"child_env_passthrough: {var!r} is set by the broker "
                f"(it is {set_by_broker[var]}); remove it from the list"
            )


def _check_token_not_in_argv(values: Mapping[str, Any], problems: list[str]) -> None:
    """
    No argv may name the token's variable (``$FORGEJO_ACCESS_TOKEN``, through
    a shell or a wrapper that expands it): every process of the machine can
    read ``/proc/<pid>/cmdline``.
    """
    name = values.get("child_token_env", _default("child_token_env"))
    refs = (f"${name}", f"${{{name}}}", f"%{name}%")
    for key in ("child_wrapper", "child_command"):
        for arg in values.get(key, ()):
            if any(ref in arg for ref in refs):
                problems.append(
                    f"{key} puts the token into argv ({arg!r}); every process "
                    "can read /proc/*/cmdline. Let the child read the token from "
                    "its environment, a file or a descriptor (child_token_via)"
                )


def _check_child_isolation(values: Mapping[str, Any], problems: list[str]) -> None:
    """The sandbox settings that can be checked without the machine."""
    for name in ("child_token_file_env", "child_token_fd_env"):
        if name in values and not values[name].isidentifier():
            problems.append(f"{name} {values[name]!r} is not a variable name")
    for path in values.get("child_sandbox_binds", ()):
        if not os.path.isabs(path):
            problems.append(f"child_sandbox_binds: {path!r} is not an absolute path")
    if values.get("child_uid_range") and values.get("child_user"):
        problems.append("child_uid_range and child_user are both set; set one")


def _default(name: str) -> Any:
    """A setting's declared default."""
    return attrs.fields_dict(Config)[name].default


def _check_child_ids(values: Mapping[str, Any]) -> list[str]:
    """child_user and child_group must name a user and a group of this system."""
    problems = []
    for name, lookup in (("child_user", _user_exists), ("child_group", _group_exists)):
        value = values.get(name)
        if value and not lookup(value):
            kind = name.removeprefix("child_")
            problems.append(f"{name} {value!r} is not a {kind} on this system")
    return problems


def _user_exists(name: str) -> bool:
    return _id_exists(name, pwd.getpwuid, pwd.getpwnam)


def _group_exists(name: str) -> bool:
    return _id_exists(name, grp.getgrgid, grp.getgrnam)


def _id_exists(
    name: str, by_id: Callable[[int], object], by_name: Callable[[str], object]
) -> bool:
    """Whether a user or group, given as a number or a name, exists."""
    try:
        by_id(int(name)) if name.isdigit() else by_name(name)
    except KeyError:
        return False
    return True


def _check_admin_socket(values: Mapping[str, Any], problems: list[str]) -> None:
    """The socket path (explicit or beside the store) must fit AF_UNIX's limit."""
    if values.get("admin_socket"):
        sock = str(values["admin_socket"])
    else:
        store = values.get("store_path", _default("store_path"))
        sock = str(Path(store).parent / "admin.sock")
    size = len(os.fsencode(sock))
    if size > AF_UNIX_PATH_MAX:
        problems.append(
            f"admin_socket {sock} is {size} bytes long; Unix sockets allow at "
            f"most {AF_UNIX_PATH_MAX}: set admin_socket to a shorter path"
        )
