# -*- test-case-name: tests.policy.test_rules -*-
"""
The ``[policy]`` table of the configuration: its rule language, parsed and
checked once when the configuration is read.

A rule says who it applies to (Forgejo logins, Forgejo organizations, OAuth
clients by id or known-client name; a rule naming none applies to everyone)
and what it allows or denies (tool names, ``*`` for every tool, the
``read-only`` class; resource URI prefixes and prompt names for deny rules).
Deny rules always win; when allow rules apply to someone, only what they
allow is reachable. The user's consent is an upper bound the rules only
narrow.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from attrs import field, frozen

__all__ = [
    "ALL_TOOLS",
    "METADATA_DOCUMENT_CLIENTS",
    "ClientNames",
    "NO_CLIENT_NAMES",
    "READ_ONLY_CLASS",
    "Effect",
    "Mode",
    "PolicyConfig",
    "PolicyError",
    "Rule",
    "is_metadata_document_client",
    "never_matching",
    "parse_policy",
    "unknown_clients",
]

#: Names every tool the read-only judgement allows (see `fjmcp.policy.effective`).
READ_ONLY_CLASS: Final = "read-only"
#: Names every tool.
ALL_TOOLS: Final = "*"
#: In ``clients`` and ``full_access_forbidden``: every client whose id is a
#: metadata-document URL (an https client id).
METADATA_DOCUMENT_CLIENTS: Final = "metadata-document"

_LOGIN: Final = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class Mode(enum.Enum):
    """What the user consented to on the consent page."""

    READ_ONLY = "read-only"
    FULL = "full"


class Effect(enum.Enum):
    """What a rule does to what it names."""

    ALLOW = "allow"
    DENY = "deny"


class PolicyError(ValueError):
    """The ``[policy]`` table cannot be used; ``problems`` names each reason."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def is_metadata_document_client(client_id: str) -> bool:
    """A client id that is a URL is a client identified by a metadata document."""
    return client_id.startswith("https://")


#: How the broker's own client ids look: dynamic registrations and the
#: admin CLI's (`fjmcp.oauth.tokens.new_client_id`, schema 1).
_ISSUED_CLIENT_ID: Final = re.compile(r"^(fjc_[A-Za-z0-9_-]+|admin-cli)$")


def _name_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs))


