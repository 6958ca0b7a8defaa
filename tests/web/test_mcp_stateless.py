# -*- test-case-name: tests.web.test_mcp_stateless -*-
"""
Tests of stateless (2026-07-28) requests on ``/mcp``: input no child may
see, telling the two kinds of client apart, the per-request checks and
their statuses, ``server/discover``, the identity's broker-initialized
child (shared, counted, capped, respawned), id and progress-token
remapping (with Hypothesis under concurrency), logs, cancellation and the
-32021 rule.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from attrs import define, field
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjmcp.bridge.stateless import IdentityBridge
from fjmcp.interfaces import ChildExit, Identity
from fjmcp.sessions.owner import IdentityKey
from tests.bridge.stateless_support import (
    LOG,
    MODERN,
    SERVER_INFO,
    answer,
    bring_up,
    envelope,
    requests_to,
    send,
)
from tests.bridge.support import ALICE, BOB, Harness, make_config, rpc

TOOLS_CALL = ("tools/call", {"name": "echo", "arguments": {"text": "hi"}})


def _up(h: Harness) -> Any:
    """A discover that starts and brings up Alice's identity child."""
    req = send(h, envelope(1, "server/discover"))
    child = h.spawner.last
    bring_up(child)
    assert req.status == 200, req.body
    return child


def _calls(child: Any) -> list[dict[str, Any]]:
    return [m for m in requests_to(child) if m.get("method") == "tools/call"]


# -- input the child never sees ---------------------------------------------------


BAD_BODIES = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\ud800"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"\\uDC00x":1}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xed\xa0\x80"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xff"}}',
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_session_client_gets_a_parse_error_for_text_no_utf8_carries(
    body: bytes,
) -> None:
    """Lone surrogates and invalid UTF-8 from a session client: 400, -32700, id null."""
    h = Harness()
    sid, child, _ = h.initialize()
    before = len(child.written)
    req = h.post(body, session=sid)
    assert req.status == 400
    assert req.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": req.json()["error"]["message"]},
    }
    assert len(child.written) == before


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_stateless_client_gets_a_parse_error_for_text_no_utf8_carries(
    body: bytes,
) -> None:
    """The same bodies with a 2026-07-28 header: 400, -32700, and no child at all."""
    h = Harness()
    req = h.post(
        body,
        headers={
            b"mcp-protocol-version": MODERN.encode(),
            b"mcp-method": b"tools/call",
        },
    )
    assert req.status == 400
    assert req.json()["error"]["code"] == -32700
    assert req.json()["id"] is None
    assert h.spawner.children == []


def test_a_surrogate_pair_is_ordinary_text() -> None:
    """An escaped surrogate *pair* is one code point and reaches the child."""
    h = Harness()
    child = _up(h)
    body = envelope(2, "tools/call", {"name": "echo", "arguments": {"t": "\U0001f600"}})
    raw = json.dumps(body).encode()  # ensure_ascii: "\ud83d\ude00"
    assert b"\\ud83d" in raw
    send(h, body)
    assert _calls(child)[0]["params"]["arguments"] == {"t": "\U0001f600"}


# -- telling clients apart ------------------------------------------------------


def test_initialize_still_starts_a_session() -> None:
    """A plain initialize gets a session id, and no identity owner appears."""
    h = Harness()
    sid, _, _ = h.initialize()
    assert sid
    assert h.registry.identity_owners() == 0


def test_a_stateless_request_gets_no_session_id() -> None:
    """A request whose _meta names a version is served without a session."""
    h = Harness()
    req = send(h, envelope(1, "server/discover"))
    bring_up(h.spawner.last)
    assert req.status == 200
    assert req.header(b"mcp-session-id") is None
    assert h.registry.identity_owners() == 1
    assert h.registry.counts().identities == 1


@define
class _Calls:
    """Records what the bridge tells the audit log and the metrics."""

    done: list[tuple[str, str, str, str | None, str]] = field(factory=list)

    def call_done(
        self,
        identity: Identity,
        session: str,
        method: str,
        tool: str | None,
        outcome: str,
        seconds: float,
    ) -> None:
        self.done.append((identity.user, session, method, tool, outcome))


