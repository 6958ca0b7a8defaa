# -*- test-case-name: tests.test_init_config -*-
"""
``fjmcp init-config --public-url ...``: a first production configuration.

It writes the configuration with every setting present (the ones given set,
every other one commented with its help and default, as in
``fjmcp.toml.example``), creates the state directory (mode 0700) and the
token key file in it (mode 0600), and returns the next steps: register the
OAuth2 application at Forgejo with the broker's redirect URI, put the client
secret in its file, check the configuration, start the service. The client
secret itself is never written into the configuration.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from attrs import frozen

__all__ = ["ProductionSetup", "production_config_text", "write_production_setup"]


@frozen(kw_only=True)
class ProductionSetup:
    """What the operator gave ``init-config`` for a production configuration."""

    public_url: str
    forgejo_url: str
    forgejo_client_id: str
    state_dir: Path
    client_secret_file: Path
    child_command: tuple[str, ...] = ("forgejo-mcp",)
    listen: str = "tcp:8080:interface=127.0.0.1"

    @property
    def redirect_uri(self) -> str:
        """What to register at Forgejo as the application's redirect URI."""
        return self.public_url.rstrip("/") + "/oauth/callback"

    @property
    def store_path(self) -> Path:
        """The SQLite store, in the state directory."""
        return self.state_dir / "fjmcp.sqlite3"

    @property
    def key_file(self) -> Path:
        """The token key file, beside the store (the default place)."""
        return self.state_dir / "token-keys"


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def production_config_text(setup: ProductionSetup) -> str:
    """
    The example configuration with the given settings filled in: required
    ones replaced, ``listen`` and ``store_path`` set, and the client secret
    read from its file.
    """
    from fjmcp.config import render_example

    given = {
        "public_url": setup.public_url.rstrip("/"),
        "listen": setup.listen,
        "forgejo_url": setup.forgejo_url.rstrip("/"),
        "forgejo_client_id": setup.forgejo_client_id,
        "child_command": list(setup.child_command),
        "store_path": str(setup.store_path),
    }
    lines = []
    for line in render_example().splitlines():
        match = re.match(r"^#? ?([a-z_]+) = ", line)
        name = match.group(1) if match else None
        if name in given:
            line = f"{name} = {_toml(given[name])}"
        elif name == "forgejo_client_secret":
            line = (
                f"forgejo_client_secret_file = {_toml(str(setup.client_secret_file))}"
            )
        lines.append(line)
    header = [
        "# Written by `fjmcp init-config`: the settings given are set, every other",
        "# one shows its default. The Forgejo client secret lives in the file",
        "# named by forgejo_client_secret_file, never here.",
    ]
    return "\n".join([*header, *lines]) + "\n"


def write_production_setup(setup: ProductionSetup, target: Path) -> list[str]:
    """
    Write the configuration to ``target``, create the state directory (0700)
    and its token key file (0600) unless they exist; returns what was done
    and the next steps, one line each.
    """
    from fjmcp.oauth.keys import prepend_new_key

    done = []
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(production_config_text(setup), encoding="utf-8")
    done.append(f"wrote {target}")
    if not setup.state_dir.exists():
        setup.state_dir.mkdir(parents=True, mode=0o700)
        done.append(f"created {setup.state_dir} (mode 0700)")
    os.chmod(setup.state_dir, 0o700)
    if not setup.key_file.exists():
        prepend_new_key(setup.key_file)
        done.append(f"wrote {setup.key_file} (token key file, mode 0600)")
    return [
        *done,
        "",
        "Next steps:",
        f"1. At {setup.forgejo_url.rstrip('/')}, register an OAuth2 application "
        "(Site administration > Integrations > Applications, or your user "
        "settings > Applications) with the redirect URI",
        f"     {setup.redirect_uri}",
        "   and confidential client on; set forgejo_client_id in the file to its "
        "client id if it differs.",
        f"2. Write its client secret to {setup.client_secret_file} (mode 0600, "
        "readable by the service user only).",
        "3. If the service runs as another user, give it the state directory: "
        f"chown -R fjmcp: {setup.state_dir}",
        f"4. Check the configuration: fjmcp check-config --config {target}",
        f"5. Start the service: twistd -n --pidfile= fjmcp --config {target} "
        "(or the systemd unit in deploy/systemd/; see docs/deploy.md).",
    ]
