# -*- test-case-name: tests.test_logs -*-
"""Tests for `fjmcp.logs`: text and JSON lines, level filter, redaction."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.logger import Logger, LogLevel

from fjmcp.config import load_config
from fjmcp.logs import (
    REDACTED,
    Redactor,
    make_observer,
    register_config_secrets,
)


def _log_to(
    fmt: str, level: str, redactor: Redactor | None = None
) -> tuple[Logger, io.StringIO]:
    out = io.StringIO()
    observer = make_observer(fmt, level, out, redactor=redactor or Redactor())
    return Logger(namespace="fjmcp.test", observer=observer), out


def test_json_lines() -> None:
    """json format writes one object per line with level, namespace and fields."""
    log, out = _log_to("json", "info")
    log.info("session {session} started", session="ab12", pid=42)
    log.warn("second")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["message"] == "session ab12 started"
    assert first["level"] == "info"
    assert first["namespace"] == "fjmcp.test"
    assert first["session"] == "ab12"
    assert first["pid"] == 42
    assert json.loads(lines[1])["level"] == "warn"


def test_json_failure_carries_traceback() -> None:
    """A logged failure is one JSON line with the traceback in a field."""
    log, out = _log_to("json", "info")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.failure("it broke")
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["level"] == "critical"
    assert "RuntimeError: kaput" in event["failure"]


def test_text_lines() -> None:
    """text format writes classic Twisted lines."""
    log, out = _log_to("text", "info")
    log.info("hello {who}", who="world")
    assert out.getvalue().rstrip().endswith("[fjmcp.test#info] hello world")


def test_level_filter() -> None:
    """Events below log_level are dropped."""
    log, out = _log_to("text", "warn")
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    text = out.getvalue()
    assert "#debug" not in text and "#info" not in text
    assert "#warn] w" in text and "#error] e" in text


def test_registered_secret_redacted() -> None:
    """A registered secret never appears, in text or JSON."""
    redactor = Redactor()
    redactor.add_secret("hunter2-the-secret")
    for fmt in ("text", "json"):
        log, out = _log_to(fmt, "debug", redactor)
        log.info("oops {value}", value="x hunter2-the-secret y")
        assert "hunter2-the-secret" not in out.getvalue()
        assert REDACTED in out.getvalue()


@given(secret=st.text(alphabet=st.characters(codec="utf-8"), min_size=4, max_size=40))
def test_registered_secret_redacted_in_json_lines(secret: str) -> None:
    """A secret with quotes, backslashes or control characters is masked in JSON."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    assume(secret not in REDACTED and escaped not in REDACTED)
    redactor = Redactor()
    redactor.add_secret(secret)
    log, out = _log_to("json", "debug", redactor)
    log.info("value {value}", value=secret)
    assert secret not in out.getvalue()
    assert escaped not in out.getvalue()


def test_json_escaped_secret_redacted() -> None:
    """The JSON spelling of a secret with a backslash and a quote is masked."""
    redactor = Redactor()
    redactor.add_secret('se\\cr"et-value')
    log, out = _log_to("json", "debug", redactor)
    log.info("value {value}", value='se\\cr"et-value')
    assert "et-value" not in out.getvalue()


def test_token_shapes_redacted() -> None:
    """Bearer tokens and token=/secret= values are masked; short codes kept."""
    redactor = Redactor()
    text = redactor.redact(
        "Authorization: Bearer abcdefgh12345678 and access_token=zzzzzzzzzzzz "
        '{"refresh_token": "rrrrrrrrrrrr"} client_secret: qqqqqqqqqq exit code=1'
    )
    for secret in ("abcdefgh12345678", "zzzzzzzzzzzz", "rrrrrrrrrrrr", "qqqqqqqqqq"):
        assert secret not in text
    assert "exit code=1" in text


@given(
    secret=st.text(alphabet=st.characters(codec="utf-8"), min_size=4, max_size=40),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_registered_secret_never_survives(secret: str, before: str, after: str) -> None:
    """Whatever surrounds a registered secret, the output does not contain it."""
    redactor = Redactor()
    redactor.add_secret(secret)
    assert secret not in redactor.redact(before + secret + after)


def test_config_secrets_never_logged(tmp_path: Path) -> None:
    """The client secret, registered from the config, is masked in any log line."""
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "FJMCP_PUBLIC_URL": "http://127.0.0.1:8080",
        "FJMCP_FORGEJO_URL": "https://forgejo.example.org",
        "FJMCP_FORGEJO_CLIENT_ID": "client",
        "FJMCP_FORGEJO_CLIENT_SECRET": "very-secret-client-secret",
        "FJMCP_CHILD_COMMAND": "python3",
        "FJMCP_STORE_PATH": str(tmp_path / "s.sqlite3"),
    }
    config = load_config(environ=env)
    redactor = Redactor()
    register_config_secrets(config, redactor)
    log, out = _log_to("json", "debug", redactor)
    log.error("upstream said {body}", body="bad client very-secret-client-secret")
    log.info("config {config!r}", config=config)
    captured = out.getvalue()
    assert "very-secret-client-secret" not in captured
    assert captured.count("\n") == 2


def test_twisted_chatter_is_left_out_unless_debug() -> None:
    """Twisted's info events are dropped at info, kept at debug; warnings stay."""
    for level, shown in (("info", False), ("debug", True)):
        out = io.StringIO()
        observer = make_observer("text", level, out, redactor=Redactor())
        twisted_log = Logger(namespace="twisted.internet.base", observer=observer)
        twisted_log.info("Main loop terminated.")
        twisted_log.warn("a twisted warning")
        observer(
            {
                "log_namespace": "log_legacy",
                "log_level": LogLevel.info,
                "log_format": "Site starting on 8080",
                "log_time": 0.0,
            }
        )
        Logger(namespace="fjmcp.service", observer=observer).info("fjmcp listening")
        text = out.getvalue()
        assert ("Main loop terminated" in text) is shown
        assert ("starting on 8080" in text) is shown
        assert "a twisted warning" in text and "fjmcp listening" in text