def test_every_request_a_child_answers_or_fails_is_heard_once() -> None:
    """
    The audit log and the metrics hear of each stateless request the child
    answered (``ok`` or ``error``) or could not (``failed``), named by the
    identity and the tool, as they do for session clients.
    """
    calls = _Calls()
    h = Harness(calls=calls)
    child = _up(h)
    ok = send(h, envelope(2, *TOOLS_CALL))
    answer(child, _calls(child)[-1]["id"], {"content": []})
    assert ok.status == 200, ok.body
    refused = send(h, envelope(3, *TOOLS_CALL))
    error = {"code": -32602, "message": "bad arguments"}
    child.emit(
        json.dumps(
            {"jsonrpc": "2.0", "id": _calls(child)[-1]["id"], "error": error}
        ).encode()
    )
    assert b"bad arguments" in refused.body
    lost = send(h, envelope(4, *TOOLS_CALL))
    child.exit(ChildExit("exited", exit_code=1))
    assert b"error" in lost.body
    outcomes = [(m, t, o) for _, _, m, t, o in calls.done]
    assert outcomes[-3:] == [
        ("tools/call", "echo", "ok"),
        ("tools/call", "echo", "error"),
        ("tools/call", "echo", "failed"),
    ]
    assert {user for user, *_ in calls.done} == {"alice"}
    assert len({session for _, session, *_ in calls.done}) == 1


def test_stateless_meta_wins_over_a_stale_session_header() -> None:
    """The body decides: a stateless request with an unknown session id is served."""
    h = Harness()
    body = envelope(1, "server/discover")
    req = send(h, body, headers={b"mcp-session-id": b"nope"})
    bring_up(h.spawner.last)
    assert req.status == 200


def test_a_session_request_without_the_new_headers_is_unchanged() -> None:
    """A session client's tools/call needs no Mcp-Method (it never sends one)."""
    h = Harness()
    sid, child, _ = h.initialize()
    h.post(rpc(5, "tools/list"), session=sid)
    assert json.loads(child.written[-1])["method"] == "tools/list"


def test_an_unknown_method_of_a_session_client_is_not_a_404() -> None:
    """404/-32601 is for stateless requests only (a session reads 404 as gone)."""
    h = Harness()
    sid, child, _ = h.initialize()
    req = h.post(rpc(5, "nope/x"), session=sid)
    assert req.status == 200
    assert json.loads(child.written[-1])["method"] == "nope/x"


# -- per-request checks -----------------------------------------------------------


def test_missing_meta_keys_are_400_invalid_params() -> None:
    """No clientCapabilities: 400, -32602 naming it, the id echoed, no child."""
    h = Harness()
    body = envelope(7, "tools/list")
    del body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    req = send(h, body)
    assert req.status == 400
    error = req.json()["error"]
    assert error["code"] == -32602
    assert "clientCapabilities" in error["message"]
    assert req.json()["id"] == 7
    assert h.spawner.children == []


def test_only_the_version_header_routes_to_the_stateless_checks() -> None:
    """No _meta at all but a 2026-07-28 header: 400, -32602 (not the session 400)."""
    h = Harness()
    req = h.post(
        rpc(3, "tools/list"),
        headers={
            b"mcp-protocol-version": MODERN.encode(),
            b"mcp-method": b"tools/list",
        },
    )
    assert req.status == 400
    assert req.json()["error"]["code"] == -32602


