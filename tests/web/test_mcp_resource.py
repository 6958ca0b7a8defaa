# -*- test-case-name: tests.web.test_mcp_resource -*-
"""
Tests for `fjmcp.web.mcp_resource`: every status-code branch of ``/mcp`` in
the order the checks run, CORS, priming by version, the GET stream, and
Hypothesis on headers and bodies (never a 500).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from fjmcp.bridge.router import SessionBridge
from fjmcp.interfaces import Identity
from fjmcp.web.mcp_resource import accepts, origin_of, version_at_least
from tests.bridge.support import (
    ALICE,
    CHALLENGE,
    Harness,
    make_config,
    note,
    result,
    rpc,
)

INIT = rpc(
    0,
    "initialize",
    {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
)


def _busy(session: Any) -> bool:
    return bool(session.busy)


def _error(req: Any) -> dict[str, Any]:
    body = req.json()
    assert body["jsonrpc"] == "2.0" and "error" in body
    return dict(body["error"])


# -- Host and Origin ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"127.0.0.1:8080", 200),
        (b"localhost:1234", 200),
        (b"[::1]:8080", 200),
        (b"evil.example:8080", 403),
        (b"10.0.0.1", 403),
    ],
)
def test_loopback_public_url_refuses_other_host_names(host: bytes, status: int) -> None:
    """With a loopback public_url, only loopback Host names (any port) get through."""
    h = Harness()
    req = h.post(INIT, headers={b"host": host})
    assert req.status == status
    if status == 403:
        assert _error(req)["code"] == -32600
        assert h.spawner.children == []


def test_public_host_names_are_not_checked_for_a_public_url() -> None:
    """A non-loopback public_url does not restrict Host (a proxy fronts it)."""
    h = Harness(config=make_config(public_url="https://mcp.example.org"))
    req = h.post(INIT, headers={b"host": b"mcp.example.org"})
    assert req.status == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (b"http://127.0.0.1:8080", 200),
        (b"HTTP://127.0.0.1:8080", 200),
        (b"https://app.example", 200),
        (b"http://127.0.0.1:9999", 403),
        (b"https://evil.example", 403),
        (b"null", 403),
    ],
)
def test_origin_must_be_public_or_allowed(origin: bytes, status: int) -> None:
    """Origin is public_url's origin or in allowed_origins; else 403 before auth."""
    h = Harness(config=make_config(allowed_origins=("https://app.example/",)))
    req = h.post(INIT, headers={b"origin": origin}, token=None)
    expected = 401 if status == 200 else 403  # no token: an allowed origin reaches auth
    assert req.status == expected
    if expected == 401:
        assert req.header(b"access-control-allow-origin") == origin
        exposed = req.header(b"access-control-expose-headers") or b""
        assert b"WWW-Authenticate" in exposed and b"Mcp-Session-Id" in exposed
        assert b"MCP-Protocol-Version" in exposed


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (b"http://127.0.0.1:41234", 200),
        (b"http://127.0.0.1", 200),
        (b"http://localhost:3000", 200),
        (b"http://[::1]:5173", 200),
        (b"https://127.0.0.1:41234", 403),
        (b"http://127.0.0.2:41234", 403),
        (b"http://127.0.0.1:41234/x", 403),
        (b"http://user@127.0.0.1:41234", 403),
        (b"http://127.0.0.1:notaport", 403),
        (b"http://[::1", 403),
        (b"http://evil.example:41234", 403),
    ],
)
def test_allowed_origin_with_any_port(origin: bytes, status: int) -> None:
    """``scheme://host:*`` in allowed_origins admits that host on any port only."""
    h = Harness(
        config=make_config(
            allowed_origins=(
                "http://127.0.0.1:*",
                "http://localhost:*",
                "http://[::1]:*",
            )
        )
    )
    req = h.post(INIT, headers={b"origin": origin}, token=None)
    assert req.status == (401 if status == 200 else 403)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_any_port_origin_check_never_raises(origin: bytes) -> None:
    """Any Origin bytes get a plain yes or no; only loopback http origins pass."""
    h = Harness(config=make_config(allowed_origins=("http://127.0.0.1:*",)))
    allowed = h.resource._origin_allowed(origin.strip().lower())
    if allowed:
        assert origin.strip().lower().startswith(b"http://127.0.0.1")


