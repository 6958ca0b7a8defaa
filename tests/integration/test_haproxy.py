# -*- test-case-name: tests.integration.test_haproxy -*-
"""
The shipped ``deploy/haproxy/haproxy.cfg`` is valid for Debian's haproxy,
peers included, and the configuration the two-node test generates from it
is too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.haproxy import SHIPPED, haproxy_binary, render

pytestmark = pytest.mark.integration


def _check(binary: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-c", *extra, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def binary() -> str:
    """haproxy, or a skip saying why."""
    found = haproxy_binary()
    if found is None:
        pytest.skip("haproxy is not installed (make test installs it as root)")
    return found


def test_the_shipped_config_is_valid_with_its_peers(binary: str) -> None:
    """``haproxy -c`` accepts the shipped file, run as peer lb1 of the pair."""
    result = _check(binary, SHIPPED, "-L", "lb1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Removing incomplete section" not in result.stderr
    assert "[WARNING]" not in result.stderr, result.stderr


def test_the_generated_config_is_valid(binary: str, tmp_path: Path) -> None:
    """The test's rendering (loopback ports, no peers) is valid too."""
    rendered = render(SHIPPED.read_text(), 18080, {"node-a": 18081, "node-b": 18082})
    assert "peer lb1" not in rendered and "127.0.0.1:18082" in rendered
    for name in ("node-a", "node-b"):
        assert f"req.hdr(mcp-session-id),field(1,.) -m str {name}" in rendered
        assert (
            f"json_query('$.params.requestState'),field(2,.) -m str {name}" in rendered
        )
    path = tmp_path / "haproxy.cfg"
    path.write_text(rendered)
    result = _check(binary, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stderr, result.stderr
