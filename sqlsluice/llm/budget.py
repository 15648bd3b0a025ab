"""A per-query token budget shared by the LLM stages of one rewrite job.

>>> b = TokenBudget(100)
>>> b.charge(60); b.left, b.exhausted
(40, False)
>>> b.charge(50); b.left, b.exhausted
(0, True)
"""

from __future__ import annotations

import threading

from sqlsluice.llm.base import Completion


class TokenBudget:
    """Counts tokens (input + output, as reported) against a limit; cache hits cost nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, int(limit))
        self.spent = 0
        self.cost_usd = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, budget: int | TokenBudget | None, default: int = 20000) -> TokenBudget:
        if isinstance(budget, TokenBudget):
            return budget
        return cls(default if budget is None else budget)

    def charge(self, tokens: int | Completion) -> None:
        with self._lock:
            if isinstance(tokens, Completion):
                self.spent += tokens.usage.total
                self.cost_usd += tokens.cost_usd
                self.calls += 1
            else:
                self.spent += int(tokens)

    @property
    def left(self) -> int:
        return max(0, self.limit - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit

    def __repr__(self) -> str:
        return f"TokenBudget(spent={self.spent}, limit={self.limit})"
