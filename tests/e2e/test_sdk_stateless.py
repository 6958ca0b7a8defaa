# -*- test-case-name: tests.e2e.test_sdk_stateless -*-
"""
The official Python SDK client (mcp 2.3.0) in its default mode against
fjmcp's stateless path with a real child that asks for sampling and
elicitation mid-call: the SDK discovers 2026-07-28, answers the broker's
input-required results through its callbacks (the sealed requestState
round trip), gets progress and logs on the call's stream, then runs two
calls concurrently on the same identity's child.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests.e2e.live import E2E, SDK_PYTHON, client_missing
from tests.integration.test_bridge_real import Broker, _reactor, _with_broker

pytestmark = pytest.mark.e2e


@pytest_twisted.ensureDeferred
async def test_the_sdk_answers_input_required_results_through_fjmcp() -> None:
    """
    Sampling and elicitation reach the SDK's callbacks as input-required
    results, its retries resume the child's call, and the call's answer
    carries what the callbacks said; progress and info logs arrive.
    """
    if not SDK_PYTHON.exists():
        client_missing(".venv-sdk is missing: run `make e2e-deps`")

    async def run(broker: Broker) -> None:
        d = getProcessOutputAndValue(
            str(SDK_PYTHON),
            [
                str(E2E / "sdk_stateless_client.py"),
                "--mcp-url",
                broker.url,
                "--token",
                "alice-token",
            ],
            env={"PATH": os.environ.get("PATH", "")},
            reactor=_reactor(),
        )
        out, err, code = await d.addTimeout(120, _reactor())
        assert code == 0, (out, err)
        result: dict[str, Any] = json.loads(out)
        assert result["protocol_version"] == "2026-07-28"
        assert "chatty" in result["tools"]
        assert result["is_error"] is False
        assert result["structured"]["sampled"] == "hi there"
        assert result["structured"]["elicited"] == {
            "action": "accept",
            "content": {"name": "Ada"},
        }
        assert result["asked"] == ["sampling", "elicitation"]
        assert len(result["progress"]) == 4
        assert "info" in result["logs"]
        assert result["touch_errors"] == [False, False]
        assert broker.registry.identity_owners() == 1

    await _with_broker("chatty_server.py", run)