def test_cors_preflight_for_allowed_origin() -> None:
    """OPTIONS from an allowed origin answers 204 with methods and headers."""
    h = Harness()
    req = h.request(
        b"OPTIONS",
        token=None,
        headers={
            b"origin": b"http://127.0.0.1:8080",
            b"access-control-request-method": b"POST",
            b"access-control-request-headers": b"authorization, mcp-session-id",
        },
    )
    assert req.status == 204
    assert b"POST" in (req.header(b"access-control-allow-methods") or b"")
    assert req.header(b"access-control-allow-headers") == (
        b"authorization, mcp-session-id"
    )
    assert req.header(b"access-control-allow-origin") == b"http://127.0.0.1:8080"
    bad = h.request(
        b"OPTIONS", token=None, headers={b"origin": b"https://evil.example"}
    )
    assert bad.status == 403


def test_other_methods_get_405() -> None:
    """PUT and friends are not part of the transport."""
    h = Harness()
    req = h.request(b"PUT", {"x": 1})
    assert req.status == 405 and b"POST" in (req.header(b"allow") or b"")


# -- bearer -------------------------------------------------------------------------


def test_missing_token_gets_401_with_challenge() -> None:
    """No Authorization: 401 with the challenge, no error attribute."""
    h = Harness()
    req = h.post(INIT, token=None)
    assert req.status == 401
    assert req.header(b"www-authenticate") == CHALLENGE.encode()
    assert _error(req)["code"] == -32600


def test_bad_token_gets_401_with_invalid_token() -> None:
    """An unknown token: 401 with error="invalid_token"; no child started."""
    h = Harness()
    req = h.post(INIT, token=b"Bearer nope")
    assert req.status == 401
    assert b'error="invalid_token"' in (req.header(b"www-authenticate") or b"")
    assert h.spawner.children == []


def test_slow_bearer_check_continues_when_it_fires() -> None:
    """A cache miss (pending Deferred) holds the request until the check answers."""
    h = Harness()
    pending: Deferred[Identity] = Deferred()
    h.auth.deferred = pending
    req = h.post(INIT)
    assert req.finished == 0 and h.spawner.children == []
    pending.callback(ALICE)
    assert req.header(b"mcp-session-id") is not None
    assert len(h.spawner.children) == 1


def test_broken_bearer_backend_gets_503() -> None:
    """A failure other than InvalidToken is 503, not 401 (and not 500)."""
    h = Harness()
    h.auth.deferred = fail(RuntimeError("store down"))
    req = h.post(INIT)
    assert req.status == 503


# -- sessions -----------------------------------------------------------------------


def test_initialize_starts_a_session_with_the_users_token() -> None:
    """POST initialize: a child with the user's token, an unguessable session id."""
    h = Harness()
    sid, child, req = h.initialize()
    secret = sid.rpartition(".")[2]  # after "<node_id>."
    assert len(secret) == 32 and all(0x21 <= ord(c) <= 0x7E for c in sid)
    assert child.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-1"
    assert req.header(b"content-type") == b"text/event-stream"
    assert req.header(b"cache-control") == b"no-cache"
    assert req.header(b"x-accel-buffering") == b"no"
    session = h.registry.get(sid)
    assert session is not None
    assert isinstance(session.router, SessionBridge)
    assert session.router.protocol_version == "2025-11-25"


def test_initialize_in_json_mode() -> None:
    """With only JSON acceptable, the initialize result comes as one JSON body."""
    h = Harness()
    sid, _, req = h.initialize(accept=b"application/json")
    assert req.header(b"content-type") == b"application/json"
    assert req.json()["result"]["protocolVersion"] == "2025-11-25"
    assert req.header(b"mcp-session-id") == sid.encode()


