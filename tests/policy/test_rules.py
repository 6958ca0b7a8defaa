# -*- test-case-name: tests.policy.test_rules -*-
"""Tests of the ``[policy]`` rule language: parsing, problems, dead rules."""

from __future__ import annotations

import pytest

from fjmcp.policy.rules import (
    ClientNames,
    Effect,
    Mode,
    PolicyConfig,
    PolicyError,
    Rule,
    never_matching,
    parse_policy,
)


def test_empty_table_is_the_default() -> None:
    """An absent or empty ``[policy]`` means full access offered and no rules."""
    assert parse_policy({}) == PolicyConfig()


def test_rules_parse() -> None:
    """Each rule keeps its selectors and what it names."""
    policy = parse_policy(
        {
            "default_mode": "read-only",
            "full_access_forbidden": ["metadata-document"],
            "read_only_tools": ["get_file"],
            "rules": [
                {
                    "name": "gpt",
                    "effect": "allow",
                    "clients": ["chatgpt"],
                    "tools": ["read-only"],
                },
                {
                    "effect": "deny",
                    "tools": ["delete_repo"],
                    "resources": ["forgejo://secrets/"],
                    "prompts": ["p"],
                },
            ],
        }
    )
    assert policy.default_mode is Mode.READ_ONLY
    assert policy.rules[0].effect is Effect.ALLOW
    assert policy.rules[0].clients == {"chatgpt"}
    assert policy.rules[1].name == "policy.rules[1]"
    assert policy.rules[1].resources == ("forgejo://secrets/",)


def test_every_problem_is_named() -> None:
    """Unknown keys, bad effects, bad logins and empty rules are all reported."""
    with pytest.raises(PolicyError) as e:
        parse_policy(
            {
                "colour": "red",
                "default_mode": "sometimes",
                "rules": [
                    {"effect": "maybe", "tools": ["x"]},
                    {
                        "effect": "deny",
                        "users": ["no spaces"],
                        "tools": ["x"],
                        "toolz": ["y"],
                    },
                    {"effect": "allow", "resources": ["file:"]},
                    {"effect": "deny"},
                ],
            }
        )
    text = "\n".join(e.value.problems)
    assert "unknown key 'colour'" in text
    assert "default_mode" in text
    assert "policy.rules[0].effect" in text
    assert "'no spaces' is not a Forgejo login" in text
    assert "policy.rules[1]: unknown key 'toolz'" in text
    assert "resources may only be denied" in text
    assert "policy.rules[3] names no tools" in text


def test_duplicate_rule_names_are_refused() -> None:
    """Two rules with one name would make refusals ambiguous."""
    with pytest.raises(PolicyError, match="more than once"):
        parse_policy(
            {
                "rules": [
                    {"name": "a", "effect": "deny", "tools": ["x"]},
                    {"name": "a", "effect": "deny", "tools": ["y"]},
                ]
            }
        )


def test_never_matching_rules_are_reported() -> None:
    """An allow rule wholly denied to everyone, and read-only with no judge."""
    policy = parse_policy(
        {
            "trust_child_annotations": False,
            "rules": [
                {"name": "no-delete", "effect": "deny", "tools": ["delete_repo"]},
                {
                    "name": "admins",
                    "effect": "allow",
                    "users": ["root"],
                    "tools": ["delete_repo"],
                },
                {
                    "name": "half",
                    "effect": "allow",
                    "orgs": ["ops"],
                    "tools": ["delete_repo", "push"],
                },
                {"name": "ro", "effect": "allow", "tools": ["read-only"]},
            ],
        }
    )
    notes = "\n".join(never_matching(policy))
    assert "'admins' can never match" in notes
    assert "'half': delete_repo can never be allowed" in notes
    assert "'ro' names the read-only class" in notes


def test_full_access_forbidden_names_metadata_document_clients() -> None:
    """``metadata-document`` forbids full access to every URL client id."""
    policy = parse_policy({"full_access_forbidden": ["metadata-document", "gpt"]})
    assert not policy.full_access_allowed("https://app.example/meta.json", None)
    assert not policy.full_access_allowed("abc", "gpt")
    assert policy.full_access_allowed("abc", None)


def test_as_table_round_trips() -> None:
    """The displayed table parses back to the same policy."""
    policy = parse_policy(
        {
            "rules": [
                {
                    "name": "a",
                    "effect": "deny",
                    "users": ["bob"],
                    "tools": ["x"],
                    "resources": ["r:"],
                }
            ]
        }
    )
    assert parse_policy(policy.as_table()) == policy


KNOWN = frozenset({"ChatGPT", "Claude", "Claude Code"})


def test_rules_naming_no_known_client_are_reported() -> None:
    """
    A name that is no known-client name (exact, case and all) and no client
    id this broker issues can name no client: said, with the near name.
    """
    policy = parse_policy(
        {
            "full_access_forbidden": ["metadata-document", "Claude", "claude code"],
            "rules": [
                {
                    "name": "gpt-ro",
                    "effect": "allow",
                    "clients": ["chatgpt"],
                    "tools": ["read-only"],
                },
                {
                    "name": "mixed",
                    "effect": "deny",
                    "clients": ["ChatGPT", "fjc_abc", "nobody"],
                    "tools": ["delete_repo"],
                },
                {
                    "name": "fine",
                    "effect": "deny",
                    "clients": [
                        "https://app.example/meta.json",
                        "admin-cli",
                        "Claude Code",
                    ],
                    "tools": ["delete_repo"],
                },
            ],
        }
    )
    notes = never_matching(policy, KNOWN)
    text = "\n".join(notes)
    assert "rule 'gpt-ro' can never match: 'chatgpt' is no known-client name" in text
    assert "did you mean 'ChatGPT'?" in text
    assert "rule 'mixed': 'nobody' is no known-client name" in text
    assert "'mixed' can never match" not in text
    assert "'fine'" not in text
    assert any(
        n.startswith("policy.full_access_forbidden: 'claude code'") for n in notes
    )
    assert not any("'Claude' is" in n for n in notes)
    # Without the known names (a caller that has none) nothing is said of clients.
    assert never_matching(policy) == []


def test_client_names_match_exactly() -> None:
    """A rule naming a known client matches its id by the record's name only."""
    names = ClientNames([("https://chatgpt.com/oauth/client.json", "ChatGPT")])
    rule = Rule("r", Effect.DENY, clients={"ChatGPT"}, tools={"x"})
    url = "https://chatgpt.com/oauth/client.json"
    assert rule.applies("a", frozenset(), url, names.name_of(url))
    # A registered client calling itself ChatGPT is not the known client.
    assert not rule.applies("a", frozenset(), "fjc_x", names.name_of("fjc_x"))
    assert names.names == frozenset({"ChatGPT"})
    lower = Rule("r", Effect.DENY, clients={"chatgpt"}, tools={"x"})
    assert not lower.applies("a", frozenset(), url, names.name_of(url))