def test_an_unsupported_version_is_32022_with_supported_and_requested() -> None:
    """A version the broker does not serve: 400, -32022, data.supported/requested."""
    h = Harness()
    body = envelope(2, "tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    req = send(h, body, headers={b"mcp-protocol-version": b"2099-01-01"})
    assert req.status == 400
    error = req.json()["error"]
    assert error["code"] == -32022
    assert error["data"] == {"supported": [MODERN], "requested": "2099-01-01"}


@pytest.mark.parametrize(
    ("override", "drop"),
    [
        ({b"mcp-method": b"tools/list"}, None),
        ({}, b"mcp-method"),
        ({}, b"mcp-name"),
        ({}, b"mcp-protocol-version"),
        ({b"mcp-name": b"other"}, None),
        ({b"mcp-name": b"=?base64?b3RoZXI=?="}, None),
        ({b"mcp-name": b"=?base64?ZWNobw?=?="}, None),
        ({b"mcp-protocol-version": b"2025-11-25"}, None),
    ],
)
def test_routing_headers_must_match_the_body(
    override: dict[bytes, bytes], drop: bytes | None
) -> None:
    """A missing, different or malformed routing header: 400, -32020, no child."""
    h = Harness()
    body = envelope(4, *TOOLS_CALL)
    from tests.bridge.stateless_support import routing_headers

    headers = routing_headers(body)
    headers.update(override)
    if drop is not None:
        del headers[drop]
    req = h.post(body, headers=headers)
    assert req.status == 400, req.body
    assert req.json()["error"]["code"] == -32020
    assert req.json()["id"] == 4
    assert h.spawner.children == []


def test_a_base64_name_header_matches_its_decoded_value() -> None:
    """``Mcp-Name: =?base64?...?=`` is compared after decoding."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(2, "tools/call", {"name": "héllo wörld", "arguments": {}}))
    assert _calls(child), req.body


def test_a_repeated_routing_header_is_a_mismatch() -> None:
    """Two Mcp-Method values: 400, -32020."""
    h = Harness()
    body = envelope(4, "tools/list")
    from tests.bridge.support import TestRequest

    req = TestRequest(
        b"POST",
        {
            b"host": b"127.0.0.1:8080",
            b"authorization": b"Bearer alice-token",
            b"accept": b"application/json, text/event-stream",
            b"content-type": b"application/json",
            b"mcp-protocol-version": MODERN.encode(),
        },
        json.dumps(body).encode(),
    )
    req.requestHeaders.setRawHeaders(b"mcp-method", [b"tools/list", b"tools/list"])
    h.resource.render(req)
    assert req.status == 400
    assert req.json()["error"]["code"] == -32020


@pytest.mark.parametrize("method", ["nope/x", "initialize", "ping", "logging/setLevel"])
def test_unknown_or_removed_methods_are_404(method: str) -> None:
    """Stateless: a method the revision does not have is 404 with -32601."""
    h = Harness()
    req = send(h, envelope(9, method))
    assert req.status == 404
    assert req.json()["error"]["code"] == -32601
    assert req.json()["id"] == 9


def test_a_method_the_child_cannot_serve_is_404() -> None:
    """A child without ``completions``: completion/complete is 404, -32601."""
    h = Harness()
    _up(h)
    req = send(h, envelope(3, "completion/complete", {"ref": {}, "argument": {}}))
    assert req.status == 404
    assert req.json()["error"]["code"] == -32601


def test_a_stateless_request_must_accept_json_and_sse() -> None:
    """Accept with only application/json: 406."""
    h = Harness()
    body = envelope(1, "tools/list")
    from tests.bridge.stateless_support import routing_headers

    req = h.post(body, headers=routing_headers(body), accept=b"application/json")
    assert req.status == 406


def test_a_stateless_notification_is_accepted_and_dropped() -> None:
    """A posted notification: 202 and nothing reaches any child."""
    h = Harness()
    body = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 1, "_meta": envelope(0, "x")["params"]["_meta"]},
    }
    req = h.post(body, headers={b"mcp-protocol-version": MODERN.encode()})
    assert req.status == 202
    assert h.spawner.children == []


def test_an_invalid_log_level_is_invalid_params() -> None:
    """logLevel "loud": 400, -32602."""
    h = Harness()
    req = send(h, envelope(1, "tools/list", log_level="loud"))
    assert req.status == 400
    assert req.json()["error"]["code"] == -32602


# -- server/discover and the identity's child ------------------------------------


def test_discover_is_answered_from_the_childs_initialize() -> None:
    """
    The broker initializes the child itself (initialize, then initialized)
    and answers discover from the result: supportedVersions, capabilities
    without tasks, ttlMs, cacheScope private, serverInfo in _meta.
    """
    h = Harness()
    req = send(h, envelope(1, "server/discover"))
    child = h.spawner.last
    init = requests_to(child)[0]
    assert init["params"]["protocolVersion"] == "2025-11-25"
    assert init["params"]["clientInfo"]["name"] == "fjmcp"
    assert "sampling" in init["params"]["capabilities"]
    assert req.written == []
    bring_up(child)
    assert requests_to(child)[1]["method"] == "notifications/initialized"
    res = req.json()["result"]
    assert res["resultType"] == "complete"
    assert res["supportedVersions"] == [MODERN]
    assert "tasks" not in res["capabilities"] and "tools" in res["capabilities"]
    assert res["ttlMs"] == 0 and res["cacheScope"] == "private"
    assert res["_meta"][SERVER_INFO] == {"name": "fake", "version": "1"}
    assert res["instructions"] == "be nice"
    assert req.json()["id"] == 1


def test_concurrent_first_requests_share_one_child() -> None:
    """A second request during the bring-up waits for it: one child, both served."""
    h = Harness()
    first = send(h, envelope(1, "server/discover"))
    second = send(h, envelope(1, "server/discover"))
    assert len(h.spawner.children) == 1
    bring_up(h.spawner.last)
    assert first.status == second.status == 200
    assert second.json()["result"]["supportedVersions"] == [MODERN]


def test_each_grant_gets_its_own_child() -> None:
    """Alice and Bob (and Alice through another client) get different children."""
    h = Harness()
    _up(h)
    send(h, envelope(1, "server/discover"), token=b"Bearer bob-token")
    bring_up(h.spawner.last)
    send(h, envelope(1, "server/discover"), token=b"Bearer alice-b-token")
    bring_up(h.spawner.last)
    assert len(h.spawner.children) == 3
    assert h.registry.get(IdentityKey.of(ALICE)) is not None
    assert h.registry.get(IdentityKey.of(BOB)) is not None


def test_identity_children_count_against_the_per_user_cap() -> None:
    """A session and an identity child of one user share max_children_per_user."""
    h = Harness(config=make_config(max_children_per_user=1))
    h.initialize()
    req = send(h, envelope(1, "server/discover"))
    assert req.status == 429
    assert req.json()["error"]["code"] == -32603
    assert req.header(b"retry-after") is not None


def test_a_failed_bring_up_answers_every_waiting_request() -> None:
    """The child exits during initialize: both waiting requests get 503."""
    h = Harness()
    first = send(h, envelope(1, "server/discover"))
    second = send(h, envelope(2, "server/discover"))
    h.spawner.last.exit()
    assert first.status == second.status == 503
    assert second.json()["id"] == 2
    assert h.registry.identity_owners() == 0


def test_a_call_goes_to_the_child_without_the_envelope() -> None:
    """
    The child sees a 2025 request: the broker's id, no stateless _meta keys;
    the client gets its own id back, resultType and serverInfo added.
    """
    h = Harness()
    child = _up(h)
    req = send(h, envelope("a", *TOOLS_CALL))
    call = _calls(child)[0]
    assert isinstance(call["id"], int)
    assert "_meta" not in call["params"]
    answer(child, call["id"], {"content": [{"type": "text", "text": "hi"}]})
    out = req.json()
    assert out["id"] == "a"
    assert out["result"]["resultType"] == "complete"
    assert out["result"]["_meta"][SERVER_INFO]["name"] == "fake"
    assert "ttlMs" not in out["result"]


def test_cacheable_results_carry_ttl_and_scope() -> None:
    """tools/list gets ttlMs (the configured value) and cacheScope private."""
    h = Harness(config=make_config(stateless_cache_ttl_ms=5000))
    child = _up(h)
    req = send(h, envelope(2, "tools/list"))
    answer(child, requests_to(child, "tools/list")[0]["id"], {"tools": []})
    res = req.json()["result"]
    assert res["ttlMs"] == 5000 and res["cacheScope"] == "private"


def test_child_errors_are_mapped_and_given_their_status() -> None:
    """-32002 becomes -32602 with a 400; a reserved code becomes -32603."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(2, "resources/read", {"uri": "test://x"}))
    rid = requests_to(child, "resources/read")[0]["id"]
    child.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {"code": -32002, "message": "nf", "data": {"uri": "test://x"}},
            }
        ).encode()
    )
    assert req.status == 400
    assert req.json()["error"] == {
        "code": -32602,
        "message": "nf",
        "data": {"uri": "test://x"},
    }
    req = send(h, envelope(3, *TOOLS_CALL))
    rid = _calls(child)[-1]["id"]
    child.emit(
        json.dumps(
            {"jsonrpc": "2.0", "id": rid, "error": {"code": -32050, "message": "x"}}
        ).encode()
    )
    assert req.status == 200
    assert req.json()["error"]["code"] == -32603


