# -*- test-case-name: tests.test_logs -*-
"""
Where the broker's log events go, and in what shape.

Text lines by default, or one JSON object per line (``log_format = "json"``)
for journald or Loki; events below ``log_level`` are dropped before they are
formatted. Twisted's own chatter (ports starting and stopping, twistd's
start-up banner, "Main loop terminated") is left out unless ``log_level``
is ``debug``: its warnings and errors still show. Every line passes
through a `Redactor` on its way out: a safety net that masks known secret
values (the Forgejo client secret, registered at start-up) and anything
shaped like a bearer token or a ``token=``/``secret=`` assignment. Code
must still never put a secret into an event; the net is for the mistake
nobody noticed.

``twistd`` builds its log observer before ``makeService`` is called, so
`fjmcp.tap` names `twistd_observer` as twistd's ``--logger`` and hands it the
configuration through `prepare_twistd_observer`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final

from attrs import define, field
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    formatEventAsClassicLogText,
    globalLogBeginner,
)
from zope.interface import implementer

if TYPE_CHECKING:
    from fjmcp.config import Config

__all__ = [
    "REDACTED",
    "Redactor",
    "LineObserver",
    "make_observer",
    "prepare_twistd_observer",
    "start_logging",
    "twistd_observer",
]

REDACTED: Final = "[REDACTED]"

#: Token-shaped values: only those of 8 characters or more are masked;
#: shorter ones (``code=1`` in "exit code=1") are not secrets.
_PATTERNS: Final = (
    # Authorization: Bearer <token>
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # access_token=..., "refresh_token": "...", client_secret: ..., code=...
    re.compile(
        r"(?i)((?<![A-Za-z0-9])(?:access_token|refresh_token|id_token|token"
        r"|client_secret|secret|password|code|code_verifier)"
        r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]{8,}"
    ),
)


@define
class Redactor:
    """
    Masks secrets in formatted log lines.

    `add_secret` registers an exact value (e.g. the client secret); the
    patterns catch bearer tokens and ``name=value`` pairs whose name says
    secret. Thread-safe: the adbapi pool's thread may log too.
    """

    _secrets: set[str] = field(factory=set)
    _lock: threading.Lock = field(factory=threading.Lock)

    def add_secret(self, value: str | None) -> None:
        """
        Mask this exact value wherever it appears (ignored when too short),
        also as it is spelled inside a JSON line (quotes, backslashes and
        control characters escaped).
        """
        if value and len(value) >= 4:
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]
            with self._lock:
                self._secrets.add(value)
                self._secrets.add(escaped)

    def redact(self, text: str) -> str:
        """The text with every known secret and token-shaped value masked."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


#: The process-wide redactor every observer built here uses by default.
default_redactor: Final = Redactor()


def _iso(when: float | None) -> str:
    if when is None:
        when = datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return repr(value)


def format_json(event: LogEvent) -> str:
    """
    One log event as one JSON object (no newline).

    Keys: ``time``, ``level``, ``namespace``, ``message``, the event's own
    keyword fields (values made JSON-safe) and ``failure`` with the traceback
    when the event carries one.
    """
    level = event.get("log_level")
    out: dict[str, Any] = {
        "time": _iso(event.get("log_time")),
        "level": getattr(level, "name", str(level)),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith(("log_", "_")) or key in out:
            continue
        if key in ("format", "message", "isError", "system", "time"):
            continue
        out[key] = _json_value(value)
    failure = event.get("log_failure")
    if failure is not None:
        out["failure"] = failure.getTraceback()
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def format_text(event: LogEvent) -> str | None:
    """One log event as a classic Twisted text line (with its traceback)."""
    text = formatEventAsClassicLogText(event)
    return text.rstrip("\n") if text else None


@implementer(ILogObserver)
@define
class LineObserver:
    """Formats each event to one line (or a few, for tracebacks), redacts, writes."""

    _stream: IO[str]
    _format: Callable[[LogEvent], str | None]
    _redactor: Redactor = default_redactor

    def __call__(self, event: LogEvent) -> None:
        """Write one event; a failing write is dropped, never raised into the caller."""
        line = self._format(event)
        if not line:
            return
        try:
            self._stream.write(self._redactor.redact(line) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass


#: Namespaces of Twisted's own events (``log_legacy``: ``twisted.python.log``
#: callers such as ``Port.startListening``).
_TWISTED_NAMESPACES: Final = ("twisted.", "log_legacy")


_NO: Final[PredicateResult] = PredicateResult.no
_MAYBE: Final[PredicateResult] = PredicateResult.maybe


@implementer(ILogFilterPredicate)
class QuietTwisted:
    """Drops Twisted's own events below warn; everything else passes on."""

    def __call__(self, event: LogEvent) -> PredicateResult:
        namespace = str(event.get("log_namespace", ""))
        level = event.get("log_level")
        if (
            namespace.startswith(_TWISTED_NAMESPACES)
            and not event.get("isError")
            and event.get("log_failure") is None
            and (level is None or level < LogLevel.warn)
        ):
            return _NO
        return _MAYBE


def make_observer(
    log_format: str,
    log_level: str,
    stream: IO[str],
    *,
    redactor: Redactor = default_redactor,
) -> ILogObserver:
    """
    The broker's observer: level filter, then text or JSON lines, redacted.

    :param log_format: ``text`` or ``json``.
    :param log_level: the lowest level written (``debug`` .. ``critical``);
        below ``debug``, Twisted's own events show only from warn up.
    """
    formatter = format_json if log_format == "json" else format_text
    observer = LineObserver(stream, formatter, redactor)
    predicate = LogLevelFilterPredicate(
        defaultLogLevel=LogLevel.levelWithName(log_level)
    )
    predicates: list[ILogFilterPredicate] = [predicate]
    if log_level != "debug":
        predicates.insert(1, QuietTwisted())
    return FilteringLogObserver(observer, predicates)


def register_config_secrets(
    config: Config, redactor: Redactor = default_redactor
) -> None:
    """Register every secret setting's value with the redactor."""
    from fjmcp.config import config_fields

    for f in config_fields():
        if f.metadata["secret"]:
            value = getattr(config, f.name)
            if isinstance(value, str):
                redactor.add_secret(value)


def start_logging(
    config: Config, stream: IO[str] | None = None, *, redirect_stdio: bool = False
) -> ILogObserver:
    """Begin global logging to ``stream`` (stdout) per the configuration."""
    register_config_secrets(config)
    observer = make_observer(config.log_format, config.log_level, stream or sys.stdout)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=redirect_stdio)
    return observer


# --- twistd ---------------------------------------------------------------------

_twistd_settings: dict[str, Any] = {}


def prepare_twistd_observer(config: Config, logfile: str | None) -> None:
    """
    Remember what `twistd_observer` needs; called from the twistd options.

    ``logfile`` is twistd's ``--logfile`` (``None`` or ``-``: standard output).
    """
    register_config_secrets(config)
    _twistd_settings.update(
        log_format=config.log_format, log_level=config.log_level, logfile=logfile
    )


def twistd_observer() -> ILogObserver:
    """
    The observer factory named as twistd's ``--logger``.

    Uses the settings `prepare_twistd_observer` stored (text/info to stdout
    when it was not called).
    """
    logfile = _twistd_settings.get("logfile")
    stream: IO[str]
    if logfile and logfile != "-":
        from twisted.python.logfile import LogFile

        stream = LogFile.fromFullPath(logfile)
    else:
        stream = sys.stdout
    return make_observer(
        _twistd_settings.get("log_format", "text"),
        _twistd_settings.get("log_level", "info"),
        stream,
    )
