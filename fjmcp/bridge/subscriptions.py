# -*- test-case-name: tests.web.test_mcp_listen -*-
"""
``subscriptions/listen`` for one identity's child: long-lived POST streams
that carry the child's change notifications to stateless clients.

A listen stream first gets ``notifications/subscriptions/acknowledged``
with the part of its filter the child can honour (``toolsListChanged``,
``promptsListChanged``, ``resourcesListChanged`` when the child announces
``listChanged`` for them; ``resourceSubscriptions`` when it announces
``resources.subscribe``); then every matching ``list_changed`` and
``notifications/resources/updated``, each tagged with
``_meta["io.modelcontextprotocol/subscriptionId"]`` (the listen request's
id). Progress and logs never go on a listen stream.

Resource subscriptions are reference-counted across the streams: the
child gets ``resources/subscribe`` when the first stream asks for a URI
and ``resources/unsubscribe`` when the last one closes; a respawned child
is subscribed again (`replay`). When the owner ends, each stream gets the
final result the revision defines (``resultType: "complete"`` with the
subscription id) and closes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from attrs import define, field

from fjmcp.bridge.envelope import SUBSCRIPTION_ID_KEY, Envelope

__all__ = ["Listener", "Subscriptions"]

#: Filter key -> (the child capability announcing it, the notification it carries).
_LIST_FILTERS: Final = {
    "toolsListChanged": ("tools", "notifications/tools/list_changed"),
    "promptsListChanged": ("prompts", "notifications/prompts/list_changed"),
    "resourcesListChanged": ("resources", "notifications/resources/list_changed"),
}
_UPDATED: Final = "notifications/resources/updated"
#: URIs one stream may subscribe to.
MAX_URIS: Final = 256


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


@define(eq=False)
class Listener:
    """One open listen stream."""

    subscription_id: Any
    reply: Any
    methods: frozenset[str]
    uris: frozenset[str]


@define(eq=False)
class Subscriptions:
    """
    The listen streams of one child.

    :param write: sends one request line to the current child.
    :param capabilities: the child's server capabilities now.
    """

    _write: Callable[[bytes], object]
    _capabilities: Callable[[], Mapping[str, Any]]
    _listeners: list[Listener] = field(factory=list)
    _refs: dict[str, int] = field(factory=dict)
    _next: int = 0

    @property
    def open(self) -> int:
        """Listen streams open."""
        return len(self._listeners)

    def honoured(self, wanted: Any) -> dict[str, Any]:
        """The part of a filter the child supports."""
        wanted = wanted if isinstance(wanted, dict) else {}
        caps = self._capabilities()
        out: dict[str, Any] = {}
        for key, (capability, _) in _LIST_FILTERS.items():
            cap = caps.get(capability)
            if (
                wanted.get(key) is True
                and isinstance(cap, dict)
                and cap.get("listChanged")
            ):
                out[key] = True
        uris = wanted.get("resourceSubscriptions")
        resources = caps.get("resources")
        if (
            isinstance(uris, list)
            and isinstance(resources, dict)
            and resources.get("subscribe")
        ):
            kept = [u for u in uris if isinstance(u, str)][:MAX_URIS]
            out["resourceSubscriptions"] = list(dict.fromkeys(kept))
        return out

    def listen(self, envelope: Envelope, reply: Any) -> None:
        """Open a listen stream: acknowledge, subscribe, keep it."""
        msg = envelope.message
        sub_id = msg.body.get("id")
        honoured = self.honoured(msg.params.get("notifications"))
        listener = Listener(
            subscription_id=sub_id,
            reply=reply,
            methods=frozenset(
                _LIST_FILTERS[k][1] for k in honoured if k in _LIST_FILTERS
            ),
            uris=frozenset(honoured.get("resourceSubscriptions", ())),
        )
        self._listeners.append(listener)
        reply.on_gone = lambda: self._closed(listener)
        reply.notify(
            _dump(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/subscriptions/acknowledged",
                    "params": {
                        "_meta": {SUBSCRIPTION_ID_KEY: sub_id},
                        "notifications": honoured,
                    },
                }
            )
        )
        for uri in listener.uris:
            self._ref(uri)

    def relay(self, method: str, params: Mapping[str, Any]) -> bool:
        """
        Send a child's change notification to the streams that asked for
        it; False when it is not one.
        """
        if method == _UPDATED:
            uri = params.get("uri")
            targets = [x for x in self._listeners if uri in x.uris]
        elif method in {m for _, m in _LIST_FILTERS.values()}:
            targets = [x for x in self._listeners if method in x.methods]
        else:
            return False
        for listener in targets:
            meta = params.get("_meta")
            tagged = dict(meta) if isinstance(meta, dict) else {}
            tagged[SUBSCRIPTION_ID_KEY] = listener.subscription_id
            body = {
                "jsonrpc": "2.0",
                "method": method,
                "params": {**params, "_meta": tagged},
            }
            listener.reply.notify(_dump(body))
        return True

    def replay(self) -> list[dict[str, Any]]:
        """The subscriptions a new child of this owner must get."""
        return [
            {"method": "resources/subscribe", "params": {"uri": uri}}
            for uri in self._refs
        ]

    def close_all(self) -> None:
        """The owner ended: end every stream with its final result."""
        listeners, self._listeners = self._listeners, []
        self._refs.clear()
        for listener in listeners:
            result = {
                "resultType": "complete",
                "_meta": {SUBSCRIPTION_ID_KEY: listener.subscription_id},
            }
            listener.reply.complete(
                _dump(
                    {"jsonrpc": "2.0", "id": listener.subscription_id, "result": result}
                )
            )

    def _closed(self, listener: Listener) -> None:
        """The client closed its stream: drop its subscriptions."""
        if listener not in self._listeners:
            return
        self._listeners.remove(listener)
        for uri in listener.uris:
            self._unref(uri)

    def _ref(self, uri: str) -> None:
        count = self._refs.get(uri, 0)
        self._refs[uri] = count + 1
        if count == 0:
            self._send("resources/subscribe", uri)

    def _unref(self, uri: str) -> None:
        count = self._refs.get(uri, 0) - 1
        if count > 0:
            self._refs[uri] = count
            return
        self._refs.pop(uri, None)
        self._send("resources/unsubscribe", uri)

    def _send(self, method: str, uri: str) -> None:
        self._next += 1
        self._write(
            _dump(
                {
                    "jsonrpc": "2.0",
                    "id": f"fjmcp-sub-{self._next}",
                    "method": method,
                    "params": {"uri": uri},
                }
            )
        )