def test_missing_session_header_is_400_invalid_request() -> None:
    """Non-initialize POST, GET and DELETE without Mcp-Session-Id: 400 / -32600."""
    h = Harness()
    h.initialize()
    for req in (
        h.post(rpc(1, "tools/list")),
        h.request(b"GET", accept=b"text/event-stream"),
        h.request(b"DELETE"),
    ):
        assert req.status == 400
        assert _error(req)["code"] == -32600
        assert "Mcp-Session-Id" in _error(req)["message"]


def test_unknown_session_is_404() -> None:
    """An id the broker does not know gets 404 (the client re-initializes)."""
    h = Harness()
    h.initialize()
    assert h.post(rpc(1, "ping"), session="not-a-session").status == 404
    assert h.request(b"DELETE", session="nope").status == 404


def test_after_a_restart_old_session_ids_get_404() -> None:
    """A new registry (a restarted broker) knows none of the old ids."""
    h = Harness()
    sid, _, _ = h.initialize()
    restarted = Harness()
    req = restarted.post(rpc(1, "ping"), session=sid)
    assert req.status == 404
    assert restarted.spawner.children == []


def test_another_identity_gets_403() -> None:
    """Another user, or the same user through another client, gets 403."""
    h = Harness()
    sid, child, _ = h.initialize()
    before = len(child.written)
    assert h.post(rpc(1, "ping"), session=sid, token=b"Bearer bob-token").status == 403
    assert (
        h.post(rpc(1, "ping"), session=sid, token=b"Bearer alice-b-token").status == 403
    )
    assert len(child.written) == before


def test_delete_ends_the_session_and_stops_the_child() -> None:
    """DELETE: 204, child stopped, later requests 404."""
    h = Harness()
    sid, child, _ = h.initialize()
    req = h.request(b"DELETE", session=sid)
    assert req.status == 204
    assert child.stop_calls == 1 and not child.alive
    assert h.post(rpc(1, "ping"), session=sid).status == 404


def test_caps_give_503_and_429_with_retry_after() -> None:
    """max_children -> 503, max_children_per_user -> 429; each names its cap."""
    h = Harness(config=make_config(max_children=2, max_children_per_user=1))
    h.initialize()
    per_user = h.post(INIT)
    assert per_user.status == 429
    assert per_user.responseMessage == b"Too Many Requests"
    assert per_user.header(b"retry-after") is not None
    assert _error(per_user)["data"]["cap"] == "max_children_per_user"
    assert per_user.json()["id"] == 0  # the refused initialize's id
    h.initialize(token=b"Bearer bob-token")
    overall = h.post(INIT, token=b"Bearer alice-b-token")
    assert overall.status == 503
    assert _error(overall)["data"] == {"cap": "max_children", "limit": 2}
    assert len(h.spawner.children) == 2


def test_ended_sessions_free_their_cap() -> None:
    """A deleted session's child no longer counts against the caps."""
    h = Harness(config=make_config(max_children_per_user=1))
    sid, _, _ = h.initialize()
    h.request(b"DELETE", session=sid)
    assert h.post(INIT).status == 200


def test_a_child_still_stopping_counts_against_the_caps() -> None:
    """Caps count children: a deleted session's child counts until it is reaped."""
    h = Harness(config=make_config(max_children_per_user=1))
    sid, child, _ = h.initialize()
    child.stop_hangs = True  # ignores SIGTERM, say, for child_stop_grace
    assert h.request(b"DELETE", session=sid).status == 204
    assert h.post(INIT).status == 429
    child.exit()
    assert h.post(INIT).status == 200


def test_user_without_forgejo_token_gets_401() -> None:
    """No stored Forgejo token: 401 with the challenge (sign in again)."""
    h = Harness()
    h.tokens.missing.add("alice")
    req = h.post(INIT)
    assert req.status == 401 and req.header(b"www-authenticate") is not None
    assert h.registry.counts().sessions == 0