def test_progress_opens_a_stream_for_that_request_only() -> None:
    """
    The child's progress (under the broker's token) reaches the one request
    that asked, with its own token, on an SSE stream with X-Accel-Buffering.
    """
    h = Harness()
    child = _up(h)
    mine = send(h, envelope(1, *TOOLS_CALL, progress="tok"))
    other = send(h, envelope(1, *TOOLS_CALL, progress="tok"))
    calls = _calls(child)
    tokens = [c["params"]["_meta"]["progressToken"] for c in calls]
    assert len(set(tokens)) == 2
    child.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": tokens[0], "progress": 1, "total": 2},
            }
        ).encode()
    )
    assert mine.header(b"content-type") == b"text/event-stream"
    assert mine.header(b"x-accel-buffering") == b"no"
    assert mine.messages()[0]["params"]["progressToken"] == "tok"
    assert other.written == []
    answer(child, calls[0]["id"], {"content": []})
    assert mine.messages()[-1]["id"] == 1
    assert mine.finished


def test_logs_are_relayed_only_to_the_one_request_that_asked() -> None:
    """
    One request asks for warning: the child is set to warning, a warning is
    relayed, an info is not; with two asking nothing is relayed; once they
    end the child goes back to emergency.
    """
    h = Harness()
    child = _up(h)
    quiet = send(h, envelope(1, *TOOLS_CALL))
    loud = send(h, envelope(2, *TOOLS_CALL, log_level="warning"))
    levels = [m["params"]["level"] for m in requests_to(child, "logging/setLevel")]
    assert levels == ["warning"]

    def log(level: str) -> None:
        child.emit(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": level, "data": level},
                }
            ).encode()
        )

    log("info")
    log("error")
    assert [m["params"]["data"] for m in loud.messages()] == ["error"]
    assert quiet.written == []
    both = send(h, envelope(3, *TOOLS_CALL, log_level="debug"))
    levels = [m["params"]["level"] for m in requests_to(child, "logging/setLevel")]
    assert levels == ["warning", "debug"]
    log("alert")
    assert len(loud.messages()) == 1 and both.written == []
    for call in _calls(child):
        answer(child, call["id"], {"content": []})
    levels = [m["params"]["level"] for m in requests_to(child, "logging/setLevel")]
    assert levels[-1] == "emergency"
    assert LOG  # the key the envelope used


