"""Run both queries on a live backend and compare their results."""

from __future__ import annotations

from typing import Any

from sqlsluice.errors import SluiceError
from sqlsluice.verifiers.compare import Semantics, compare_results


def check_on_live(backend: Any, q1: str, q2: str, timeout_s: float | None = 10.0, *,
                  semantics: Semantics = "bag", ordered: bool = False) -> bool | None:
    """True if both queries return the same rows on ``backend``, False if not, None if either failed
    (error or timeout).  A True here is evidence, not proof."""
    try:
        r1 = backend.execute(q1, timeout=timeout_s)
        r2 = backend.execute(q2, timeout=timeout_s)
    except SluiceError:
        return None
    return compare_results(r1.rows, r2.rows, semantics=semantics, ordered=ordered)
