"""Mutation operators for the verifier's soundness benchmark.

Each operator changes one thing in a query (a constant, a comparison, a predicate, a join type,
DISTINCT, an aggregate, UNION vs UNION ALL, NOT EXISTS -> NOT IN).  A mutant usually changes the
query's meaning but not always; the benchmark counts a mutant as a semantic change only when
some database shows the difference (see :mod:`sqlsluice.bench.verify`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from sqlglot import exp

Mutator = Callable[[exp.Expression], Iterator[exp.Expression]]


def _each(q: exp.Expression, kinds: tuple[type[exp.Expression], ...]) -> Iterator[tuple[exp.Expression, exp.Expression]]:
    """(copy, node-in-copy) for every node of the given kinds."""
    n = sum(1 for _ in q.find_all(*kinds))
    for i in range(n):
        c = q.copy()
        node = list(c.find_all(*kinds))[i]
        yield c, node


def change_constant(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, lit in _each(q, (exp.Literal,)):
        if lit.find_ancestor(exp.Limit, exp.Offset, exp.Fetch, exp.Ordered):
            continue
        if lit.is_string:
            lit.replace(exp.Literal.string(lit.this + "x"))
        else:
            try:
                v = float(lit.this)
            except ValueError:
                continue
            lit.replace(exp.Literal.number(int(v) + 1 if v.is_integer() else v + 1))
        yield c


_CMP: dict[type[exp.Expression], type[exp.Expression]] = {exp.GT: exp.GTE, exp.GTE: exp.GT, exp.LT: exp.LTE, exp.LTE: exp.LT, exp.EQ: exp.NEQ, exp.NEQ: exp.EQ}


def change_comparison(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, node in _each(q, tuple(_CMP)):
        node.replace(_CMP[type(node)](this=node.this.copy(), expression=node.expression.copy()))
        yield c


def drop_predicate(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, where in _each(q, (exp.Where,)):
        parts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        if len(parts) == 1:
            where.pop()
        else:
            where.set("this", exp.and_(*[p.copy() for p in parts[1:]]))
        yield c
    for c, join in _each(q, (exp.Join,)):
        on = join.args.get("on")
        if isinstance(on, exp.And):
            parts = list(on.flatten())
            join.set("on", exp.and_(*[p.copy() for p in parts[1:]]))
            yield c


def inner_to_left(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, join in _each(q, (exp.Join,)):
        if join.args.get("side") or join.args.get("on") is None:
            continue
        join.set("kind", None)
        join.set("side", "LEFT")
        yield c


def toggle_distinct(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, sel in _each(q, (exp.Select,)):
        if sel.args.get("distinct"):
            sel.set("distinct", None)
        else:
            sel.set("distinct", exp.Distinct())
        yield c


_AGG: dict[type[exp.Expression], type[exp.Expression]] = {exp.Sum: exp.Max, exp.Max: exp.Min, exp.Min: exp.Max,
                                                          exp.Avg: exp.Sum, exp.Count: exp.Sum}


def change_aggregate(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, agg in _each(q, tuple(_AGG)):
        arg = agg.this
        if isinstance(agg, exp.Count):
            if isinstance(arg, exp.Star) or arg is None:
                continue  # COUNT(*) has no argument to change
            if isinstance(arg, exp.Distinct):
                agg.set("this", arg.expressions[0].copy() if arg.expressions else exp.Star())
                yield c
                continue
        agg.replace(_AGG[type(agg)](this=arg.copy() if arg is not None else exp.Star()))
        yield c


def swap_union(q: exp.Expression) -> Iterator[exp.Expression]:
    for c, u in _each(q, (exp.Union,)):
        u.set("distinct", not u.args.get("distinct"))
        yield c


def not_exists_to_not_in(q: exp.Expression) -> Iterator[exp.Expression]:
    """``NOT EXISTS (SELECT .. WHERE o.x = i.y AND r)`` -> ``o.x NOT IN (SELECT i.y .. WHERE r)``
    (differs when ``i.y`` can be NULL); ``x IN (subquery)`` -> ``NOT x IN (subquery)``."""
    for c, node in _each(q, (exp.Not,)):
        ex = node.this
        if not isinstance(ex, exp.Exists):
            continue
        sub = ex.this
        if not isinstance(sub, exp.Select) or sub.args.get("where") is None:
            continue
        inner = {t.alias_or_name for t in sub.find_all(exp.Table)}
        parts = list(sub.args["where"].this.flatten())
        for k, p in enumerate(parts):
            if isinstance(p, exp.EQ) and isinstance(p.this, exp.Column) and isinstance(p.expression, exp.Column):
                a, b = p.this, p.expression
                if a.table in inner and b.table not in inner:
                    a, b = b, a
                if b.table in inner and a.table not in inner:
                    rest = parts[:k] + parts[k + 1:]
                    new_sub = sub.copy()
                    new_sub.set("expressions", [b.copy()])
                    if rest:
                        new_sub.set("where", exp.Where(this=exp.and_(*[r.copy() for r in rest])))
                    else:
                        new_sub.set("where", None)
                    node.replace(exp.Not(this=exp.In(this=a.copy(), query=exp.Subquery(this=new_sub))))
                    yield c
                    break
    for c, node in _each(q, (exp.In,)):
        if node.args.get("query") is not None and not isinstance(node.parent, exp.Not):
            node.replace(exp.Not(this=node.copy()))
            yield c


MUTATORS: dict[str, Mutator] = {
    "constant": change_constant,
    "comparison": change_comparison,
    "drop_predicate": drop_predicate,
    "inner_to_left": inner_to_left,
    "distinct": toggle_distinct,
    "aggregate": change_aggregate,
    "union": swap_union,
    "not_in_null": not_exists_to_not_in,
}


def mutants(q: exp.Expression, dialect: str, rng: random.Random, per_kind: int = 1) -> list[tuple[str, str]]:
    """``[(kind, sql)]``: up to ``per_kind`` distinct mutants of each kind, chosen at random."""
    base = q.sql(dialect)
    out: list[tuple[str, str]] = []
    for kind, fn in MUTATORS.items():
        cands = []
        seen = set()
        for m in fn(q):
            s = m.sql(dialect)
            if s != base and s not in seen:
                seen.add(s)
                cands.append(s)
        rng.shuffle(cands)
        out.extend((kind, s) for s in cands[:per_kind])
    return out
