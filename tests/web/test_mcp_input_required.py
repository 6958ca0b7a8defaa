# -*- test-case-name: tests.web.test_mcp_input_required -*-
"""
Tests of input-required results on ``/mcp``: a child's sampling,
elicitation or roots request during a stateless call becomes an
``InputRequiredResult`` with a sealed ``requestState``; the client's retry
writes the answers back to the waiting child and gets the call's answer.
Tampered, expired and other users' states are refused; held calls time
out and are capped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bridge.stateless_support import (
    answer,
    bring_up,
    envelope,
    requests_to,
    send,
)
from tests.bridge.support import Harness, TestRequest, make_config

ELICIT: dict[str, Any] = {"elicitation": {"form": {}}}
ALL_CAPS: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}
CALL = {"name": "ask", "arguments": {"q": 1}}
GATHER = 0.05


def _up(h: Harness) -> Any:
    send(h, envelope(0, "server/discover"))
    child = h.spawner.last
    bring_up(child)
    return child


def _ask(child: Any, rid: Any, method: str = "elicitation/create") -> None:
    params: dict[str, Any] = {"message": "name?", "requestedSchema": {}}
    if method == "sampling/createMessage":
        params = {"messages": [], "maxTokens": 4}
    elif method == "roots/list":
        params = {}
    child.emit(
        json.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        ).encode()
    )


def _input_required(
    h: Harness, caps: dict[str, Any] = ELICIT
) -> tuple[Any, Any, TestRequest]:
    """A call whose child asks for a form elicitation; (child, call, request)."""
    child = _up(h)
    req = send(h, envelope(1, "tools/call", CALL, capabilities=caps))
    call = requests_to(child, "tools/call")[-1]
    _ask(child, "user_name")
    h.clock.advance(GATHER)
    return child, call, req


def _retry(
    h: Harness,
    state: Any,
    responses: Any,
    *,
    id: Any = 2,
    token: bytes = b"Bearer alice-token",
    params: dict[str, Any] = CALL,
) -> TestRequest:
    body = envelope(id, "tools/call", dict(params), capabilities=ELICIT)
    body["params"]["inputResponses"] = responses
    body["params"]["requestState"] = state
    return send(h, body, token=token)


ACCEPTED = {"action": "accept", "content": {"name": "Ada"}}


def test_the_input_required_round_trip() -> None:
    """
    The client gets an input-required result keyed by the child's request
    id; its retry's answer reaches the child under that id; the child's
    answer to the call reaches the retry under the retry's id.
    """
    h = Harness()
    child, call, req = _input_required(h)
    out = req.json()
    assert out["id"] == 1
    result = out["result"]
    assert result["resultType"] == "input_required"
    assert result["inputRequests"] == {
        "user_name": {
            "method": "elicitation/create",
            "params": {"message": "name?", "requestedSchema": {}},
        }
    }
    state = result["requestState"]
    assert isinstance(state, str) and "alice" not in state
    retry = _retry(h, state, {"user_name": ACCEPTED})
    written = [json.loads(x) for x in child.written]
    assert {"jsonrpc": "2.0", "id": "user_name", "result": ACCEPTED} in written
    assert requests_to(child, "notifications/cancelled") == []
    answer(child, call["id"], {"content": [{"type": "text", "text": "Ada"}]})
    final = retry.json()
    assert final["id"] == 2
    assert final["result"]["resultType"] == "complete"
    assert final["result"]["content"][0]["text"] == "Ada"


def test_requests_sent_together_come_in_one_result() -> None:
    """Elicitation, sampling and roots sent at once: one result with three keys."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, "tools/call", CALL, capabilities=ALL_CAPS))
    _ask(child, "e", "elicitation/create")
    _ask(child, 7, "sampling/createMessage")
    _ask(child, "r", "roots/list")
    assert req.written == []
    h.clock.advance(GATHER)
    keys = req.json()["result"]["inputRequests"]
    assert set(keys) == {"e", "7", "r"}
    assert keys["7"]["method"] == "sampling/createMessage"


