# -*- test-case-name: tests.web.test_root -*-
"""Tests for `fjmcp.web.root`: plain resources beside a chain of Klein apps."""

from __future__ import annotations

from typing import Any

from klein import Klein
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from fjmcp.web.root import build_root


class First:
    """A component with a GET route."""

    app = Klein()

    @app.route("/a", methods=["GET"])
    def a(self, request: IRequest) -> bytes:
        """Answer /a."""
        return b"first-a"

    @app.route("/", methods=["GET"])
    def index(self, request: IRequest) -> bytes:
        """Answer /."""
        return b"index"


class Second:
    """Another component with its own routes, one shared path prefix."""

    app = Klein()

    @app.route("/b/<name>", methods=["POST"])
    def b(self, request: IRequest, name: str) -> bytes:
        """Answer POST /b/NAME."""
        return b"second-" + name.encode()


class Plain(Resource):
    """A plain resource standing in for /mcp."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render(self, request: IRequest) -> bytes:
        """Echo the remaining path."""
        return b"plain:" + b"/".join(request.postpath)


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out
    return out[0]


def _call(method: str, path: str) -> tuple[int, bytes]:
    root = build_root([First().app, Second().app], {b"mcp": Plain()})
    stub: Any = StubTreq(root)
    response = _result(stub.request(method, "http://127.0.0.1" + path))
    return response.code, _result(stub.content(response))


def test_routes_reach_their_app() -> None:
    """Each path goes to the app that declares it."""
    assert _call("GET", "/a") == (200, b"first-a")
    assert _call("POST", "/b/x") == (200, b"second-x")
    assert _call("GET", "/") == (200, b"index")


def test_plain_resource_mounted_by_segment() -> None:
    """/mcp goes to the plain resource, Klein never sees it."""
    assert _call("POST", "/mcp") == (200, b"plain:")
    assert _call("GET", "/mcp/x") == (200, b"plain:x")


def test_wrong_method_is_405_from_owning_app() -> None:
    """A path known for another method is 405, not 404."""
    code, _ = _call("GET", "/b/x")
    assert code == 405


def test_unknown_path_is_json_404() -> None:
    """No app has the path: a JSON 404."""
    assert _call("GET", "/nowhere/at/all") == (404, b'{"error": "not_found"}')
