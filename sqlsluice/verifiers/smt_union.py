"""Set-operation and key lemmas for the SMT tier (the rules ``or_in_to_union``,
``distinct_join_to_semi_join``, ``filter_into_derived`` and ``left_join_remove_under_keys``).

IR-level rewrites of the query model, each exact under SQL bag semantics with NULLs, called from
:func:`sqlsluice.verifiers.smt_semijoin.semijoin_normal_form` (and, for IN, from its predicate
rewriting).  Each checks its precondition and returns ``None`` / its input unchanged otherwise.

* :func:`in_union_to_or`: ``x IN (A UNION [ALL] B)`` is ``x IN (A) OR x IN (B)``.  ``x IN S`` is the
  three-valued OR of ``x = s`` over the rows ``s`` of ``S`` (FALSE for an empty ``S``); the rows of
  ``A UNION ALL B`` are those of ``A`` followed by those of ``B``, and UNION only drops rows equal
  to a kept one (OR is idempotent), so the OR splits exactly: TRUE, NULL and FALSE alike, for NULL
  ``x``, NULLs inside ``A`` / ``B`` and under NOT.  Precondition: every branch outputs the same
  declared types (no coercion to a common type, which could make ``=`` compare other values).
* :func:`intersect_units`: an inner-joined derived table ``d = A INTERSECT B`` (set, not ALL) whose
  every column is equated by a top-level conjunct ``d.c = e`` (``e`` not reading ``d``) is the join
  of ``DISTINCT A`` and ``DISTINCT B`` with the same equalities.  Given the other units' row, each
  side has at most one matching row (a set, every column pinned), and the pinned tuple (non-NULL:
  ``=`` was TRUE) is in ``A INTERSECT B`` iff it is in ``A`` and in ``B`` (same types, no coercion).
* :func:`left_join_key_removal`: ``LEFT JOIN T u ON u.k1 = e1 AND .. AND p`` with ``k`` a key of the
  base table ``T`` (primary key or UNIQUE: ``=`` is never TRUE on a NULL key) and ``u`` read nowhere
  else: every left row meets at most one ``u`` row, so the LEFT JOIN yields exactly one row per left
  row (matched or padded) and nothing reads it: it goes.
* :func:`constant_having_to_where`: under a non-empty GROUP BY, a HAVING conjunct without columns,
  aggregates or functions keeps every group or none, as the same conjunct in WHERE keeps every row
  or none (no rows: no groups).  Not for a scalar aggregate, which answers a row on empty input.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import smt
from sqlsluice.verifiers.smt import Block, Query, SetOp, Unit

_TAIL = ("order", "limit", "offset", "fetch", "with_", "with")


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return [*_conjuncts(e.this), *_conjuncts(e.expression)]
    return [e]


# ---------------------------------------------------------------------------------------------
# x IN (A UNION B) = x IN (A) OR x IN (B)
# ---------------------------------------------------------------------------------------------

def union_leaves(q: exp.Expression) -> list[exp.Select] | None:
    """The SELECT branches of a tree of UNION / UNION ALL (no ORDER BY, LIMIT, WITH, BY NAME on any
    node or branch), or None when ``q`` is anything else."""
    while isinstance(q, exp.Subquery) and not q.alias:
        q = q.this
    if isinstance(q, exp.Select):
        return None if any(q.args.get(k) for k in _TAIL) else [q]
    if not isinstance(q, exp.Union) or q.args.get("by_name") or any(q.args.get(k) for k in _TAIL):
        return None
    left, right = union_leaves(q.this), union_leaves(q.expression)
    if left is None or right is None:
        return None
    return [*left, *right]


def _output_type(p: exp.Expression) -> str | None:
    t = p.type if not isinstance(p, exp.Alias) or p.this.type is None else p.this.type
    if t is None:
        return None
    s = t.sql("duckdb").upper()
    return None if s in ("", "UNKNOWN", "NULL") else s


def _leaf_types(leaves: list[exp.Select]) -> list[str] | None:
    """The declared output types every leaf shares (None: unknown, or two leaves differ)."""
    rows = [[_output_type(p) for p in leaf.expressions] for leaf in leaves]
    if any(t is None for row in rows for t in row) or any(row != rows[0] for row in rows):
        return None
    return [t for t in rows[0] if t is not None]


def in_union_to_or(e: exp.In) -> exp.Expression | None:
    """``x IN (A UNION [ALL] B ..)`` -> ``(x IN (A) OR x IN (B) ..)`` (module doc), or None."""
    q = e.args.get("query")
    if q is None:
        return None
    leaves = union_leaves(q)
    if leaves is None or len(leaves) < 2:
        return None
    width = len(leaves[0].expressions)
    if any(len(leaf.expressions) != width for leaf in leaves) or _leaf_types(leaves) is None:
        return None
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
           for leaf in leaves for p in leaf.expressions):
        return None
    ins = [exp.In(this=e.this.copy(), query=exp.Subquery(this=leaf.copy())) for leaf in leaves]
    return exp.paren(exp.or_(*ins, copy=False), copy=False)


# ---------------------------------------------------------------------------------------------
# d = A INTERSECT B, every column equated -> DISTINCT A, DISTINCT B
# ---------------------------------------------------------------------------------------------

def _block_types(q: Query) -> list[str] | None:
    q = smt._unwrap(q)
    if isinstance(q, SetOp):
        kids = [_block_types(c) for c in q.children]
        if not kids or any(k is None or k != kids[0] for k in kids):
            return None
        return kids[0]
    types = [_output_type(o) for o in q.outputs]
    return None if any(t is None for t in types) else [t for t in types if t is not None]


def _pins(q: Block, alias: str, names: list[str]) -> list[int] | None:
    """Indices of top-level conjuncts ``alias.c = e`` (``e`` reads no column of ``alias`` and no
    subquery) that together name every column in ``names``; None when some column is not pinned."""
    conjs = [c for cond in q.conds for c in _conjuncts(cond)]
    found: dict[str, int] = {}
    for i, c in enumerate(conjs):
        if not isinstance(c, exp.EQ):
            continue
        for mine, other in ((c.this, c.expression), (c.expression, c.this)):
            if (isinstance(mine, exp.Column) and mine.table == alias and mine.name.lower() in names
                    and not any(col.table == alias for col in other.find_all(exp.Column))
                    and other.find(exp.Select) is None):
                found.setdefault(mine.name.lower(), i)
                break
    return sorted(set(found.values())) if set(found) == set(names) else None


def intersect_units(q: Block, catalog: Catalog) -> Block:
    """Split an inner-joined ``A INTERSECT B`` unit whose columns are all pinned (module doc)."""
    for ui, u in enumerate(q.units):
        d = smt._unwrap(u.derived) if u.derived is not None else None
        if not isinstance(d, SetOp) or d.kind != "intersect" or not d.distinct or len(d.children) < 2:
            continue
        names = [n for n, _, _ in u.columns]
        if len(set(names)) != len(names) or _block_types(d) is None:
            continue
        if any(len(smt._unwrap(c).out_kinds) != len(names) for c in d.children):
            continue
        pins = _pins(q, u.alias, names)
        if pins is None:
            continue
        conjs = [c for cond in q.conds for c in _conjuncts(cond)]
        units: list[Unit] = []
        extra: list[exp.Expression] = []
        try:
            for k, child in enumerate(d.children):
                alias = u.alias if k == 0 else f"{u.alias}__i{next(smt._FRESH)}"
                inner = Unit(f"_isect{next(smt._FRESH)}", f"derived:{id(child)}", list(u.columns), child)
                cols: list[exp.Expression] = [exp.column(n, table=inner.alias) for n in names]
                body = smt.normalize(Block([inner], [], [], [c.copy() for c in cols], None, cols,
                                           list(smt._unwrap(child).out_kinds)), catalog)
                units.append(Unit(alias, f"derived:{id(body)}", list(u.columns), body))
                if k:
                    extra.extend(smt._rename_alias(conjs[i], u.alias, alias) for i in pins)
        except smt.Outside:
            continue  # a branch the model cannot normalise: the unit stays whole
        return Block([*q.units[:ui], *units, *q.units[ui + 1:]], q.ljs, [*q.conds, *extra], q.group, q.having,
                     q.outputs, q.out_kinds)
    return q


# ---------------------------------------------------------------------------------------------
# LEFT JOIN on a key, read nowhere
# ---------------------------------------------------------------------------------------------

def left_join_key_removal(q: Block, catalog: Catalog) -> Block:
    """Drop a LEFT JOINed base table matched on a whole key and read nowhere else (module doc)."""
    from sqlsluice.verifiers.smt_semijoin import table_keys

    for k, (u, on) in enumerate(q.ljs):
        if not u.type_key.startswith("table:"):
            continue
        others: list[Any] = [*q.conds, *q.outputs, *(q.group or []), *([q.having] if q.having is not None else []),
                             *(lon for j, (_, lon) in enumerate(q.ljs) if j != k)]
        if any(c.table == u.alias for e in others for c in e.find_all(exp.Column)):
            continue
        pinned: set[str] = set()
        for c in _conjuncts(on):
            if not isinstance(c, exp.EQ):
                continue
            for mine, other in ((c.this, c.expression), (c.expression, c.this)):
                if (isinstance(mine, exp.Column) and mine.table == u.alias
                        and not any(col.table == u.alias for col in other.find_all(exp.Column))
                        and other.find(exp.Select) is None):
                    pinned.add(mine.name.lower())
        if any(key and set(key) <= pinned for key in table_keys(catalog, u.type_key[6:])):
            rest = Block(q.units, q.ljs[:k] + q.ljs[k + 1:], q.conds, q.group, q.having, q.outputs, q.out_kinds)
            return left_join_key_removal(rest, catalog)
    return q


# ---------------------------------------------------------------------------------------------
# constant HAVING conjuncts
# ---------------------------------------------------------------------------------------------

_CONST_NODES = (exp.Literal, exp.Boolean, exp.Null, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And,
                exp.Or, exp.Not, exp.Paren, exp.Is, exp.Neg, exp.Add, exp.Sub, exp.Mul)


def constant_having_to_where(q: Block, catalog: Catalog) -> Block:
    """Move HAVING conjuncts made only of literals and operators to WHERE (non-empty GROUP BY)."""
    if not q.group or q.having is None:
        return q
    move: list[exp.Expression] = []
    stay: list[exp.Expression] = []
    for c in _conjuncts(q.having):
        (move if all(isinstance(n, _CONST_NODES) for n in c.walk()) else stay).append(c)
    if not move:
        return q
    having: Any = exp.and_(*stay) if stay else None
    return Block(q.units, q.ljs, [*q.conds, *move], q.group, having, q.outputs, q.out_kinds)
