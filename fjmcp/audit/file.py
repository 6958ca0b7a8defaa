# -*- test-case-name: tests.audit.test_audit -*-
"""
Where audit lines go: a file rotated by size (`twisted.python.logfile`), or
standard output (``-``, for journald).

`AuditLog` hands it each line (`write_line`). Lines are kept in memory
and written together, every ``flush_interval``
seconds or once 64 KiB are waiting, and at stop: one write per batch, not
one per request. A failing write is logged in the main log and the batch
dropped (the broker keeps serving).
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Final

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.logfile import LogFile

from fjmcp.audit.settings import AuditSettings

__all__ = ["AuditFile", "FLUSH_BYTES"]

#: Bytes waiting that trigger a write before the interval ends.
FLUSH_BYTES: Final = 64 * 1024


class AuditFile(Service):
    """Writes the audit lines it is given while the broker runs."""

    log = Logger()

    def __init__(self, settings: AuditSettings, clock: IReactorTime) -> None:
        self._settings = settings
        self._clock = clock
        self._lines: list[str] = []
        self._waiting = 0
        self._out: LogFile | IO[str] | None = None
        self._timer: LoopingCall | None = None

    def startService(self) -> None:
        """Open the file and start the flush timer."""
        super().startService()  # type: ignore[no-untyped-call]
        path = self._settings.path
        if path == "-":
            self._out = sys.stdout
        else:
            self._out = LogFile(
                os.path.basename(path),
                os.path.dirname(os.path.abspath(path)),
                rotateLength=self._settings.rotate_bytes,
                defaultMode=0o640,
                maxRotatedFiles=self._settings.keep,
            )
        self._timer = LoopingCall(self.flush)
        self._timer.clock = self._clock
        self._timer.start(self._settings.flush_interval, now=False)

    def write_line(self, line: str) -> None:
        """Keep one audit line (written within ``flush_interval``)."""
        self._lines.append(line)
        self._waiting += len(line)
        if self._waiting >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write every waiting line."""
        if not self._lines or self._out is None:
            return
        data = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._waiting = 0
        try:
            self._out.write(data)
            self._out.flush()
        except (OSError, ValueError):
            self.log.failure("writing the audit log failed; lines dropped")

    def stopService(self) -> Any:
        """Write what waits, stop the timer, close the file."""
        super().stopService()  # type: ignore[no-untyped-call]
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self.flush()
        out, self._out = self._out, None
        if isinstance(out, LogFile):
            out.close()
        return None