def test_spawn_failure_gets_503() -> None:
    """A child that cannot start: 503 and nothing counted."""
    h = Harness()
    h.spawner.fail_with = OSError("no such file")
    req = h.post(INIT)
    assert req.status == 503
    assert h.post(INIT).status == 503
    h.spawner.fail_with = None
    assert h.post(INIT).status == 200


def test_initialize_inside_a_session_is_refused() -> None:
    """A second initialize on an existing session: 400, not forwarded."""
    h = Harness()
    sid, child, _ = h.initialize()
    before = len(child.written)
    req = h.post(INIT, session=sid)
    assert req.status == 400 and len(child.written) == before


# -- the message -----------------------------------------------------------------


def test_content_type_must_be_json() -> None:
    """A non-JSON Content-Type is 415."""
    h = Harness()
    sid, _, _ = h.initialize()
    assert h.post(rpc(1, "ping"), session=sid, content_type=b"text/plain").status == 415
    assert h.post(rpc(1, "ping"), session=sid, content_type=None).status == 415
    ok = h.post(
        rpc(1, "ping"), session=sid, content_type=b"application/json; charset=utf-8"
    )
    assert ok.status == 200


def test_accept_must_allow_sse_or_json() -> None:
    """Accept without either type is 406; GET needs event-stream."""
    h = Harness()
    sid, _, _ = h.initialize()
    assert h.post(rpc(1, "ping"), session=sid, accept=b"text/html").status == 406
    q0 = b"text/event-stream;q=0, application/json;q=0"
    assert h.post(rpc(1, "ping"), session=sid, accept=q0).status == 406
    assert h.request(b"GET", session=sid, accept=b"application/json").status == 406


def test_malformed_bodies_get_json_rpc_errors() -> None:
    """Not JSON: 400/-32700; not JSON-RPC: 400/-32600; nothing reaches the child."""
    h = Harness()
    sid, child, _ = h.initialize()
    before = len(child.written)
    bad = h.post(b"{not json", session=sid)
    assert bad.status == 400 and _error(bad)["code"] == -32700
    worse = h.post({"hello": 1}, session=sid)
    assert worse.status == 400 and _error(worse)["code"] == -32600
    assert len(child.written) == before


def test_notifications_and_responses_get_202() -> None:
    """A notification is written to the child and answered 202 with no body."""
    h = Harness()
    sid, child, _ = h.initialize()
    req = h.post(note("notifications/initialized"), session=sid)
    assert req.status == 202 and req.body == b""
    assert json.loads(child.written[-1])["method"] == "notifications/initialized"


def test_batches_only_for_2025_03_26_sessions() -> None:
    """A batch is refused for 2025-06-18 and carried for a 2025-03-26 session."""
    h = Harness()
    sid, _, _ = h.initialize("2025-06-18")
    batch = [rpc(1, "ping"), rpc(2, "ping")]
    refused = h.post(batch, session=sid)
    assert refused.status == 400 and "2025-03-26" in _error(refused)["message"]

    old_sid, child, _ = h.initialize("2025-03-26", token=b"Bearer bob-token")
    sse = h.post(batch + [note("n")], session=old_sid, token=b"Bearer bob-token")
    child.emit(result(2))
    assert sse.finished == 0
    child.emit(result(1))
    assert sse.finished == 1 and [m["id"] for m in sse.messages()] == [2, 1]
    js = h.post(
        batch, session=old_sid, token=b"Bearer bob-token", accept=b"application/json"
    )
    child.emit(result(1))
    child.emit(result(2))
    assert [m["id"] for m in js.json()] == [1, 2]


