# -*- test-case-name: tests.policy.test_book -*-
"""Tests of the policy book: a caller's rules by known-client name and organization."""

from __future__ import annotations

from fjmcp.interfaces import Identity
from fjmcp.policy.book import PolicyBook
from fjmcp.policy.rules import ClientNames, parse_policy

CHATGPT = "https://chatgpt.com/oauth/client.json"
POLICY = parse_policy(
    {
        "rules": [
            {
                "name": "gpt-ro",
                "effect": "allow",
                "clients": ["ChatGPT"],
                "tools": ["read-only"],
            },
            {
                "name": "ops-deny",
                "effect": "deny",
                "orgs": ["ops"],
                "tools": ["push"],
            },
        ]
    }
)


def test_known_clients_are_named_by_their_records_only() -> None:
    """
    The known client's id takes the rule naming its record's name; a
    registered client calling itself ChatGPT does not.
    """
    book = PolicyBook(POLICY, ClientNames([(CHATGPT, "ChatGPT")]))
    known = book.policy_for(Identity("alice", CHATGPT))
    assert known.allowed_tools == {"read-only": "gpt-ro"}
    assert not known.tool("create_issue", False).allowed
    impostor = book.policy_for(Identity("alice", "fjc_x"))
    assert impostor.allowed_tools is None
    assert impostor.tool("create_issue", False).allowed


def test_organizations_read_at_login_select_rules() -> None:
    """The organizations last read for a user take part in the next policy."""
    book = PolicyBook(POLICY)
    assert book.policy_for(Identity("bob", "c")).tool("push", False).allowed
    book.set_orgs("bob", ["ops"])
    refused = book.policy_for(Identity("bob", "c")).tool("push", False)
    assert not refused.allowed and refused.rule == "ops-deny"
