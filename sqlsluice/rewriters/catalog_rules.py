"""The ordered rule catalog (re-exported from :mod:`sqlsluice.rewriters.rules`)."""

from sqlsluice.rewriters.rules import (
    BY_NAME,
    GROUPS,
    RULES,
    SEARCH,
    Applied,
    Rule,
    apply_rules,
    prepare,
    resolve,
)

__all__ = ["BY_NAME", "GROUPS", "RULES", "SEARCH", "Applied", "Rule", "apply_rules", "prepare", "resolve"]
