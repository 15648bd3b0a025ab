"""Counting subqueries: ``(SELECT COUNT(*) ...) > 0`` is an EXISTS.

Expects column references qualified with their source (``sqlglot``'s ``qualify`` does it;
:func:`sqlsluice.rewriters.rules.prepare` calls it).
"""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog


def _count_star_body(q: exp.Expr) -> exp.Select | None:
    """``q`` when it is ``SELECT COUNT(*) FROM ... [WHERE ...]``: one row always, its value the
    number of rows FROM/WHERE produce; None for anything else."""
    if not isinstance(q, exp.Select) or len(q.expressions) != 1 or q.args.get("from_") is None:
        return None
    if any(q.args.get(k) for k in ("group", "having", "qualify", "limit", "offset", "fetch", "distinct",
                                    "windows", "with_", "with", "order", "into", "laterals")):
        # GROUP BY / HAVING: zero or several rows; LIMIT 0 / OFFSET: no row (NULL, not 0)
        return None
    agg = q.expressions[0].unalias()
    if not isinstance(agg, exp.Count):
        return None
    arg = agg.this
    # COUNT(*) or COUNT(<non-NULL number>) counts rows; COUNT(col) skips NULLs, COUNT(NULL) is 0
    counts_rows = isinstance(arg, exp.Star) or (isinstance(arg, exp.Literal) and not arg.is_string)
    if not counts_rows:  # COUNT(DISTINCT x) parses as COUNT(Distinct(x)): refused here too
        return None
    if q.find(exp.Window) is not None:
        return None
    return q


def _positive_test(node: exp.Expr) -> exp.Subquery | None:
    """The scalar subquery of ``(subquery) > 0``, ``>= 1``, ``0 <``, ``1 <=`` or ``<> 0``."""
    if not isinstance(node, (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NEQ)):
        return None
    left, right = node.this, node.expression
    flip: dict[type[exp.Expr], type[exp.Expr]] = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT,
                                                  exp.LTE: exp.GTE, exp.NEQ: exp.NEQ}
    kind: type[exp.Expr] = type(node)
    if isinstance(left, exp.Literal) and isinstance(right, exp.Subquery):
        left, right, kind = right, left, flip[kind]
    if not isinstance(left, exp.Subquery) or not isinstance(right, exp.Literal) or right.is_string:
        return None
    if left.alias:
        return None
    try:
        n = float(right.name)
    except ValueError:
        return None
    ok = (kind is exp.GT and n == 0) or (kind is exp.GTE and n == 1) or (kind is exp.NEQ and n == 0)
    return left if ok else None


def count_positive_to_exists(expr: exp.Expr, *, schema: Catalog | None = None,
                             dialect: str | None = None) -> exp.Expr:
    """``(SELECT COUNT(*) FROM F WHERE P) > 0`` -> ``EXISTS (SELECT 1 FROM F WHERE P)`` (also
    ``>= 1``, ``<> 0`` and the mirrored forms); PostgreSQL then plans a (hashed) semi-join
    instead of counting per outer row (TPC-DS q41).

    Without GROUP BY, HAVING, LIMIT or OFFSET, ``SELECT COUNT(*)`` returns exactly one row whose
    value is the number of rows F/P produce, never NULL, so the comparison is TRUE or FALSE,
    exactly as EXISTS is: the rewrite holds in any boolean context (under NOT and OR too).
    Hazards: ``COUNT(col)`` / ``COUNT(DISTINCT ...)`` (NULLs, duplicates), GROUP BY (no group:
    no row, a NULL comparison), LIMIT 0/OFFSET (NULL), window functions: not rewritten.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT t.a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0")
    >>> count_positive_to_exists(q).sql()
    'SELECT t.a FROM t WHERE EXISTS(SELECT 1 FROM u WHERE u.k = t.k)'
    """
    hits = [n for n in expr.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NEQ)
            if (s := _positive_test(n)) is not None and _count_star_body(s.this) is not None]
    if not hits:
        return expr
    root = expr.copy()
    changed = False
    for node in list(root.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NEQ)):
        sub = _positive_test(node)
        body = _count_star_body(sub.this) if sub is not None else None
        if body is None:
            continue
        inner = body.copy()
        inner.set("expressions", [exp.Literal.number(1)])
        node.replace(exp.Exists(this=inner))
        changed = True
    return root if changed else expr
