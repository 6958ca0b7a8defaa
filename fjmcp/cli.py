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
  loopback-only configuration (placeholder Forgejo) for ``make run``;
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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from fjmcp.config import (
    Config,
    ConfigError,
    config_fields,
    env_name,
    flag_name,
    load_config,
    option_help,
    secret_file_keys,
)

__all__ = ["main", "render_config"]

CONFIG_ENV = env_name("config")

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
        "--config",
        "-c",
        metavar="FILE",
        help=f"TOML configuration file [env {CONFIG_ENV}].",
    )
    group = parser.add_argument_group(
        "settings", "Each overrides the file and the FJMCP_* environment."
    )
    for f in config_fields():
        group.add_argument(
            f"--{flag_name(f.name)}",
            dest=f.name,
            metavar="VALUE",
            default=None,
            help=option_help(f.name).replace("%", "%%"),
        )
    for key in secret_file_keys():
        group.add_argument(
            f"--{flag_name(key)}",
            dest=key,
            metavar="FILE",
            default=None,
            help=f"File holding {key[:-5]} [env {env_name(key)}].",
        )


def _load(args: argparse.Namespace, *, check_paths: bool = True) -> Config:
    names = [f.name for f in config_fields()] + secret_file_keys()
    flags = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    path = args.config or os.environ.get(CONFIG_ENV)
    return load_config(path, flags=flags, check_paths=check_paths)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def render_config(config: Config) -> str:
    """The effective configuration as TOML, secrets masked, unset keys commented."""
    lines = []
    for name, value in config.masked().items():
        if value is None:
            lines.append(f"# {name} = (unset)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines)


# --- subcommands --------------------------------------------------------------------


def _check_config(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        config = _load(args)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    print(render_config(config), file=out)
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
    try:
        config = _load(args)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return serve(config)


def serve(config: Config) -> int:
    """Run the broker in the foreground until it is stopped; the exit status."""
    from twisted.internet import reactor

    from fjmcp.logs import start_logging
    from fjmcp.service import build_service

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


def _init_config(args: argparse.Namespace, out: IO[str]) -> int:
    target = Path(args.out)
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
        "init-config", help="Write a local configuration for a loopback run."
    )
    init.add_argument("--out", default="var/fjmcp.toml")
    init.add_argument("--state-dir", default=None)
    init.add_argument("--port", type=int, default=8080)
    init.add_argument("--force", action="store_true")
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
