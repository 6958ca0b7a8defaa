# -*- test-case-name: tests.bridge.test_policy -*-
"""
The policy on the wire: one `PolicyEnforcer` per child owner stands between
the client's messages and the child, for session and stateless owners alike.

- ``tools/call`` is judged by the owner's `ToolGate` (a dictionary lookup);
  a refused call is answered at once with a JSON-RPC error saying why, and
  never reaches the child. A call to a tool the gate has not seen listed (a
  client with a cached list, a fresh child) waits while the enforcer asks
  the child for ``tools/list`` itself, every page, then is judged.
- ``resources/read`` and ``prompts/get`` are judged by the deny rules.
- answers to ``tools/list``, ``resources/list`` and ``prompts/list`` are
  filtered (``nextCursor`` kept); ``notifications/tools/list_changed`` makes
  the gate judge again from the next list.

Each refusal is told to the owner's `IPolicyObserver` (the audit log: one
line with the user, the client, the session, the tool and the rule that
refused it, never the arguments) and logged in the main log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from attrs import define, field
from twisted.logger import Logger

from fjmcp.bridge.jsonrpc import Kind, Message, error_body, id_key
from fjmcp.interfaces import Identity, IPolicyObserver
from fjmcp.observers import NO_OBSERVER
from fjmcp.policy.effective import Verdict
from fjmcp.policy.gate import ToolGate, refusal_error

__all__ = ["PolicyEnforcer"]

#: The ids of the enforcer's own ``tools/list`` requests to the child.
_FETCH_PREFIX: Final = "fjmcp-policy-"
#: Pages fetched at most for one judgement (a child's list is bounded).
MAX_PAGES: Final = 100
_LISTS: Final = frozenset({"tools/list", "resources/list", "prompts/list"})

Forward = Callable[[], None]
Refuse = Callable[[bytes], None]


@define(eq=False)
class PolicyEnforcer:
    """Applies one owner's `ToolGate` to its traffic (see the module docstring)."""

    gate: ToolGate
    identity: Identity
    write: Callable[[bytes], bool]
    """Writes one line to the owner's current child."""
    session: str = ""
    """The owner's short id, for the audit line."""
    observer: IPolicyObserver = NO_OBSERVER
    """Told of each refusal (the audit log)."""
    _held: list[tuple[Message, str, Forward, Refuse]] = field(factory=list)
    _fetching: str | None = None
    _pages: int = 0
    _next_id: int = 1

    log = Logger()

    # -- client -> child ---------------------------------------------------------

    def admit(self, msg: Message, forward: Forward, refuse: Refuse) -> None:
        """Forward ``msg`` to the child, or refuse it, now or once the list is known."""
        if msg.kind is not Kind.REQUEST:
            forward()
            return
        if msg.method == "tools/call":
            if self.gate.policy.every_tool:
                forward()  # nothing to judge: no list to fetch either
                return
            name = msg.params.get("name")
            if not isinstance(name, str):
                forward()  # the child answers a malformed call itself
                return
            verdict = self.gate.verdict(name)
            if verdict is None:
                self._held.append((msg, name, forward, refuse))
                self._fetch()
                return
            self._judged(msg, "tool", name, verdict, forward, refuse)
        elif msg.method == "resources/read":
            uri = msg.params.get("uri")
            if isinstance(uri, str):
                verdict = self.gate.policy.resource(uri)
                self._judged(msg, "resource", uri, verdict, forward, refuse)
            else:
                forward()
        elif msg.method == "prompts/get":
            prompt = msg.params.get("name")
            if isinstance(prompt, str):
                verdict = self.gate.policy.prompt(prompt)
                self._judged(msg, "prompt", prompt, verdict, forward, refuse)
            else:
                forward()
        else:
            forward()

    def _judged(
        self,
        msg: Message,
        what: str,
        name: str,
        verdict: Verdict,
        forward: Forward,
        refuse: Refuse,
    ) -> None:
        if verdict.allowed:
            forward()
            return
        self.log.info(
            "policy refused {what} {name!r}: user={user} client={client} rule={rule}",
            what=what,
            name=name[:200],
            user=self.identity.user,
            client=self.identity.client_id,
            rule=verdict.rule,
            token=self.identity.token_id,
        )
        self.observer.policy_refused(
            self.identity, self.session, what, name, verdict.rule
        )
        code, message, data = refusal_error(what, name, verdict)
        refuse(error_body(msg.id_json, code, message, data))

    # -- the enforcer's own tools/list -------------------------------------------

    def _fetch(self, cursor: Any = None) -> None:
        if self._fetching is not None and cursor is None:
            return  # a fetch is under way: its end judges every held call
        request_id = f"{_FETCH_PREFIX}{self._next_id}"
        self._next_id += 1
        self._fetching = request_id
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        line = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/list",
                "params": params,
            },
            separators=(",", ":"),
        ).encode()
        if not self.write(line):
            self._release()

    def _release(self) -> None:
        """The list is known (or cannot be had): judge every held call."""
        self._fetching = None
        self._pages = 0
        held, self._held = self._held, []
        for msg, name, forward, refuse in held:
            verdict = self.gate.verdict(name) or Verdict(
                False, "unlisted", "the MCP server does not list this tool"
            )
            self._judged(msg, "tool", name, verdict, forward, refuse)

    def child_exited(self) -> None:
        """
        A child of the owner ended: a list it was asked for will never come,
        so ask the current child again (or judge what is held on what is known).
        """
        if self._fetching is None:
            return
        self._fetching = None
        self._pages = 0
        if self._held:
            self._fetch()

    # -- child -> client -----------------------------------------------------------

    def from_child(self, msg: Message) -> bool:
        """
        Look at one message of the child; True when it was the enforcer's own
        (an answer to its ``tools/list``) and goes no further.
        """
        if msg.kind is Kind.NOTIFICATION:
            if msg.method == "notifications/tools/list_changed":
                self.gate.forget()
            return False
        if msg.kind is not Kind.RESPONSE or self._fetching is None:
            return False
        if msg.id_json != id_key(self._fetching):
            return False
        result = msg.body.get("result")
        self.gate.learn(result.get("tools") if isinstance(result, dict) else None)
        cursor = result.get("nextCursor") if isinstance(result, dict) else None
        self._pages += 1
        if cursor is not None and self._pages < MAX_PAGES:
            self._fetch(cursor)
        else:
            self._release()
        return True

    def filter_result(self, method: str, result: Any) -> Any:
        """A list result as the client may see it (stateless answers)."""
        if method not in _LISTS or self.gate.policy.every_list_entry:
            return result
        return self.gate.filter_result(method, result)

    def filter_answer(self, method: str, msg: Message) -> bytes:
        """The child's answer to a client's list request, as the client may see it."""
        if (
            method not in _LISTS
            or "result" not in msg.body
            or self.gate.policy.every_list_entry
        ):
            return msg.line
        body = dict(msg.body)
        body["result"] = self.gate.filter_result(method, msg.body["result"])
        return json.dumps(body, separators=(",", ":")).encode("ascii")

    @property
    def holding(self) -> int:
        """Calls waiting for the child's list."""
        return len(self._held)