def test_closing_the_stream_cancels_the_call_at_the_child() -> None:
    """The client goes away: the child gets notifications/cancelled (its id)."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, *TOOLS_CALL))
    call = _calls(child)[0]
    req.disconnect()
    cancelled = requests_to(child, "notifications/cancelled")
    assert cancelled[0]["params"]["requestId"] == call["id"]
    answer(child, call["id"], {"content": []})
    assert req.written == []
    bridge = h.registry.get(IdentityKey.of(ALICE))
    assert bridge is not None and not bridge.busy


def test_an_undeclared_capability_is_32021_and_the_child_call_is_cancelled() -> None:
    """
    The child asks for sampling during a call whose client declared none:
    the client gets 400 -32021 with requiredCapabilities; the child an error
    and notifications/cancelled for its call.
    """
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, *TOOLS_CALL))
    call = _calls(child)[0]
    child.emit(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "s1",
                "method": "sampling/createMessage",
                "params": {"messages": [], "maxTokens": 5},
            }
        ).encode()
    )
    assert req.status == 400
    error = req.json()["error"]
    assert error["code"] == -32021
    assert error["data"] == {"requiredCapabilities": {"sampling": {}}}
    replies = [json.loads(x) for x in child.written if b'"s1"' in x]
    assert replies[0]["error"]["code"] == -32021
    cancelled = requests_to(child, "notifications/cancelled")
    assert cancelled[0]["params"]["requestId"] == call["id"]


def test_the_childs_ping_is_answered_by_the_broker() -> None:
    """A child's ping gets an empty result, no client involved."""
    h = Harness()
    child = _up(h)
    child.emit(b'{"jsonrpc":"2.0","id":"p","method":"ping"}')
    assert json.loads(child.written[-1]) == {"jsonrpc": "2.0", "id": "p", "result": {}}


