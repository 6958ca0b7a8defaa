# -*- test-case-name: tests.test_tap -*-
"""
twistd glue: `Options` and `makeService` for ``twistd fjmcp``.

Kept thin: it parses the command line into a `Config` and hands it to
`fjmcp.service`, which builds the service tree.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application.service import IService
from twisted.python import usage

from fjmcp.config import Config, config_fields, env_name, flag_name, load_config

__all__ = ["Options", "makeService"]


def _option_help(name: str) -> str:
    for f in config_fields():
        if f.name == name:
            if f.default is attrs.NOTHING:
                shown = "required"
            elif f.metadata["secret"]:
                shown = "(secret)"
            else:
                shown = repr(
                    list(f.default) if isinstance(f.default, tuple) else f.default
                )
            return f"{f.metadata['help']} [env {env_name(name)}; default: {shown}]"
    raise KeyError(name)


class Options(usage.Options):
    """Command-line options: one flag per setting, plus ``--config``."""

    optParameters: list[list[Any]] = [
        ["config", "c", None, "TOML configuration file [env FJMCP_CONFIG]."],
    ] + [[flag_name(f.name), None, None, _option_help(f.name)] for f in config_fields()]

    def postOptions(self) -> None:
        """Build the effective `Config`, turning config errors into usage errors."""
        import os

        from fjmcp.config import ConfigError

        path = self["config"] or os.environ.get("FJMCP_CONFIG")
        flags = {k: v for k, v in self.items() if k != "config"}
        try:
            self.config: Config = load_config(path, flags=flags)
        except ConfigError as e:
            raise usage.UsageError(e.render()) from None


def makeService(options: Options) -> IService:
    """The broker's service tree for twistd."""
    from fjmcp.service import build_service

    return build_service(options.config)
