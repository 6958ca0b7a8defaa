# -*- test-case-name: tests.policy.test_effective -*-
"""Tests of the effective policy: consent as upper bound, deny wins, allow lists."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fjmcp.policy.effective import CONSENT_RULE, Subject, effective_policy
from fjmcp.policy.rules import Effect, Mode, PolicyConfig, Rule, parse_policy

ALICE_FULL = Subject("alice", "cid", Mode.FULL, frozenset({"ops"}), "ChatGPT")
ALICE_RO = Subject("alice", "cid", Mode.READ_ONLY, frozenset({"ops"}), "ChatGPT")


def test_no_rules_full_grant_allows_everything() -> None:
    """Without rules a full-access grant reaches every tool."""
    policy = effective_policy(PolicyConfig(), ALICE_FULL)
    assert policy.tool("delete_repo", False).allowed


def test_read_only_grant_needs_the_hint_or_the_list() -> None:
    """A read-only grant reaches annotated tools and listed ones only."""
    config = PolicyConfig(read_only_tools=frozenset({"list_things"}))
    policy = effective_policy(config, ALICE_RO)
    assert policy.tool("get_file", True).allowed
    assert policy.tool("list_things", False).allowed
    refused = policy.tool("delete_repo", False)
    assert not refused.allowed
    assert refused.rule == CONSENT_RULE
    assert "read-only" in refused.reason


def test_untrusted_annotations_are_ignored() -> None:
    """With trust_child_annotations = false only the operator's list counts."""
    config = PolicyConfig(trust_child_annotations=False)
    policy = effective_policy(config, ALICE_RO)
    assert not policy.tool("get_file", True).allowed


def test_the_issue_examples() -> None:
    """ChatGPT read-only; no deletion for anyone; full access for one org."""
    config = parse_policy(
        {
            "rules": [
                {
                    "name": "chatgpt-read-only",
                    "effect": "allow",
                    "clients": ["ChatGPT"],
                    "tools": ["read-only"],
                },
                {
                    "name": "no-repo-deletion",
                    "effect": "deny",
                    "tools": ["delete_repo"],
                },
                {
                    "name": "everyone-read-only",
                    "effect": "allow",
                    "tools": ["read-only"],
                },
                {
                    "name": "ops-full",
                    "effect": "allow",
                    "orgs": ["ops"],
                    "tools": ["*"],
                },
            ]
        }
    )
    ops_member = effective_policy(
        config, Subject("a", "c", Mode.FULL, frozenset({"ops"}))
    )
    outsider = effective_policy(config, Subject("b", "c", Mode.FULL))
    assert ops_member.tool("create_issue", False).allowed
    assert not ops_member.tool("delete_repo", False).allowed
    assert ops_member.tool("delete_repo", False).rule == "no-repo-deletion"
    assert outsider.tool("get_file", True).allowed
    refused = outsider.tool("create_issue", False)
    assert not refused.allowed
    assert "not among the tools allowed" in refused.reason


def test_resources_and_prompts_deny_by_prefix_and_name() -> None:
    """A read-only grant reads resources and prompts unless a deny rule names them."""
    config = parse_policy(
        {
            "rules": [
                {
                    "name": "r",
                    "effect": "deny",
                    "resources": ["secret://"],
                    "prompts": ["admin"],
                }
            ]
        }
    )
    policy = effective_policy(config, ALICE_RO)
    assert policy.resource("repo://a").allowed
    assert not policy.resource("secret://x").allowed
    assert policy.prompt("summary").allowed
    assert policy.prompt("admin").rule == "r"


names = st.sampled_from(["a", "b", "c", "*", "read-only"])
rules = st.builds(
    Rule,
    name=st.uuids().map(str),
    effect=st.sampled_from(list(Effect)),
    users=st.frozensets(st.sampled_from(["alice", "bob"]), max_size=2),
    orgs=st.frozensets(st.sampled_from(["ops", "dev"]), max_size=2),
    clients=st.frozensets(st.sampled_from(["cid", "ChatGPT", "other"]), max_size=2),
    tools=st.frozensets(names, min_size=1, max_size=3),
)
subjects = st.builds(
    Subject,
    user=st.sampled_from(["alice", "bob"]),
    client_id=st.sampled_from(["cid", "other"]),
    mode=st.sampled_from(list(Mode)),
    orgs=st.frozensets(st.sampled_from(["ops", "dev"]), max_size=2),
    known_name=st.sampled_from([None, "ChatGPT"]),
)
configs = st.builds(
    PolicyConfig,
    trust_child_annotations=st.booleans(),
    read_only_tools=st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=2),
    rules=st.lists(rules, max_size=8).map(tuple),
)


@given(configs, subjects, st.sampled_from(["a", "b", "c"]), st.booleans())
def test_deny_always_wins(
    config: PolicyConfig, subject: Subject, tool: str, hint: bool
) -> None:
    """A tool named by a deny rule that applies is refused, whatever allows it."""
    policy = effective_policy(config, subject)
    read_only = policy.is_read_only(tool, hint)
    denying = [
        r
        for r in config.rules
        if r.effect is Effect.DENY
        and r.applies(subject.user, subject.orgs, subject.client_id, subject.known_name)
        and (
            tool in r.tools or "*" in r.tools or (read_only and "read-only" in r.tools)
        )
    ]
    if denying:
        assert not policy.tool(tool, hint).allowed


@given(configs, subjects, st.sampled_from(["a", "b", "c"]), st.booleans())
def test_read_only_grant_never_reaches_an_unmarked_tool(
    config: PolicyConfig, subject: Subject, tool: str, hint: bool
) -> None:
    """A read-only grant reaches only tools marked read-only (if trusted) or listed."""
    ro_subject = Subject(
        subject.user,
        subject.client_id,
        Mode.READ_ONLY,
        subject.orgs,
        subject.known_name,
    )
    policy = effective_policy(config, ro_subject)
    marked = (hint and config.trust_child_annotations) or tool in config.read_only_tools
    if not marked:
        assert not policy.tool(tool, hint).allowed


@given(configs, subjects, st.sampled_from(["a", "b", "c"]), st.booleans())
def test_rules_only_narrow_consent(
    config: PolicyConfig, subject: Subject, tool: str, hint: bool
) -> None:
    """Adding rules never allows what the same consent without rules refuses."""
    bare: Any = effective_policy(
        PolicyConfig(
            trust_child_annotations=config.trust_child_annotations,
            read_only_tools=config.read_only_tools,
        ),
        subject,
    )
    if not bare.tool(tool, hint).allowed:
        assert not effective_policy(config, subject).tool(tool, hint).allowed
