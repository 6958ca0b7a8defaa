# -*- test-case-name: tests.policy.test_effective -*-
"""
The effective policy of one caller: the user's consent and every rule that
applies to them, folded once (at session start and when the grant changes)
into sets, so judging a tool is a few set lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from attrs import frozen

from fjmcp.policy.rules import (
    ALL_TOOLS,
    READ_ONLY_CLASS,
    Effect,
    Mode,
    PolicyConfig,
)

__all__ = [
    "CONSENT_RULE",
    "EffectivePolicy",
    "Subject",
    "Verdict",
    "effective_policy",
    "read_only_hint",
]

#: The "rule" a refusal names when the user's read-only consent refuses it.
CONSENT_RULE: Final = "consent:read-only"


@frozen
class Subject:
    """Who a policy is computed for."""

    user: str
    client_id: str
    mode: Mode
    orgs: frozenset[str] = frozenset()
    known_name: str | None = None
    """The client's known-client name (`fjmcp.policy.rules.ClientNames`)."""


@frozen
class Verdict:
    """Whether one tool, resource or prompt is reachable, and which rule said no."""

    allowed: bool
    rule: str = ""
    reason: str = ""


ALLOWED: Final = Verdict(True)


def read_only_hint(tool: Mapping[str, Any]) -> bool:
    """Whether a tool as listed by a child says ``readOnlyHint: true``."""
    annotations = tool.get("annotations")
    return isinstance(annotations, Mapping) and annotations.get("readOnlyHint") is True


@frozen
class EffectivePolicy:
    """What the rules and the consent leave one caller, as sets."""

    subject: Subject
    trust_child_annotations: bool
    read_only_tools: frozenset[str]
    denied_tools: Mapping[str, str]
    """Tool name (or ``*``, ``read-only``) -> the deny rule naming it."""
    allowed_tools: Mapping[str, str] | None
    """Tool name (or ``*``, ``read-only``) -> an allow rule naming it; None: no
    allow rule applies, so every tool the deny rules leave is allowed."""
    allow_rules: tuple[str, ...]
    denied_resources: tuple[tuple[str, str], ...]
    """(URI prefix, deny rule)."""
    denied_prompts: Mapping[str, str]

    @property
    def every_tool(self) -> bool:
        """Whether every tool is allowed whatever it is (full grant, no tool rule)."""
        return (
            self.subject.mode is Mode.FULL
            and not self.denied_tools
            and self.allowed_tools is None
        )

    @property
    def every_list_entry(self) -> bool:
        """Whether no list answer needs filtering (every tool, resource, prompt)."""
        return self.every_tool and not self.denied_resources and not self.denied_prompts

    def is_read_only(self, name: str, hint: bool) -> bool:
        """The read-only judgement: the child's annotation (if trusted) or the list."""
        return (self.trust_child_annotations and hint) or name in self.read_only_tools

    def tool(self, name: str, hint: bool) -> Verdict:
        """Whether ``name`` (listed with ``readOnlyHint`` = ``hint``) may be called."""
        read_only = self.is_read_only(name, hint)
        for key in (name, ALL_TOOLS) + ((READ_ONLY_CLASS,) if read_only else ()):
            rule = self.denied_tools.get(key)
            if rule is not None:
                return Verdict(False, rule, f"denied by the operator's rule {rule!r}")
        if self.subject.mode is Mode.READ_ONLY and not read_only:
            why = (
                "it is not marked readOnlyHint and not in read_only_tools"
                if self.trust_child_annotations
                else "it is not in read_only_tools"
            )
            return Verdict(False, CONSENT_RULE, f"the grant is read-only and {why}")
        if self.allowed_tools is not None:
            for key in (name, ALL_TOOLS) + ((READ_ONLY_CLASS,) if read_only else ()):
                if key in self.allowed_tools:
                    return ALLOWED
            rules = ", ".join(repr(r) for r in self.allow_rules)
            return Verdict(
                False, self.allow_rules[0], f"not among the tools allowed by {rules}"
            )
        return ALLOWED

    def resource(self, uri: str) -> Verdict:
        """Whether a resource URI may be read (read-only grants may, unless denied)."""
        for prefix, rule in self.denied_resources:
            if uri.startswith(prefix):
                return Verdict(False, rule, f"denied by the operator's rule {rule!r}")
        return ALLOWED

    def prompt(self, name: str) -> Verdict:
        """Whether a prompt may be got (read-only grants may, unless denied)."""
        rule = self.denied_prompts.get(name)
        if rule is not None:
            return Verdict(False, rule, f"denied by the operator's rule {rule!r}")
        return ALLOWED


def effective_policy(config: PolicyConfig, subject: Subject) -> EffectivePolicy:
    """Fold every rule that applies to ``subject`` into one `EffectivePolicy`."""
    denied: dict[str, str] = {}
    allowed: dict[str, str] = {}
    allow_rules: list[str] = []
    resources: list[tuple[str, str]] = []
    prompts: dict[str, str] = {}
    for rule in config.rules:
        if not rule.applies(
            subject.user, subject.orgs, subject.client_id, subject.known_name
        ):
            continue
        if rule.effect is Effect.DENY:
            for tool in rule.tools:
                denied.setdefault(tool, rule.name)
            resources.extend((prefix, rule.name) for prefix in rule.resources)
            for prompt in rule.prompts:
                prompts.setdefault(prompt, rule.name)
        else:
            allow_rules.append(rule.name)
            for tool in rule.tools:
                allowed.setdefault(tool, rule.name)
    return EffectivePolicy(
        subject=subject,
        trust_child_annotations=config.trust_child_annotations,
        read_only_tools=config.read_only_tools,
        denied_tools=denied,
        allowed_tools=allowed if allow_rules else None,
        allow_rules=tuple(allow_rules),
        denied_resources=tuple(resources),
        denied_prompts=prompts,
    )