def test_missing_answers_get_a_new_input_required_result() -> None:
    """A retry answering one of two requests gets asked for the other only."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, "tools/call", CALL, capabilities=ALL_CAPS))
    _ask(child, "a")
    _ask(child, "b", "roots/list")
    h.clock.advance(GATHER)
    state = req.json()["result"]["requestState"]
    retry = _retry(h, state, {"a": ACCEPTED, "extra": {"ignored": True}})
    h.clock.advance(GATHER)
    again = retry.json()["result"]
    assert again["resultType"] == "input_required"
    assert list(again["inputRequests"]) == ["b"]
    assert not any(b'"extra"' in x for x in child.written)


def test_a_second_round_of_input() -> None:
    """The child asks again after the first answer: a new result, then the answer."""
    h = Harness()
    child, call, req = _input_required(h)
    retry = _retry(h, req.json()["result"]["requestState"], {"user_name": ACCEPTED})
    _ask(child, "step2")
    h.clock.advance(GATHER)
    second = retry.json()["result"]
    assert list(second["inputRequests"]) == ["step2"]
    last = _retry(h, second["requestState"], {"step2": ACCEPTED}, id=3)
    answer(child, call["id"], {"content": []})
    assert last.json()["id"] == 3


@pytest.mark.parametrize("mangle", ["flip", "garbage", "bob"])
def test_tampered_or_foreign_states_are_refused(mangle: str) -> None:
    """A changed token, garbage, or Alice's token used by Bob: 400, -32602."""
    h = Harness()
    child, _, req = _input_required(h)
    state = req.json()["result"]["requestState"]
    token = b"Bearer alice-token"
    if mangle == "flip":
        state = state[:10] + ("A" if state[10] != "A" else "B") + state[11:]
    elif mangle == "garbage":
        state = "v1.not-a-state"
    else:
        token = b"Bearer bob-token"
        send(h, envelope(0, "server/discover"), token=token)
        bring_up(h.spawner.last)
    before = len(child.written)
    retry = _retry(h, state, {"user_name": ACCEPTED}, token=token)
    assert retry.status == 400
    error = retry.json()["error"]
    assert error["code"] == -32602
    assert error["data"] == {"reason": "invalid_request_state"}
    assert len(child.written) == before


def test_a_state_held_on_another_node_is_refused_naming_that_node() -> None:
    """
    Two nodes sharing the key ring: a retry whose call is held on node-a
    but reaches node-b is refused there (400, -32602, the reason
    ``held_elsewhere`` and the node), and nothing of it reaches node-b's
    child; node-a still resumes the call. The state names its node in clear
    for the balancer.
    """
    keys = (bytes(range(32)),)
    a = Harness(config=make_config(node_id="node-a"), request_state_keys=lambda: keys)
    b = Harness(config=make_config(node_id="node-b"), request_state_keys=lambda: keys)
    child_a, call, req = _input_required(a)
    state = req.json()["result"]["requestState"]
    assert state.split(".")[1] == "node-a"
    child_b = _up(b)
    before = len(child_b.written)
    wrong = _retry(b, state, {"user_name": ACCEPTED})
    assert wrong.status == 400
    error = wrong.json()["error"]
    assert error["code"] == -32602
    assert error["data"] == {"reason": "held_elsewhere", "node": "node-a"}
    assert len(child_b.written) == before
    right = _retry(a, state, {"user_name": ACCEPTED}, id=3)
    answer(child_a, call["id"], {"content": []})
    assert right.json()["id"] == 3


def test_a_state_for_other_params_is_refused() -> None:
    """The state is bound to the original request's params."""
    h = Harness()
    _, _, req = _input_required(h)
    state = req.json()["result"]["requestState"]
    retry = _retry(h, state, {}, params={"name": "ask", "arguments": {"q": 2}})
    assert retry.status == 400
    assert retry.json()["error"]["code"] == -32602


def test_a_held_call_times_out_and_is_cancelled_at_the_child() -> None:
    """
    No retry within held_call_timeout: the child's request gets an error,
    the call is cancelled at the child, and a late retry is refused.
    """
    h = Harness(config=make_config(held_call_timeout=30.0))
    child, call, req = _input_required(h)
    state = req.json()["result"]["requestState"]
    h.clock.advance(31)
    written = [json.loads(x) for x in child.written]
    refused = [m for m in written if m.get("id") == "user_name"]
    assert refused[0]["error"]["code"] == -32603
    cancelled = requests_to(child, "notifications/cancelled")
    assert cancelled[0]["params"]["requestId"] == call["id"]
    late = _retry(h, state, {"user_name": ACCEPTED})
    assert late.status == 400
    assert late.json()["error"]["code"] == -32602


