# -*- test-case-name: tests.test_cli -*-
"""
The ``fjmcp`` command.

- ``fjmcp serve --config FILE [--listen ENDPOINT] [--<setting> VALUE ...]``:
  the same service tree as ``twistd -n --pidfile= fjmcp``, in the foreground;
- ``fjmcp check-config --config FILE``: validate and print the effective
  configuration with secrets masked (exit 0, or 2 with every problem);
- ``fjmcp version``;
- ``fjmcp example-config``: print ``fjmcp.toml.example``;
- ``fjmcp init-config [--out FILE] [--state-dir DIR]``: write a local,
  loopback-only configuration (placeholder Forgejo) for ``make run``; with
  ``--public-url``, ``--forgejo-url`` and ``--forgejo-client-id`` a
  production one instead (`fjmcp.init_config`);
- ``fjmcp admin ...``: see `fjmcp.admin.commands`;
- ``fjmcp demo ...`` and ``fjmcp standin-forgejo ...``: the demo and the
  stand-in Forgejo, imported only when asked for, so production code never
  loads them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from fjmcp.config import (
    CONFIG_ENV,
    CONFIG_OPTION,
    Config,
    ConfigError,
    config_fields,
    load_config,
    setting_options,
)

__all__ = ["main", "render_config"]

#: Subcommands that live in modules production never imports: name ->
#: (module, function); the function takes the remaining argv.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("fjmcp.demo", "main", "Run the demo: stand-in Forgejo + broker."),
    "standin-forgejo": (
        "fjmcp.standin.command",
        "main",
        "Run the stand-in Forgejo (tests and demo only).",
    ),
}


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        f"--{CONFIG_OPTION.flag}",
        "-c",
        metavar=CONFIG_OPTION.metavar,
        help=CONFIG_OPTION.help,
    )
    group = parser.add_argument_group(
        "settings", "Each overrides the file and the FJMCP_* environment."
    )
    for option in setting_options():
        group.add_argument(
            f"--{option.flag}",
            dest=option.name,
            metavar=option.metavar,
            default=None,
            help=option.help.replace("%", "%%"),
        )


def _load(args: argparse.Namespace, *, check_paths: bool = True) -> Config:
    names = [option.name for option in setting_options()]
    flags = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    path = args.config or os.environ.get(CONFIG_ENV)
    return load_config(path, flags=flags, check_paths=check_paths)


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted one (URLs)."""
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):  # a table (child_limits, known_clients)
        return (
            "{"
            + ", ".join(
                f"{_toml_key(str(k))} = {_toml_value(v)}"
                for k, v in value.items()
                if v is not None
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def render_config(config: Config) -> str:
    """
    The effective configuration as TOML, secrets masked, unset keys commented;
    the ``[policy]`` table last, as its own table (its rules as an array of
    tables), every other value inline.
    """
    lines = []
    tables = []
    own_tables = {f.name for f in config_fields() if f.metadata["kind"] == "policy"}
    for name, value in config.masked().items():
        if name in own_tables and isinstance(value, dict):
            tables.append((name, value))
        elif value is None:
            lines.append(f"# {name} = (unset)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    for name, table in tables:
        lines += ["", f"[{name}]"]
        arrays = {k: v for k, v in table.items() if _is_table_array(v)}
        lines += [
            f"{k} = {_toml_value(v)}" for k, v in table.items() if k not in arrays
        ]
        for key, entries in arrays.items():
            for entry in entries:
                lines += ["", f"[[{name}.{key}]]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


# --- subcommands --------------------------------------------------------------------


def _check_config(args: argparse.Namespace, out: IO[str]) -> int:
    from fjmcp.preflight import preflight

    try:
        config = preflight(_load(args))
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    print(render_config(config), file=out)
    from fjmcp.config import full_scope_warnings
    from fjmcp.policy.rules import never_matching
    from fjmcp.settings import known_client_names

    known = known_client_names(config).names
    notes = [*full_scope_warnings(config.forgejo_scopes)]
    notes += never_matching(config.policy, known)
    for note in notes:
        print(f"fjmcp check-config: warning: {note}", file=sys.stderr)
    return 0


def _version(args: argparse.Namespace, out: IO[str]) -> int:
    from fjmcp.buildinfo import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info.as_dict()), file=out)
    else:
        print(
            f"fjmcp {info.version} (revision {info.git_revision}, "
            f"built {info.build_date})",
            file=out,
        )
    return 0


def _serve(args: argparse.Namespace, out: IO[str]) -> int:
    from fjmcp.preflight import preflight

    try:
        config = preflight(_load(args))
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return serve(config)


def serve(config: Config) -> int:
    """Run the broker in the foreground until it is stopped; the exit status."""
    from fjmcp.logs import start_logging
    from fjmcp.service import build_service, installed_reactor

    reactor = installed_reactor()
    start_logging(config)
    service = build_service(config, reactor)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return service.exit_status


def local_config_text(state_dir: Path, port: int = 8080) -> str:
    """A loopback-only configuration with a placeholder Forgejo (``make run``)."""
    state = state_dir.resolve()
    return "\n".join(
        [
            "# Generated by `fjmcp init-config` for a local run. The Forgejo below",
            "# is a placeholder: only /healthz answers usefully until one is set.",
            f'public_url = "http://127.0.0.1:{port}"',
            f'listen = "tcp:{port}:interface=127.0.0.1"',
            'forgejo_url = "https://forgejo.invalid"',
            'forgejo_client_id = "placeholder"',
            'forgejo_client_secret = "placeholder-secret"',
            'child_command = ["cat"]',
            f"store_path = {json.dumps(str(state / 'fjmcp.sqlite3'))}",
            "",
        ]
    )


def _init_production(args: argparse.Namespace, out: IO[str]) -> int:
    from fjmcp.init_config import ProductionSetup, write_production_setup

    missing = [
        flag
        for flag, value in (
            ("--forgejo-url", args.forgejo_url),
            ("--forgejo-client-id", args.forgejo_client_id),
        )
        if not value
    ]
    if missing:
        print(
            f"fjmcp init-config: --public-url needs {', '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    target = Path(args.out or "/etc/fjmcp/fjmcp.toml")
    if target.exists() and not args.force:
        print(f"{target} exists; keeping it (--force to overwrite)", file=out)
        return 0
    setup = ProductionSetup(
        public_url=args.public_url,
        forgejo_url=args.forgejo_url,
        forgejo_client_id=args.forgejo_client_id,
        state_dir=Path(args.state_dir or "/var/lib/fjmcp"),
        client_secret_file=Path(
            args.forgejo_client_secret_file or target.parent / "forgejo-client-secret"
        ),
        listen=args.listen or f"tcp:{args.port}:interface=127.0.0.1",
        child_command=tuple(shlex.split(args.child_command or "forgejo-mcp")),
    )
    try:
        lines = write_production_setup(setup, target)
    except OSError as e:
        print(f"fjmcp init-config: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines), file=out)
    return 0


def _init_config(args: argparse.Namespace, out: IO[str]) -> int:
    if args.public_url:
        return _init_production(args, out)
    target = Path(args.out or "var/fjmcp.toml")
    if target.exists() and not args.force:
        print(f"{target} exists; keeping it (--force to overwrite)", file=out)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    state = Path(args.state_dir) if args.state_dir else target.parent
    target.write_text(local_config_text(state, args.port), encoding="utf-8")
    print(f"wrote {target}", file=out)
    keys = state / "token-keys"
    if not keys.exists():
        from fjmcp.oauth.keys import prepend_new_key

        prepend_new_key(keys)
        print(f"wrote {keys} (token key file, mode 0600)", file=out)
    return 0


def _example_config(args: argparse.Namespace, out: IO[str]) -> int:
    from fjmcp.config import render_example

    out.write(render_example())
    return 0


def _admin(argv: Sequence[str]) -> int:
    from fjmcp.admin.commands import main as admin_main

    return admin_main(argv)


def _lazy(name: str, argv: Sequence[str]) -> int:
    module_name, function, _ = LAZY_COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name):
            print(
                f"fjmcp {name}: not available in this build ({module_name} is missing)",
                file=sys.stderr,
            )
            return 3
        raise
    entry: Callable[[list[str]], int | None] = getattr(module, function)
    return entry(list(argv)) or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fjmcp",
        description="MCP broker for Forgejo: OAuth 2.1 and a Streamable HTTP to "
        "stdio bridge.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = sub.add_parser(
        "serve", help="Run the broker in the foreground (same tree as twistd)."
    )
    _add_setting_flags(serve_parser)
    serve_parser.set_defaults(handler=_serve)
    check = sub.add_parser(
        "check-config", help="Validate and print the effective configuration."
    )
    _add_setting_flags(check)
    check.set_defaults(handler=_check_config)
    version = sub.add_parser("version", help="Print the version and build.")
    version.add_argument("--json", action="store_true")
    version.set_defaults(handler=_version)
    init = sub.add_parser(
        "init-config",
        help="Write a configuration: local (loopback) by default, for "
        "production with --public-url.",
    )
    init.add_argument(
        "--out", default=None, help="Default var/fjmcp.toml, or /etc/fjmcp/fjmcp.toml."
    )
    init.add_argument(
        "--state-dir", default=None, help="Default beside --out, or /var/lib/fjmcp."
    )
    init.add_argument("--port", type=int, default=8080)
    init.add_argument("--force", action="store_true")
    production = init.add_argument_group(
        "production", "Given --public-url, write a production configuration."
    )
    production.add_argument(
        "--public-url", help="Where users reach the broker (https)."
    )
    production.add_argument("--forgejo-url", help="The Forgejo instance.")
    production.add_argument(
        "--forgejo-client-id", help="Client id of the broker's OAuth2 app at Forgejo."
    )
    production.add_argument(
        "--forgejo-client-secret-file",
        help="Where its secret will be (default forgejo-client-secret beside --out).",
    )
    production.add_argument("--listen", help="Endpoint (default loopback --port).")
    production.add_argument(
        "--child-command",
        metavar="ARGV",
        help="The child's command line, split like a shell would (default "
        "forgejo-mcp).",
    )
    init.set_defaults(handler=_init_config)
    example = sub.add_parser(
        "example-config", help="Print fjmcp.toml.example (every setting)."
    )
    example.set_defaults(handler=_example_config)
    sub.add_parser(
        "admin", help="Operate a broker (fjmcp admin --help).", add_help=False
    )
    for name, (_, _, text) in LAZY_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, *, out: IO[str] | None = None) -> int:
    """Entry point of the ``fjmcp`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "admin":
        return _admin(argv[1:])
    if argv and argv[0] in LAZY_COMMANDS:
        return _lazy(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    status: int = args.handler(args, out or sys.stdout)
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
