"""Row-count tests read as EXISTS before the proof tiers.

``(SELECT COUNT(*) FROM F [WHERE P]) > 0`` and ``EXISTS (SELECT 1 FROM F [WHERE P])`` are the
same predicate.  The proof tiers model a scalar subquery as an opaque (uninterpreted) value and
EXISTS as a semi-join, so they cannot see it; this pass rewrites each such count test into its
EXISTS form in both queries, and the tiers then compare what is left.

Why the identity holds, for every database (bags, NULLs, empty tables):

- A ``SELECT`` with an aggregate, no ``GROUP BY`` and no ``HAVING``/``LIMIT``/``OFFSET``/
  ``FETCH``/``QUALIFY`` yields exactly one row, also when F/P produce no row (``GROUP BY``
  could yield none, and then the scalar subquery is NULL; ``LIMIT 0`` or ``OFFSET 1`` too).
- ``COUNT(*)`` and ``COUNT(n)`` for a non-NULL numeric literal ``n`` count the rows F/P
  produce, duplicates included; the value is an integer >= 0 and never NULL.  ``COUNT(col)``
  skips NULLs and ``COUNT(DISTINCT ..)`` duplicates: neither is read here.
- So ``c > 0``, ``c >= 1``, ``c <> 0`` (and ``0 < c``, ``1 <= c``, ``0 <> c``) are TRUE exactly
  when F/P produce a row and FALSE otherwise (never UNKNOWN), which is EXISTS; ``c = 0``,
  ``c < 1``, ``c <= 0`` (and mirrored) are NOT EXISTS.  Both sides are plain booleans, so the
  replacement holds in any context: WHERE, ON, HAVING, CASE, the select list, under NOT/OR.
- The subquery's FROM/WHERE (correlated or not) is kept as it is; only the select list
  becomes ``1``, which EXISTS ignores.

Refused (left as they are): window functions in the subquery, ``WITH`` inside it, ``SELECT
DISTINCT``, a subquery with an alias, a select list other than one COUNT, literals that are
not whole numbers, a string literal on the other side.

This is written independently of the rewrite rule ``count_positive_to_exists`` (which makes
the same change for speed) so that a mistake in the rule's preconditions is not repeated here;
the differential tier still runs both original queries as written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlglot import exp

# clauses that change how many rows (or which) the count sees, or whether it is one row
_CLAUSES = ("group", "having", "qualify", "limit", "offset", "fetch", "distinct", "windows", "with_", "order",
            "into", "laterals", "connect", "sample", "prewhere", "match")
_FLIP: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.NEQ: exp.NEQ, exp.EQ: exp.EQ}


def _counts_rows(q: exp.Expression) -> bool:
    """``q`` is ``SELECT COUNT(*) FROM .. [WHERE ..]`` (or ``COUNT(<non-NULL number>)``)."""
    if not isinstance(q, exp.Select) or len(q.expressions) != 1 or q.args.get("from_") is None:
        return False
    if any(q.args.get(k) for k in _CLAUSES):
        return False
    agg = q.expressions[0]
    if isinstance(agg, exp.Alias):
        agg = agg.this
    if not isinstance(agg, exp.Count):
        return False
    arg = agg.this
    if isinstance(arg, exp.Star):
        pass
    elif isinstance(arg, exp.Literal) and not arg.is_string:
        try:
            Decimal(arg.name)
        except InvalidOperation:
            return False
    else:
        return False
    return q.find(exp.Window) is None


def _whole(lit: exp.Expression) -> int | None:
    if not isinstance(lit, exp.Literal) or lit.is_string:
        return None
    try:
        v = Decimal(lit.name)
    except InvalidOperation:
        return None
    return int(v) if v == v.to_integral_value() else None


def _test(node: exp.Expression) -> tuple[exp.Subquery, bool] | None:
    """``(sub, positive)`` when ``node`` compares a row-count subquery with 0 or 1 so that it means
    EXISTS (positive) or NOT EXISTS; None otherwise."""
    kind = type(node)
    if kind not in _FLIP:
        return None
    left, right = node.this, node.expression
    if isinstance(right, exp.Subquery) and not isinstance(left, exp.Subquery):
        left, right, kind = right, left, _FLIP[kind]
    if not isinstance(left, exp.Subquery) or left.alias or not _counts_rows(left.this):
        return None
    n = _whole(right)
    if n is None:
        return None
    positive = {(exp.GT, 0), (exp.GTE, 1), (exp.NEQ, 0)}
    negative = {(exp.EQ, 0), (exp.LT, 1), (exp.LTE, 0)}
    if (kind, n) in positive:
        return left, True
    if (kind, n) in negative:
        return left, False
    return None


def count_tests_as_exists(e: exp.Expression) -> exp.Expression:
    """``e`` with every row-count test written as [NOT] EXISTS (a copy; ``e`` itself when none)."""
    kinds = tuple(_FLIP)
    if not any(_test(n) is not None for n in e.find_all(*kinds)):
        return e
    root = e.copy()
    # innermost first, so a count test inside another count's subquery is rewritten before its parent
    nodes = [n for n in root.find_all(*kinds)]
    for node in reversed(nodes):
        hit = _test(node)
        if hit is None:
            continue
        sub, positive = hit
        body = sub.this.copy()
        body.set("expressions", [exp.Literal.number(1)])
        new: exp.Expression = exp.Exists(this=body)
        node.replace(new if positive else exp.Not(this=new))
    return root
