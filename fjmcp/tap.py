# -*- test-case-name: tests.test_tap -*-
"""
twistd glue: `Options` and `makeService` for ``twistd fjmcp``.

Kept thin: it parses the command line into a `Config` and hands it to
`fjmcp.service`, which builds the service tree. A configuration problem is
printed as one message naming every problem, and the process exits with
status 2 (not twistd's usage dump and status 1).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from fjmcp.config import (
    CONFIG_ENV,
    CONFIG_OPTION,
    Config,
    ConfigError,
    load_config,
    setting_options,
)

__all__ = ["CONFIG_ENV", "Options", "makeService"]

#: twistd's ``--logger``: our observer (format, level, redaction).
TWISTD_LOGGER = "fjmcp.logs.twistd_observer"


class Options(usage.Options):
    """Command-line options: one flag per setting, plus ``--config``."""

    optParameters: list[list[Any]] = [
        [CONFIG_OPTION.flag, "c", None, CONFIG_OPTION.help],
        *([option.flag, None, None, option.help] for option in setting_options()),
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def postOptions(self) -> None:
        """
        Build the effective `Config`; on any problem print them all and exit 2.

        Under twistd, also make our observer twistd's ``--logger`` unless the
        operator named another one.
        """
        path = self["config"] or os.environ.get(CONFIG_ENV)
        flags = {k: v for k, v in self.items() if k != "config"}
        from fjmcp.preflight import preflight

        try:
            self.config: Config = preflight(load_config(path, flags=flags))
        except ConfigError as e:
            print(e.render(), file=sys.stderr)
            raise SystemExit(2) from None
        parent: Any = getattr(self, "parent", None)
        if parent is not None and parent.get("logger") is None:
            from fjmcp.logs import prepare_twistd_observer

            prepare_twistd_observer(self.config, parent.get("logfile"))
            parent["logger"] = TWISTD_LOGGER


def makeService(options: Options) -> IService:
    """The broker's service tree for twistd."""
    from fjmcp.service import build_service, exit_after_shutdown, installed_reactor

    reactor = installed_reactor()
    return build_service(
        options.config,
        reactor,
        on_failed_start=exit_after_shutdown(reactor),
    )