@frozen
class ClientNames:
    """
    The known-client names (``client_name`` of each enabled record of
    ``fjmcp/oauth/known_clients.toml`` and the operator's ``known_clients``),
    by client id: the only names a rule's ``clients`` or
    ``full_access_forbidden`` match, exactly as written there. A client's
    self-declared name never counts: anyone can register as "ChatGPT".
    """

    pairs: tuple[tuple[str, str], ...] = field(default=(), converter=_name_pairs)
    """(client id, known name) of each record."""
    _by_id: dict[str, str] = field(init=False, eq=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_id", dict(self.pairs))

    def name_of(self, client_id: str) -> str | None:
        """The known-client name of ``client_id``, if it is a known client."""
        return self._by_id.get(client_id)

    @property
    def names(self) -> frozenset[str]:
        """Every known-client name."""
        return frozenset(self._by_id.values())


#: No known clients at all.
NO_CLIENT_NAMES: Final = ClientNames()


def _frozenset(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@frozen
class Rule:
    """One allow or deny rule; empty selectors match everyone."""

    name: str
    """How refusals and ``policy explain`` name the rule."""
    effect: Effect
    users: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    orgs: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    clients: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    tools: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    resources: tuple[str, ...] = ()
    """URI prefixes (deny rules only)."""
    prompts: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    """Prompt names (deny rules only)."""

    def applies(
        self, user: str, orgs: frozenset[str], client_id: str, known_name: str | None
    ) -> bool:
        """
        Whether every selector the rule has matches this caller; a client
        matches by id, by its known-client name (`ClientNames`) or as a
        metadata-document client.
        """
        if self.users and user not in self.users:
            return False
        if self.orgs and self.orgs.isdisjoint(orgs):
            return False
        if self.clients:
            names = {client_id}
            if known_name:
                names.add(known_name)
            if is_metadata_document_client(client_id):
                names.add(METADATA_DOCUMENT_CLIENTS)
            if self.clients.isdisjoint(names):
                return False
        return True


@frozen
class PolicyConfig:
    """The parsed ``[policy]`` table."""

    default_mode: Mode = Mode.FULL
    """What the consent page offers preselected."""
    full_access_forbidden: frozenset[str] = field(
        default=frozenset(), converter=_frozenset
    )
    """Clients (ids, known-client names, ``metadata-document``) offered read-only."""
    trust_child_annotations: bool = True
    read_only_tools: frozenset[str] = field(default=frozenset(), converter=_frozenset)
    rules: tuple[Rule, ...] = ()

    def full_access_allowed(self, client_id: str, known_name: str | None) -> bool:
        """
        Whether the consent page may offer full access to this client;
        ``known_name`` is its known-client name (`ClientNames`), never the
        name it declared itself.
        """
        names = {client_id}
        if known_name:
            names.add(known_name)
        if is_metadata_document_client(client_id):
            names.add(METADATA_DOCUMENT_CLIENTS)
        return self.full_access_forbidden.isdisjoint(names)

    def as_table(self) -> dict[str, Any]:
        """The TOML table this value was parsed from (normalised), for display."""
        rules = []
        for rule in self.rules:
            out: dict[str, Any] = {"name": rule.name, "effect": rule.effect.value}
            for key in _SELECTORS + ("tools", "prompts"):
                if getattr(rule, key):
                    out[key] = sorted(getattr(rule, key))
            if rule.resources:
                out["resources"] = list(rule.resources)
            rules.append(out)
        return {
            "default_mode": self.default_mode.value,
            "full_access_forbidden": sorted(self.full_access_forbidden),
            "trust_child_annotations": self.trust_child_annotations,
            "read_only_tools": sorted(self.read_only_tools),
            "rules": rules,
        }


_SELECTORS: Final = ("users", "orgs", "clients")
_RULE_KEYS: Final = frozenset(
    {"name", "effect", *_SELECTORS, "tools", "resources", "prompts"}
)
_TABLE_KEYS: Final = frozenset(
    {
        "default_mode",
        "full_access_forbidden",
        "trust_child_annotations",
        "read_only_tools",
        "rules",
    }
)


def _strings(where: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v for v in value
    ):
        problems.append(f"{where} must be a list of non-empty strings")
        return ()
    return tuple(value)


def _parse_rule(index: int, raw: Any, problems: list[str]) -> Rule | None:
    where = f"policy.rules[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be a table")
        return None
    for key in sorted(set(raw) - _RULE_KEYS):
        problems.append(f"{where}: unknown key {key!r}")
    name = raw.get("name", where)
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name must be a non-empty string")
        name = where
    try:
        effect = Effect(raw.get("effect"))
    except ValueError:
        problems.append(f'{where}.effect must be "allow" or "deny"')
        return None
    values = {
        key: _strings(f"{where}.{key}", raw[key], problems)
        for key in (*_SELECTORS, "tools", "resources", "prompts")
        if key in raw
    }
    for login in values.get("users", ()):
        if not _LOGIN.match(login):
            problems.append(f"{where}.users: {login!r} is not a Forgejo login")
    if effect is Effect.ALLOW:
        for key in ("resources", "prompts"):
            if values.get(key):
                problems.append(
                    f"{where}: {key} may only be denied (a grant may read "
                    "resources and prompts unless a deny rule names them)"
                )
    if not any(values.get(k) for k in ("tools", "resources", "prompts")):
        problems.append(f"{where} names no tools, resources or prompts")
    return Rule(
        name=name,
        effect=effect,
        users=values.get("users", ()),
        orgs=values.get("orgs", ()),
        clients=values.get("clients", ()),
        tools=values.get("tools", ()),
        resources=values.get("resources", ()),
        prompts=values.get("prompts", ()),
    )


def parse_policy(table: Any) -> PolicyConfig:
    """
    The ``[policy]`` table as a `PolicyConfig`; a `PolicyError` names every
    problem (unknown keys among them) at once.
    """
    if isinstance(table, PolicyConfig):
        return table
    problems: list[str] = []
    if not isinstance(table, Mapping):
        raise PolicyError(["policy must be a table"])
    for key in sorted(set(table) - _TABLE_KEYS):
        problems.append(f"policy: unknown key {key!r}")
    try:
        mode = Mode(table.get("default_mode", Mode.FULL.value))
    except ValueError:
        problems.append('policy.default_mode must be "read-only" or "full"')
        mode = Mode.FULL
    trust = table.get("trust_child_annotations", True)
    if not isinstance(trust, bool):
        problems.append("policy.trust_child_annotations must be true or false")
        trust = True
    forbidden = _strings(
        "policy.full_access_forbidden", table.get("full_access_forbidden", []), problems
    )
    read_only_tools = _strings(
        "policy.read_only_tools", table.get("read_only_tools", []), problems
    )
    raw_rules = table.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(raw_rules, list):
        problems.append("policy.rules must be an array of tables ([[policy.rules]])")
    else:
        for i, raw in enumerate(raw_rules):
            rule = _parse_rule(i, raw, problems)
            if rule is not None:
                rules.append(rule)
    names = [r.name for r in rules]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"policy.rules: the name {dup!r} is used more than once")
    if problems:
        raise PolicyError(problems)
    return PolicyConfig(
        default_mode=mode,
        full_access_forbidden=forbidden,
        trust_child_annotations=trust,
        read_only_tools=read_only_tools,
        rules=tuple(rules),
    )


