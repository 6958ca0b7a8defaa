# -*- test-case-name: tests.audit.test_audit -*-
"""
Tests for `fjmcp.audit`: lines are formatted once as JSON (a request's line
exactly as ``json.dumps`` would write it), written in batches (on the
clock, past 64 KiB, at stop), rotated by size, and kept out of the main log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from fjmcp.audit.file import FLUSH_BYTES, AuditFile
from fjmcp.audit.log import AuditLog, _iso, _iso_exact, _Timestamps
from fjmcp.audit.settings import AuditSettings
from fjmcp.interfaces import Identity

ALICE = Identity("alice", "client-1")


def _setup(
    tmp_path: Path, **settings: object
) -> tuple[Clock, AuditLog, AuditFile, Path]:
    clock = Clock()
    clock.advance(1_700_000_000)
    path = tmp_path / "audit.log"
    out = AuditFile(AuditSettings(path=str(path), **settings), clock)  # type: ignore[arg-type]
    audit = AuditLog(clock, out.write_line)
    out.startService()
    return clock, audit, out, path


def test_lines_wait_for_the_interval_then_are_written(tmp_path: Path) -> None:
    """Events are held until the flush interval passes, then written as
    JSON lines."""
    clock, audit, out, path = _setup(tmp_path)
    audit.call_done(ALICE, "abcd1234", "tools/call", "list_repos", "ok", 0.0123)
    audit.oauth_event("grant", "alice", "client-1", "ok")
    assert path.read_text() == ""
    clock.advance(1.0)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {
            "time": "2023-11-14T22:13:20.000+00:00",
            "event": "mcp.request",
            "user": "alice",
            "client_id": "client-1",
            "session": "abcd1234",
            "method": "tools/call",
            "tool": "list_repos",
            "outcome": "ok",
            "latency_ms": 12.3,
        },
        {
            "time": "2023-11-14T22:13:20.000+00:00",
            "event": "oauth.grant",
            "user": "alice",
            "client_id": "client-1",
            "outcome": "ok",
        },
    ]
    out.stopService()


def test_a_full_buffer_is_written_at_once_and_stop_flushes(tmp_path: Path) -> None:
    """Past 64 KiB waiting, lines are written without waiting for the clock;
    stopping writes what is left and closes the file."""
    _, audit, out, path = _setup(tmp_path)
    long_tool = "t" * 100
    count = FLUSH_BYTES // 200 + 2
    for _ in range(count):
        audit.call_done(ALICE, "s", "tools/call", long_tool, "ok", 0.001)
    written = len(path.read_text().splitlines())
    assert 0 < written < count + 1
    audit.oauth_event("revocation", "alice", "client-1", "ok")
    out.stopService()
    assert len(path.read_text().splitlines()) == count + 1


def test_the_file_rotates_by_size(tmp_path: Path) -> None:
    """Past rotate_bytes the file is rotated to .1 and a new one begun."""
    clock, audit, out, path = _setup(tmp_path, rotate_bytes=500)
    for _ in range(3):
        for _ in range(5):
            audit.oauth_event("refresh", "alice", "client-1", "ok")
        clock.advance(1.0)
    out.stopService()
    assert (tmp_path / "audit.log.1").exists()


def test_names_are_cut_short(tmp_path: Path) -> None:
    """A client-chosen method or tool name is cut at 128 characters."""
    clock, audit, out, path = _setup(tmp_path)
    audit.call_done(ALICE, "s", "m" * 500, "t" * 500, "error", 0.0)
    out.stopService()
    record = json.loads(path.read_text())
    assert len(record["method"]) == 128 and len(record["tool"]) == 128


def test_audit_lines_never_reach_the_main_log() -> None:
    """Audit lines go to their sink only: no log event carries them."""
    events: list[Any] = []
    observer: Any = events.append
    globalLogPublisher.addObserver(observer)
    try:
        lines: list[str] = []
        audit = AuditLog(Clock(), lines.append)
        audit.call_done(ALICE, "s", "tools/call", "t", "ok", 0.0)
        audit.oauth_event("grant", "alice", "client-1", "ok")
    finally:
        globalLogPublisher.removeObserver(observer)
    assert len(lines) == 2 and events == []


_TEXT = st.text(max_size=20)


@given(
    user=_TEXT,
    client=_TEXT,
    session=_TEXT,
    method=st.text(max_size=200),
    tool=st.none() | st.text(max_size=200),
    outcome=st.sampled_from(["ok", "error", "failed", "refused"]),
    seconds=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_a_request_line_is_what_json_dumps_writes(
    user: str,
    client: str,
    session: str,
    method: str,
    tool: str | None,
    outcome: str,
    seconds: float,
) -> None:
    """Whatever the names (quotes, control characters, any Unicode), the line
    put together from pieces is the text ``json.dumps`` gives the record."""
    clock = Clock()
    clock.advance(1_700_000_000.1234)
    lines: list[str] = []
    audit = AuditLog(clock, lines.append)
    for _ in range(2):  # the second line reuses the remembered session part
        audit.call_done(Identity(user, client), session, method, tool, outcome, seconds)
    record: dict[str, Any] = {
        "time": "2023-11-14T22:13:20.123+00:00",
        "event": "mcp.request",
        "user": user,
        "client_id": client,
        "session": session,
        "method": method[:128],
        "tool": tool[:128] if tool is not None else None,
        "outcome": outcome,
        "latency_ms": round(seconds * 1000.0, 1),
    }
    expected = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    assert lines == [expected, expected]
    assert json.loads(lines[0]) == record


@given(
    st.floats(min_value=0, max_value=4e9, allow_nan=False)
    | st.integers(0, 4 * 10**9).map(lambda n: n + 0.9995)
)
def test_timestamps_are_datetime_isoformat(when: float) -> None:
    """The once-a-second prefix gives exactly ``datetime``'s own text."""
    fresh = _Timestamps()
    assert fresh(when) == _iso_exact(when) == _iso(when)
    assert fresh(when + 0.25) == _iso_exact(when + 0.25)
