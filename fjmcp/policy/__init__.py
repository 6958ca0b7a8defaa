# -*- test-case-name: tests.policy -*-
"""
Least privilege over MCP: the consent mode a user chose, the operator's
``[policy]`` rules, and what they allow of a child's tools, resources and
prompts.

Pure: values in, values out. The bridge holds one `ToolGate` per session,
built from the `EffectivePolicy` computed once when the session starts, so
each message costs a dictionary lookup.
"""

from fjmcp.policy.effective import EffectivePolicy, Subject, Verdict, effective_policy
from fjmcp.policy.gate import ToolGate, refusal_error
from fjmcp.policy.rules import (
    READ_ONLY_CLASS,
    Mode,
    PolicyConfig,
    PolicyError,
    Rule,
    never_matching,
    parse_policy,
)

__all__ = [
    "READ_ONLY_CLASS",
    "EffectivePolicy",
    "Mode",
    "PolicyConfig",
    "PolicyError",
    "Rule",
    "Subject",
    "ToolGate",
    "Verdict",
    "effective_policy",
    "never_matching",
    "parse_policy",
    "refusal_error",
]