def test_protocol_version_header_must_match_the_negotiated_one() -> None:
    """A newer or unknown MCP-Protocol-Version is 400; absent means negotiated."""
    h = Harness()
    sid, _, _ = h.initialize("2025-11-25", answer_version="2025-06-18")
    assert h.post(rpc(1, "ping"), session=sid, version=b"2025-11-25").status == 400
    assert h.post(rpc(2, "ping"), session=sid, version=b"2025-06-18").status == 200
    assert h.post(rpc(3, "ping"), session=sid).status == 200
    assert h.request(b"DELETE", session=sid, version=b"1999-01-01").status == 400


def test_older_protocol_version_header_is_accepted() -> None:
    """
    An older session-based version than the negotiated one is accepted (the
    SDK servers accept any supported one; conformance 0.1.16 sends
    2025-03-26 on 2025-11-25 sessions), and the session stays primed.
    """
    h = Harness()
    sid, _, _ = h.initialize("2025-11-25")
    for i, version in enumerate((b"2025-03-26", b"2025-06-18", b"2025-11-25")):
        call = h.post(rpc(i, "ping"), session=sid, version=version)
        assert call.status == 200
        first = call.events()[0]
        assert first["data"] == "" and first["id"] and first["retry"] == 1000
    assert h.post(rpc(9, "ping"), session=sid, version=b"2024-11-05").status == 400
    assert h.post(rpc(10, "ping"), session=sid, version=b"2026-01-01").status == 400


def test_2024_11_05_only_as_negotiated_by_the_child() -> None:
    """2024-11-05 is accepted only for a session whose child negotiated it."""
    h = Harness()
    sid, _, _ = h.initialize("2025-06-18")
    assert h.post(rpc(1, "ping"), session=sid, version=b"2024-11-05").status == 400
    old, _, _ = h.initialize("2024-11-05", token=b"Bearer bob-token")
    req = h.post(
        rpc(1, "ping"), session=old, version=b"2024-11-05", token=b"Bearer bob-token"
    )
    assert req.status == 200


# -- streams -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "primed"),
    [("2025-11-25", True), ("2025-06-18", False), ("2025-03-26", False)],
)
def test_priming_event_only_from_2025_11_25(version: str, primed: bool) -> None:
    """
    2025-11-25 streams start with id + empty data + retry; older ones send
    nothing before the answer (which then goes out as JSON).
    """
    h = Harness()
    sid, child, init = h.initialize(version)
    if primed:
        assert init.events()[0]["data"] == ""
    else:
        assert init.header(b"content-type") == b"application/json"
    call = h.post(rpc(1, "ping"), session=sid)
    if primed:
        events = call.events()
        assert (
            events[0]["data"] == "" and events[0]["id"] and events[0]["retry"] == 1000
        )
    else:
        assert call.body == b"" and not call.finished
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert bool(get.events()) is primed


BOTH = b"application/json, text/event-stream"


def test_an_answer_sent_first_goes_out_as_json() -> None:
    """
    Without priming, a client that accepts both gets the answer as one JSON
    body with a length: nothing else was sent for the request.
    """
    h = Harness()
    sid, child, _ = h.initialize("2025-06-18")
    call = h.post(rpc(7, "tools/call", {"name": "x"}), session=sid, accept=BOTH)
    child.emit(result(7, {"ok": True}))
    assert call.finished == 1 and call.status == 200
    assert call.header(b"content-type") == b"application/json"
    assert call.header(b"content-length") == b"%d" % len(call.body)
    assert call.json() == {"jsonrpc": "2.0", "id": 7, "result": {"ok": True}}
    assert not _busy(h.registry.sessions()[0])


def test_a_notification_before_the_answer_makes_a_stream() -> None:
    """Progress before the answer: the response becomes an SSE stream of both."""
    h = Harness()
    sid, child, _ = h.initialize("2025-06-18")
    params = {"name": "x", "_meta": {"progressToken": "p"}}
    call = h.post(rpc(8, "tools/call", params), session=sid, accept=BOTH)
    progress = note("notifications/progress", {"progressToken": "p", "progress": 1})
    child.emit(json.dumps(progress).encode())
    assert call.header(b"content-type") == b"text/event-stream"
    child.emit(result(8))
    assert call.finished == 1
    assert [m.get("method") for m in call.messages()] == [
        "notifications/progress",
        None,
    ]
    assert call.messages()[-1]["id"] == 8