def test_held_calls_per_identity_are_capped() -> None:
    """Past max_held_calls_per_identity the child's request for input gets an error."""
    h = Harness(config=make_config(max_held_calls_per_identity=1))
    child, _, req = _input_required(h)
    assert req.json()["result"]["resultType"] == "input_required"
    second = send(h, envelope(5, "tools/call", CALL, capabilities=ELICIT))
    _ask(child, "again")
    written = [json.loads(x) for x in child.written]
    refused = [m for m in written if m.get("id") == "again"]
    assert refused[0]["error"]["code"] == -32603
    assert second.written == []


@pytest.mark.parametrize(
    "responses", [None, [], "x", {"user_name": 12345}, {"user_name": None}]
)
def test_malformed_input_responses_are_invalid_params(responses: Any) -> None:
    """inputResponses that is not an object of objects: 400, -32602."""
    h = Harness()
    _, _, req = _input_required(h)
    retry = _retry(h, req.json()["result"]["requestState"], responses)
    assert retry.status == 400
    assert retry.json()["error"]["code"] == -32602


def test_input_responses_without_a_state_start_a_fresh_call() -> None:
    """
    No requestState: the call goes to the child anew, without
    inputResponses; a child request under a supplied key is answered from
    them, any other is asked for.
    """
    h = Harness()
    child = _up(h)
    body = envelope(1, "tools/call", CALL, capabilities=ELICIT)
    body["params"]["inputResponses"] = {"user_name": ACCEPTED}
    req = send(h, body)
    call = requests_to(child, "tools/call")[-1]
    assert "inputResponses" not in call["params"]
    _ask(child, "user_name")
    assert json.loads(child.written[-1]) == {
        "jsonrpc": "2.0",
        "id": "user_name",
        "result": ACCEPTED,
    }
    _ask(child, "other")
    h.clock.advance(GATHER)
    assert list(req.json()["result"]["inputRequests"]) == ["other"]


def test_no_input_is_asked_for_during_a_list() -> None:
    """A child asking for input during tools/list gets an error; the list goes on."""
    h = Harness()
    child = _up(h)
    req = send(h, envelope(1, "tools/list", capabilities=ALL_CAPS))
    _ask(child, "nope")
    h.clock.advance(GATHER)
    written = [json.loads(x) for x in child.written]
    assert [m for m in written if m.get("id") == "nope"][0]["error"]
    assert req.written == []


def test_an_abandoned_held_call_does_not_block_the_next_one() -> None:
    """A client that never retries leaves a held call; the next call still asks."""
    h = Harness()
    child, _, first = _input_required(h)
    assert first.json()["result"]["resultType"] == "input_required"
    second = send(h, envelope(9, "tools/call", CALL, capabilities=ELICIT))
    _ask(child, "again")
    h.clock.advance(GATHER)
    assert list(second.json()["result"]["inputRequests"]) == ["again"]


def test_shutdown_does_not_wait_for_held_calls() -> None:
    """The drain cancels calls waiting for input at once and fires."""
    h = Harness()
    child, call, _ = _input_required(h)
    done = h.registry.drain()
    assert done.called
    cancelled = requests_to(child, "notifications/cancelled")
    assert cancelled[0]["params"]["requestId"] == call["id"]


def test_a_request_for_input_goes_to_the_oldest_able_call() -> None:
    """
    With several calls in flight, the child's request goes to a call whose
    client declared the capability, the oldest of those.
    """
    h = Harness()
    child = _up(h)
    blind = send(h, envelope(1, "tools/call", CALL, capabilities={}))
    older = send(h, envelope(2, "tools/call", CALL, capabilities=ELICIT))
    newer = send(h, envelope(3, "tools/call", CALL, capabilities=ELICIT))
    _ask(child, "who")
    h.clock.advance(GATHER)
    assert blind.written == [] and newer.written == []
    assert list(older.json()["result"]["inputRequests"]) == ["who"]
