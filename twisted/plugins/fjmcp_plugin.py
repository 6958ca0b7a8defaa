# -*- test-case-name: tests.test_tap, tests.integration.test_twistd -*-
"""twistd plugin: ``twistd -n --pidfile= fjmcp --config FILE``.

Names `fjmcp.tap` by string so that ``twistd --help`` does not import the broker.
"""

from twisted.application.service import ServiceMaker

fjmcp = ServiceMaker(
    "fjmcp",
    "fjmcp.tap",
    "MCP broker for Forgejo: OAuth 2.1 + Streamable HTTP to stdio bridge.",
    "fjmcp",
)