def test_a_keepalive_before_the_answer_makes_a_stream() -> None:
    """A slow answer is kept alive as a stream; the answer is its last event."""
    h = Harness()
    sid, child, _ = h.initialize("2025-06-18")
    call = h.post(rpc(9, "tools/call", {"name": "x"}), session=sid, accept=BOTH)
    h.clock.advance(16)
    assert call.header(b"content-type") == b"text/event-stream"
    assert b": keep-alive" in call.body
    child.emit(result(9))
    assert call.finished == 1 and call.messages()[-1]["id"] == 9


def test_a_client_accepting_only_a_stream_gets_one() -> None:
    """Accept: text/event-stream alone is always answered with a stream."""
    h = Harness()
    sid, child, _ = h.initialize("2025-06-18")
    call = h.post(rpc(3, "ping"), session=sid, accept=b"text/event-stream")
    child.emit(result(3))
    assert call.header(b"content-type") == b"text/event-stream"
    assert call.messages() == [{"jsonrpc": "2.0", "id": 3, "result": {}}]


def test_a_batch_is_answered_on_a_stream() -> None:
    """A 2025-03-26 batch of two requests: both answers are events of one stream."""
    h = Harness()
    sid, child, _ = h.initialize("2025-03-26")
    call = h.post([rpc(1, "ping"), rpc(2, "ping")], session=sid, accept=BOTH)
    child.emit(result(2))
    child.emit(result(1))
    assert call.header(b"content-type") == b"text/event-stream"
    assert sorted(m["id"] for m in call.messages()) == [1, 2]
    assert call.finished == 1


def test_a_session_ending_before_the_answer_answers_its_error_as_json() -> None:
    """The session ends first: its -32603 error is the JSON answer."""
    h = Harness()
    sid, child, _ = h.initialize("2025-06-18")
    call = h.post(rpc(4, "ping"), session=sid, accept=BOTH)
    h.request(b"DELETE", session=sid)
    assert call.finished == 1
    assert call.header(b"content-type") == b"application/json"
    assert call.json()["error"]["code"] == -32603


def test_get_stream_is_one_per_session() -> None:
    """A second concurrent GET stream is 409; after the first drops, a new one opens."""
    h = Harness()
    sid, _, _ = h.initialize()
    first = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert first.status == 200 and first.finished == 0
    second = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert second.status == 409
    first.disconnect()
    third = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert third.status == 200 and third.finished == 0


def test_idle_streams_get_keepalive_comments() -> None:
    """Every sse_keepalive_interval of silence, the GET stream gets a comment."""
    h = Harness()
    sid, _, _ = h.initialize()
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    before = get.body
    h.clock.advance(h.config.sse_keepalive_interval - 1)
    assert get.body == before
    h.clock.advance(1)
    assert get.body.endswith(b": keep-alive\n\n")
    get.disconnect()
    h.clock.advance(100)
    assert get.body.count(b"keep-alive") == 1


def test_get_stream_and_in_flight_request_keep_the_session_busy() -> None:
    """An open GET stream or a request in flight makes a session not idle."""
    h = Harness()
    sid, child, _ = h.initialize()
    session = h.registry.get(sid)
    assert session is not None and not _busy(session)
    get = h.request(b"GET", session=sid, accept=b"text/event-stream")
    assert _busy(session)
    get.disconnect()
    assert not _busy(session)
    h.post(rpc(1, "ping"), session=sid)
    assert _busy(session)
    child.emit(result(1))
    assert not _busy(session)