def test_requests_past_the_in_flight_cap_get_429() -> None:
    """identity_child_max_in_flight=2: the third waiting request is refused."""
    h = Harness(config=make_config(identity_child_max_in_flight=2))
    _up(h)
    send(h, envelope(1, *TOOLS_CALL))
    send(h, envelope(2, *TOOLS_CALL))
    third = send(h, envelope(3, *TOOLS_CALL))
    assert third.status == 429
    assert third.json()["id"] == 3


def test_a_token_refresh_respawns_the_identity_child() -> None:
    """
    A rotated Forgejo token gives the identity a new child, initialized by
    the broker; new requests go to it.
    """
    h = Harness()
    _up(h)
    h.registry.token_rotated(h.tokens.rotate("alice"))
    new = h.spawner.last
    assert len(h.spawner.children) == 2
    assert requests_to(new)[0]["method"] == "initialize"
    bring_up(new)
    send(h, envelope(1, *TOOLS_CALL))
    assert _calls(new)
    assert new.spec.env["FORGEJO_ACCESS_TOKEN"] == "forgejo-alice-2"


def test_an_idle_identity_child_is_reaped() -> None:
    """No request in flight past the idle timeout: the identity's child ends."""
    h = Harness()
    child = _up(h)
    h.clock.advance(100)
    h.registry.reap_idle(h.clock.seconds(), 50)
    assert not child.alive
    assert h.registry.identity_owners() == 0


def test_a_busy_identity_child_is_not_reaped() -> None:
    """A call in flight keeps the child."""
    h = Harness()
    child = _up(h)
    send(h, envelope(1, *TOOLS_CALL))
    h.clock.advance(100)
    h.registry.reap_idle(h.clock.seconds(), 50)
    assert child.alive


