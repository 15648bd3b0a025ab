"""A candidate rewrite: SQL text plus where it came from.

Every rewriter (rule search, LLM-R2 rule selection, LITHE-style LLM rewrites) proposes
:class:`Candidate` objects; :func:`sqlsluice.rewriters.api.rewrite` puts all of them through
the same gate (verify -> planner cost -> timing) before one may be served.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Candidate:
    """One proposed rewrite of a query.

    >>> Candidate("SELECT 1", ["constant_fold"], "rules").source
    'rules'
    """

    sql: str
    rules: list[str] = field(default_factory=list)
    source: str = "rules"  # "rules" | "llm-r2" | "lithe"
    tokens: int = 0
    cost_usd: float = 0.0
    notes: str = ""
