# -*- test-case-name: tests.admin.test_policy -*-
"""
``fjmcp admin policy explain``: what the ``[policy]`` table leaves one user
through one client, in each consent mode, without a daemon or a child.

The broker judges a tool by its name and its ``readOnlyHint``; a child's
list is not at hand here, so ``--tool NAME`` (``NAME:ro`` for a tool the
child marks read-only) asks for the verdict of given tools. A client's
known-client name comes from the known-client records of the
configuration, as the broker finds it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.policy.effective import EffectivePolicy, Subject, effective_policy
from fjmcp.policy.rules import NO_CLIENT_NAMES, ClientNames, Mode, PolicyConfig

__all__ = ["COMMANDS", "explain"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["explain"])
    parser.add_argument("--user", required=True, help="Forgejo login.")
    parser.add_argument("--client", required=True, help="OAuth client id.")
    parser.add_argument(
        "--org", action="append", default=[], help="An organization of the user."
    )
    parser.add_argument(
        "--tool",
        action="append",
        default=[],
        help="A tool to judge; NAME:ro for one marked readOnlyHint.",
    )


def _describe(policy: EffectivePolicy) -> dict[str, Any]:
    return {
        "mode": policy.subject.mode.value,
        "denied_tools": dict(sorted(policy.denied_tools.items())),
        "allowed_tools": (
            None
            if policy.allowed_tools is None
            else dict(sorted(policy.allowed_tools.items()))
        ),
        "read_only_judgement": (
            "readOnlyHint or read_only_tools"
            if policy.trust_child_annotations
            else "read_only_tools only"
        ),
        "read_only_tools": sorted(policy.read_only_tools),
        "denied_resource_prefixes": [p for p, _ in policy.denied_resources],
        "denied_prompts": sorted(policy.denied_prompts),
    }


def explain(
    config: PolicyConfig,
    user: str,
    client_id: str,
    *,
    client_names: ClientNames = NO_CLIENT_NAMES,
    orgs: Sequence[str] = (),
    tools: Sequence[str] = (),
) -> dict[str, Any]:
    """The effective policy of ``user`` through ``client_id`` in each mode."""
    known_name = client_names.name_of(client_id)
    modes = [Mode.READ_ONLY]
    if config.full_access_allowed(client_id, known_name):
        modes.insert(0, Mode.FULL)
    out: dict[str, Any] = {"user": user, "client": client_id, "modes": {}}
    if known_name is not None:
        out["known_client"] = known_name
    for mode in modes:
        subject = Subject(user, client_id, mode, frozenset(orgs), known_name)
        policy = effective_policy(config, subject)
        described = _describe(policy)
        verdicts = {}
        for spec in tools:
            name, _, flag = spec.partition(":")
            verdict = policy.tool(name, flag == "ro")
            verdicts[spec] = (
                "allowed" if verdict.allowed else f"refused: {verdict.reason}"
            )
        if verdicts:
            described["tools"] = verdicts
        out["modes"][mode.value] = described
    if Mode.FULL not in modes:
        out["full_access"] = "forbidden for this client (full_access_forbidden)"
    return out


def _text(result: Any) -> str:
    lines = [f"user {result['user']} through client {result['client']}"]
    if "known_client" in result:
        lines.append(f"  known client: {result['known_client']}")
    if "full_access" in result:
        lines.append(f"  full access: {result['full_access']}")
    for mode, described in result["modes"].items():
        lines.append(f"  {mode}:")
        for key, value in described.items():
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines)


def _policy(ctx: AdminContext, args: argparse.Namespace) -> int:
    if ctx.config is None:
        print("fjmcp admin policy: needs --config", file=ctx.out)
        return 2
    from fjmcp.config import ConfigError
    from fjmcp.settings import known_client_names

    try:
        names = known_client_names(ctx.config)
    except ConfigError as e:
        print(e.render(), file=ctx.out)
        return 2
    result = explain(
        ctx.config.policy,
        args.user,
        args.client,
        client_names=names,
        orgs=args.org,
        tools=args.tool,
    )
    ctx.emit(result, _text)
    return 0


COMMANDS = [
    AdminCommand(
        "policy",
        "Explain the effective tool policy of a user through a client.",
        _policy,
        _arguments,
    )
]