def test_a_slow_answer_switches_to_a_stream() -> None:
    """Past the keep-alive interval the answer comes on an SSE stream."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, *TOOLS_CALL))
    h.clock.advance(h.config.sse_keepalive_interval + 1)
    assert req.header(b"content-type") == b"text/event-stream"
    answer(child, _calls(child)[0]["id"], {"content": []})
    assert req.messages()[-1]["result"]["resultType"] == "complete"


# -- remapping under concurrency -------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(
        st.one_of(st.integers(-3, 3), st.sampled_from(["1", "a", "x"])),
        min_size=1,
        max_size=8,
    ),
    progress=st.lists(st.booleans(), min_size=8, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_ids_and_progress_tokens_never_collide_at_the_child(
    ids: list[Any], progress: list[bool], order: Any
) -> None:
    """
    Concurrent requests with colliding client ids and progress tokens get
    distinct ids and tokens at the child; answers and progress in any order
    reach each request with its own id and token.
    """
    h = Harness()
    child = _up(h)
    reqs = []
    for n, client_id in enumerate(ids):
        body = envelope(
            client_id,
            "tools/call",
            {"name": "echo", "arguments": {"n": n}},
            progress=client_id if progress[n] else None,
        )
        reqs.append(send(h, body))
    calls = _calls(child)
    assert len({c["id"] for c in calls}) == len(ids)
    tokens = [
        c["params"].get("_meta", {}).get("progressToken")
        for c in calls
        if "_meta" in c["params"]
    ]
    assert len(set(tokens)) == len(tokens)
    shuffled = list(calls)
    order.shuffle(shuffled)
    for call in shuffled:
        n = call["params"]["arguments"]["n"]
        token = call["params"].get("_meta", {}).get("progressToken")
        if token is not None:
            child.emit(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": n},
                    }
                ).encode()
            )
        answer(child, call["id"], {"n": n})
    for n, req in enumerate(reqs):
        if progress[n]:
            messages = req.messages()
            assert messages[0]["params"] == {"progressToken": ids[n], "progress": n}
            final = messages[-1]
        else:
            final = req.json()
        assert final["id"] == ids[n]
        assert final["result"]["n"] == n
    owner = h.registry.get(IdentityKey.of(ALICE))
    assert owner is not None and isinstance(owner.router, IdentityBridge)
    assert owner.router.in_flight == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(
        ["tools/call", "tools/list", "server/discover", "resources/read", "x"]
    ),
    meta=st.dictionaries(
        st.sampled_from(
            [
                "io.modelcontextprotocol/protocolVersion",
                "io.modelcontextprotocol/clientCapabilities",
                "io.modelcontextprotocol/logLevel",
                "progressToken",
            ]
        ),
        JSON,
    ),
    params=st.dictionaries(st.sampled_from(["name", "uri", "arguments"]), JSON),
    headers=st.dictionaries(
        st.sampled_from([b"mcp-protocol-version", b"mcp-method", b"mcp-name"]),
        st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b),
    ),
)
def test_any_stateless_request_gets_a_json_rpc_answer(
    method: str, meta: dict[str, Any], params: dict[str, Any], headers: Any
) -> None:
    """Whatever the envelope and headers hold: a JSON-RPC answer, never a 500."""
    h = Harness()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {
            **params,
            "_meta": {"io.modelcontextprotocol/protocolVersion": 1, **meta},
        },
    }
    req = h.post(body, headers=headers)
    for child in h.spawner.children:
        if child.written and json.loads(child.written[0]).get("method") == "initialize":
            bring_up(child)
    assert req.status in (200, 400, 404)
    if req.written:
        if req.header(b"content-type") == b"application/json":
            answer_body = req.json()
            assert answer_body["jsonrpc"] == "2.0"
            assert ("error" in answer_body) != ("result" in answer_body)


REGION_TOOL = {
    "name": "where",
    "inputSchema": {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "free": {"type": "string"},
        },
    },
}


@pytest.mark.parametrize(
    ("arguments", "headers", "ok"),
    [
        ({"region": "eu"}, {b"mcp-param-region": b"eu"}, True),
        ({"region": "Hello"}, {b"mcp-param-region": b"=?base64?SGVsbG8=?="}, True),
        ({"region": "Hello"}, {b"mcp-param-region": b"=?base64?SGVsbG8?="}, False),
        ({"region": "Hello"}, {b"mcp-param-region": b"=?base64?SGVs!!!bG8=?="}, False),
        ({"region": "SGVsbG8="}, {b"mcp-param-region": b"SGVsbG8="}, True),
        ({"region": "eu"}, {}, False),
        ({}, {b"mcp-param-region": b"eu"}, False),
        ({"region": None}, {}, True),
        ({"count": 3}, {b"mcp-param-count": b"3.0"}, True),
        ({"count": 3}, {b"mcp-param-count": b"4"}, False),
        ({"free": "x"}, {}, True),
    ],
)
def test_param_headers_must_mirror_the_arguments(
    arguments: dict[str, Any], headers: dict[bytes, bytes], ok: bool
) -> None:
    """
    Once tools/list showed a tool's x-mcp-header arguments, a call needs a
    matching Mcp-Param-* header for each given one (base64 form decoded,
    numbers compared as numbers) and none for the others: else 400, -32020.
    """
    h = Harness()
    child = _up(h)
    listed = send(h, envelope(1, "tools/list"))
    answer(child, requests_to(child, "tools/list")[0]["id"], {"tools": [REGION_TOOL]})
    assert listed.status == 200
    req = send(
        h,
        envelope(2, "tools/call", {"name": "where", "arguments": arguments}),
        headers=headers,
    )
    if ok:
        assert _calls(child), req.body
    else:
        assert req.status == 400
        assert req.json()["error"]["code"] == -32020
        assert _calls(child) == []


def test_param_headers_are_not_checked_before_the_schema_is_known() -> None:
    """Without a tools/list seen, a call is not refused for its headers (fail-open)."""
    h = Harness()
    child = _up(h)
    send(h, envelope(2, "tools/call", {"name": "where", "arguments": {"region": "eu"}}))
    assert _calls(child)
