# -*- test-case-name: tests.web.test_root -*-
"""
The root resource: plain twisted.web resources by first path segment, Klein
apps for every other route.

Each component brings its own Klein app (a class holding its dependencies,
``app = Klein()`` with routes as methods); there is no module-global app.
`build_root` takes those apps in order and the plain resources by name:

    routes = [Health(...).app, OAuthRoutes(...).app]
    plain = {b"mcp": McpResource(...)}
    root = build_root(routes, plain)

A request whose first segment names a plain resource goes straight to it
(``/mcp`` never pays for Klein's routing, 0.1-0.35 ms per call). Any other
request goes to the first Klein app that has a route for its path (and, if a
route exists only for another method, that app answers 405); when none has,
the answer is a JSON 404.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

__all__ = ["KleinChain", "build_root"]

_NOT_FOUND = b'{"error": "not_found"}'


def _path_info(request: IRequest) -> str | None:
    segments = list(getattr(request, "prepath", [])) + list(
        getattr(request, "postpath", [])
    )
    try:
        return "/" + "/".join(s.decode("utf-8") for s in segments)
    except UnicodeDecodeError:
        return None


class KleinChain(Resource):
    """
    Routes each request to the first Klein app with a matching rule.

    Leaf resource mounted at the root, so Klein sees the whole path.
    """

    isLeaf = True

    def __init__(self, apps: Sequence[Klein]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._apps = [(app, app.resource()) for app in apps]

    def _pick(self, request: IRequest) -> Resource | None:
        path = _path_info(request)
        if path is None:
            return self._apps[0][1] if self._apps else None  # Klein answers 400
        method = (request.method or b"GET").decode("ascii", "replace")
        for app, resource in self._apps:
            mapper = app.url_map.bind(
                "localhost", path_info=path, default_method=method
            )
            try:
                mapper.match()
            except NotFound:
                continue
            except (MethodNotAllowed, RequestRedirect):
                return resource
            return resource
        return None

    def render(self, request: IRequest) -> bytes | int:
        """Render through the chosen app, or answer a JSON 404."""
        chosen = self._pick(request)
        if chosen is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return _NOT_FOUND
        # The Klein resource reads prepath/postpath; it sits at the root.
        result: bytes | int = chosen.render(request)
        return result


class _Root(Resource):
    """Plain resources by first segment; everything else to the Klein chain."""

    def __init__(self, chain: KleinChain, plain: Mapping[bytes, IResource]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._chain = chain
        for name, resource in plain.items():
            self.putChild(name, resource)

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """Unknown first segments (and the empty path) go to the Klein apps."""
        # Put the segment back: the chain routes on the whole path.
        request.postpath.insert(0, path)
        request.prepath.pop()
        return self._chain

    def render(self, request: IRequest) -> bytes | int:
        """``/`` itself (without a trailing segment) is also a Klein route."""
        return self._chain.render(request)


def build_root(
    routes: Sequence[Klein], plain: Mapping[bytes, IResource] | None = None
) -> IResource:
    """
    The broker's root resource.

    :param routes: Klein apps (bound instances' ``.app``), tried in order.
    :param plain: plain resources by first path segment, e.g. ``{b"mcp": ...}``.
    """
    return _Root(KleinChain(routes), plain or {})
