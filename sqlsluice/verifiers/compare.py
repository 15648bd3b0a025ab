"""Result-set comparison: bag / set / list, NULL-safe, tolerant of numeric types."""

from __future__ import annotations

import datetime as _dt
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal

Semantics = Literal["bag", "set"]


def _norm(v: Any, digits: int) -> Any:
    """A hashable, type-tolerant key for one value (numbers rounded to ``digits`` significant digits)."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("num", float(int(v)))
    if isinstance(v, int | float | Decimal):
        f = float(v)
        if math.isnan(f):
            return ("nan",)
        if math.isinf(f):
            return ("num", f)
        if f == 0:
            return ("num", 0.0)
        return ("num", float(f"{f:.{digits}g}"))
    if isinstance(v, _dt.datetime):
        return ("time", v.replace(tzinfo=None).isoformat())
    if isinstance(v, _dt.date):
        return ("time", _dt.datetime(v.year, v.month, v.day).isoformat())
    if isinstance(v, list | tuple):
        return ("seq", tuple(_norm(x, digits) for x in v))
    if isinstance(v, dict):
        return ("map", tuple(sorted((str(k), _norm(x, digits)) for k, x in v.items())))
    if isinstance(v, bytes | bytearray | memoryview):
        return ("bytes", bytes(v))
    return (type(v).__name__ if not isinstance(v, str) else "str", str(v))


def _value_eq(a: Any, b: Any, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    na, nb = isinstance(a, int | float | Decimal), isinstance(b, int | float | Decimal)
    if na and nb:
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        if fa == fb:
            return True
        return abs(fa - fb) <= tol * max(1.0, abs(fa), abs(fb))
    return _norm(a, 15) == _norm(b, 15)


def _row_eq(r1: Sequence[Any], r2: Sequence[Any], tol: float) -> bool:
    return len(r1) == len(r2) and all(_value_eq(a, b, tol) for a, b in zip(r1, r2, strict=True))


def _key(row: Sequence[Any], digits: int) -> tuple[Any, ...]:
    return tuple(_norm(v, digits) for v in row)


def compare_results(rows1: Iterable[Sequence[Any]], rows2: Iterable[Sequence[Any]], *,
                    semantics: Semantics = "bag", ordered: bool = False, float_tol: float = 1e-9) -> bool:
    """True when two result sets are the same.

    ``semantics="bag"`` compares multisets (duplicates count), ``"set"`` ignores duplicates;
    ``ordered=True`` compares the rows as lists (after dropping duplicates under set semantics).
    NULL equals NULL; ints, floats, Decimals and bools compare by value with a relative
    tolerance ``float_tol``; dates compare equal to midnight timestamps.

    >>> compare_results([(1, None), (2.0, "a")], [(2, "a"), (Decimal("1.0"), None)])
    True
    >>> compare_results([(1,), (1,)], [(1,)])
    False
    >>> compare_results([(1,), (1,)], [(1,)], semantics="set")
    True
    """
    l1 = [tuple(r) for r in rows1]
    l2 = [tuple(r) for r in rows2]
    if semantics == "set":
        l1 = _dedupe(l1, float_tol)
        l2 = _dedupe(l2, float_tol)
    if len(l1) != len(l2):
        return False
    if ordered:
        return all(_row_eq(a, b, float_tol) for a, b in zip(l1, l2, strict=True))
    digits = _digits(float_tol)
    if Counter(_key(r, digits) for r in l1) == Counter(_key(r, digits) for r in l2):
        return True
    # Rounding can split values that are within tolerance; match greedily (small results only).
    if len(l1) > 2000:
        return False
    left = list(l2)
    for r in l1:
        for i, s in enumerate(left):
            if _row_eq(r, s, float_tol):
                del left[i]
                break
        else:
            return False
    return True


def _digits(tol: float) -> int:
    if tol <= 0:
        return 17
    return max(1, min(15, int(-math.log10(tol)) - 1))


def _dedupe(rows: list[tuple[Any, ...]], tol: float) -> list[tuple[Any, ...]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    digits = _digits(tol)
    for r in rows:
        k = _key(r, digits)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out
