# -*- test-case-name: tests.store.test_postgres -*-
"""
Which database a store lives in, parsed from ``store_url``.

``sqlite:///var/lib/fjmcp/fjmcp.sqlite3`` (or ``sqlite:relative/path``)
names an SQLite file; ``postgresql://...`` (or ``postgres://...``, or a
libpq ``key=value`` conninfo) names a PostgreSQL database. The password may
come separately (``store_password_file``) so that it stays out of the
configuration file and out of every message: `StoreTarget.described` is
what logs and errors show.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

from attrs import field, frozen

__all__ = ["BACKENDS", "StoreTarget", "StoreUrlError", "parse_store_url", "sqlite_url"]

#: The engines a store URL can name.
BACKENDS: Final = ("sqlite", "postgresql")

_CONNINFO = re.compile(r"^\s*[A-Za-z_]+\s*=")


class StoreUrlError(ValueError):
    """A ``store_url`` names no engine fjmcp speaks, or names it badly."""


@frozen
class StoreTarget:
    """One store's engine and address, with its password kept apart."""

    backend: str
    """``sqlite`` or ``postgresql``."""
    location: str
    """The SQLite file's path, or the libpq conninfo (URL or key=value)."""
    password: str | None = field(default=None, repr=False)
    """The PostgreSQL password from ``store_password_file``, if any."""
    pool_size: int = 4
    """How many connections the daemon's pool may hold (PostgreSQL)."""

    @property
    def described(self) -> str:
        """The target for messages: the path, or the address without password."""
        if self.backend == "sqlite":
            return self.location
        return describe_location(self.location)

    @property
    def url(self) -> str:
        """The target as a ``store_url`` (a PostgreSQL one as configured)."""
        if self.backend == "sqlite":
            return sqlite_url(self.location)
        return self.location


def sqlite_url(path: str) -> str:
    """``sqlite://`` followed by ``path`` (absolute paths give three slashes)."""
    return f"sqlite://{path}" if path.startswith("/") else f"sqlite:{path}"


def describe_location(conninfo: str) -> str:
    """A PostgreSQL conninfo with any password masked."""
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{hostport}" if user else hostport
        query = re.sub(r"(?i)(^|&)password=[^&]*", r"\1password=***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return re.sub(
        r"(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "password=***", conninfo
    )


def parse_store_url(
    url: str, *, password: str | None = None, pool_size: int = 4
) -> StoreTarget:
    """
    The `StoreTarget` a ``store_url`` names. Raises `StoreUrlError` saying
    what is accepted for anything else.
    """
    text = url.strip()
    lowered = text.lower()
    if lowered.startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        path = rest[2:] if rest.startswith("//") else rest
        path = unquote(path)
        if not path or path == "/":
            raise StoreUrlError(f"store_url {url!r} names no SQLite file")
        return StoreTarget("sqlite", path, None, pool_size)
    if lowered.startswith(("postgresql://", "postgres://")) or (
        "://" not in text and _CONNINFO.match(text)
    ):
        return StoreTarget("postgresql", text, password, pool_size)
    raise StoreUrlError(
        f"store_url {describe_location(url)!r}: expected sqlite:///path/to/file, "
        "postgresql://user@host:port/dbname or a libpq key=value conninfo"
    )