def _client_problem(entry: str, known: frozenset[str]) -> str | None:
    """Why a ``clients`` entry can name no client, or None if it can."""
    if (
        entry == METADATA_DOCUMENT_CLIENTS
        or entry in known
        or is_metadata_document_client(entry)
        or _ISSUED_CLIENT_ID.match(entry)
    ):
        return None
    near = sorted(n for n in known if n.casefold() == entry.casefold())
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    names = ", ".join(repr(n) for n in sorted(known)) or "none"
    return (
        f"{entry!r} is no known-client name{hint} (known clients: {names}; "
        "names match exactly) and no client id this broker issues"
    )


def unknown_clients(policy: PolicyConfig, known: frozenset[str]) -> list[str]:
    """
    Client names in rules and ``full_access_forbidden`` that name no client,
    for ``check-config``; a rule whose every client is one can never match.
    """
    notes: list[str] = []
    for entry in sorted(policy.full_access_forbidden):
        problem = _client_problem(entry, known)
        if problem is not None:
            notes.append(f"policy.full_access_forbidden: {problem}")
    for rule in policy.rules:
        problems = [
            p for p in (_client_problem(c, known) for c in sorted(rule.clients)) if p
        ]
        if problems and len(problems) == len(rule.clients):
            notes.append(f"rule {rule.name!r} can never match: {'; '.join(problems)}")
        else:
            notes.extend(f"rule {rule.name!r}: {p}" for p in problems)
    return notes


def never_matching(
    policy: PolicyConfig, known_names: frozenset[str] | None = None
) -> list[str]:
    """
    Rules (or parts of them) that can never take effect, for ``check-config``:
    tools an unconditional deny already removes, allow rules wholly shadowed
    by one, ``read-only`` rules while no tool can be judged read-only, and
    (given the known-client names) clients no rule can name.
    """
    notes: list[str] = []
    if known_names is not None:
        notes.extend(unknown_clients(policy, known_names))
    everyone_denied: set[str] = set()
    for rule in policy.rules:
        unconditional = not (rule.users or rule.orgs or rule.clients)
        if rule.effect is Effect.DENY and unconditional:
            everyone_denied |= rule.tools
    judge_nothing = not policy.trust_child_annotations and not policy.read_only_tools
    for rule in policy.rules:
        if rule.effect is Effect.ALLOW:
            shadowed = set(rule.tools & everyone_denied)
            if ALL_TOOLS in everyone_denied:
                shadowed = set(rule.tools)
            if shadowed and shadowed == set(rule.tools):
                notes.append(
                    f"rule {rule.name!r} can never match: every tool it allows "
                    "is denied to everyone"
                )
            elif shadowed:
                notes.append(
                    f"rule {rule.name!r}: {', '.join(sorted(shadowed))} can never "
                    "be allowed (denied to everyone)"
                )
        if READ_ONLY_CLASS in rule.tools and judge_nothing:
            notes.append(
                f"rule {rule.name!r} names the read-only class, but no tool can "
                "be read-only (trust_child_annotations = false and "
                "read_only_tools is empty)"
            )
    return notes