def test_unknown_last_event_id_opens_a_fresh_stream() -> None:
    """A Last-Event-ID the session no longer keeps just opens the standalone stream."""
    h = Harness()
    sid, _, _ = h.initialize()
    req = h.request(
        b"GET",
        session=sid,
        accept=b"text/event-stream",
        headers={b"last-event-id": b"99-1"},
    )
    assert req.status == 200 and req.finished == 0


def test_helpers() -> None:
    """Accept parsing, origin normalization and version comparison."""
    assert accepts(None) == (True, True)
    assert accepts(b"*/*") == (True, True)
    assert accepts(b"application/json") == (False, True)
    assert accepts(b"text/event-stream;q=0.5") == (True, False)
    assert accepts(b"application/json;q=0") == (False, False)
    assert origin_of("https://A.example:443/path") == "https://a.example"
    assert origin_of("http://[::1]:8080") == "http://[::1]:8080"
    assert version_at_least("2025-11-25", "2025-11-25")
    assert not version_at_least("2025-06-18", "2025-11-25")
    assert not version_at_least("2026-99-99", "2025-11-25")
    assert not version_at_least(None, "2025-03-26")


# -- Hypothesis: no input makes a 500 ---------------------------------------------

header_values = st.binary(max_size=60).filter(
    lambda b: b"\n" not in b and b"\r" not in b
)


@given(
    method=st.sampled_from([b"POST", b"GET", b"DELETE", b"OPTIONS", b"PATCH"]),
    body=st.binary(max_size=200),
    accept=st.one_of(st.none(), header_values),
    ctype=st.one_of(st.none(), header_values, st.just(b"application/json")),
    version=st.one_of(st.none(), header_values),
    last_event=st.one_of(st.none(), header_values),
    use_session=st.booleans(),
)
def test_no_request_gets_a_500(
    method: bytes,
    body: bytes,
    accept: bytes | None,
    ctype: bytes | None,
    version: bytes | None,
    last_event: bytes | None,
    use_session: bool,
) -> None:
    """Random headers and bodies never crash the resource or answer 500."""
    h = Harness()
    sid, _, _ = h.initialize()
    headers = {b"last-event-id": last_event} if last_event is not None else {}
    req = h.request(
        method,
        body,
        session=sid if use_session else None,
        accept=accept,
        content_type=ctype,
        version=version,
        headers=headers,
    )
    assert req.status < 500 or req.status == 503
    assert req.status in {200, 202, 204, 400, 403, 404, 405, 406, 409, 415, 429, 503}


@given(st.binary(max_size=300))
def test_random_initialize_bodies_never_500(body: bytes) -> None:
    """Random bodies without a session are refused cleanly or start a session."""
    h = Harness()
    req = h.post(body)
    assert req.status in {200, 400, 415}
    if req.status == 400:
        assert _error(req)["code"] in (-32700, -32600)


def test_site_skips_form_parsing_for_mcp(monkeypatch: pytest.MonkeyPatch) -> None:
    """/mcp POSTs never reach twisted.web's slow Content-Type parser; others do."""
    from twisted.web import http
    from twisted.web.resource import Resource
    from twisted.web.test.requesthelper import DummyChannel

    from fjmcp.web.site import BrokerSite, LimitedRequest, SiteSettings

    parsed: list[bytes] = []

    def record(line: bytes) -> bytes:
        parsed.append(line)
        return b"x"

    monkeypatch.setattr(http, "_parseContentType", record)
    site = BrokerSite(
        Resource(),
        reactor=Clock(),
        settings=SiteSettings(max_request_bytes=100, request_timeout=5),
    )
    for path in (b"/mcp", b"/oauth/token"):
        channel = DummyChannel()
        channel.site = site
        req = LimitedRequest(channel)
        req.requestHeaders.setRawHeaders(
            b"content-type", [b"application/x-www-form-urlencoded"]
        )
        req.gotLength(3)
        req.handleContentChunk(b"a=b")
        req.requestReceived(b"POST", path, b"HTTP/1.1")
    assert parsed == [b"application/x-www-form-urlencoded"]  # only /oauth/token
