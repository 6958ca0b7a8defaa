# -*- test-case-name: tests.test_preflight -*-
"""
What ``serve`` needs beyond a well-formed configuration, checked before
anything is created.

`fjmcp.config.load_config` checks the settings themselves; the broker also
needs files that exist only on the machine: the token key file (present,
private, parseable) and a place for the admin socket; and known-client
records that are valid client documents (judged by the OAuth package). ``fjmcp serve``,
``twistd fjmcp`` and ``fjmcp check-config`` all run `preflight` right after
loading the configuration, so check-config refuses exactly what serve would
refuse, and serve refuses before it creates a directory or a database.
"""

from __future__ import annotations

import os
from pathlib import Path

from fjmcp.config import Config, ConfigError

__all__ = ["preflight", "preflight_problems"]


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def preflight_problems(config: Config) -> list[str]:
    """Every reason the broker could not start with ``config`` on this machine."""
    from fjmcp.oauth.keys import KeyFileError, load_keyring
    from fjmcp.oauth.known_clients import KnownClients

    problems = []
    try:
        KnownClients.build(config.known_clients)
    except ValueError as e:
        problems.append(str(e))
    try:
        load_keyring(config.token_keys_path)
    except KeyFileError as e:
        problems.append(str(e))
    socket = config.admin_socket_path
    probe = _nearest_existing(socket.parent)
    if not probe.is_dir():
        problems.append(f"admin_socket {socket}: {probe} is not a directory")
    elif not os.access(probe, os.W_OK | os.X_OK):
        problems.append(f"admin_socket {socket}: directory {probe} is not writable")
    return problems


def preflight(config: Config) -> Config:
    """``config`` when the broker can start with it; `ConfigError` otherwise."""
    problems = preflight_problems(config)
    if problems:
        raise ConfigError(problems)
    return config
