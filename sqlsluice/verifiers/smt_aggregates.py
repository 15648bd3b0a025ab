"""Aggregate normal forms for the SMT tier: a second chance for pairs the plain model cannot match.

:func:`second_chance` rebuilds both queries' models, applies :func:`extend` (below) on top of
:func:`smt.normalize`, and runs a fresh :class:`smt.Prover`.  Every rewrite here preserves the
bag of rows under SQL semantics with NULLs; each one states its precondition and checks it, and
returns ``None`` (nothing changed) when the check fails.

- :func:`collapse_two_level`: ``SELECT k, SUM(s) FROM (SELECT k, SUM(x) s FROM a GROUP BY k
  [UNION ALL ...]) t GROUP BY k`` = ``SELECT k, SUM(x) FROM (a [UNION ALL ...]) GROUP BY k`` when
  the outer keys are inner keys and every outer aggregate merges a decomposable inner one
  (SUM of SUM, SUM of COUNT, MIN of MIN, MAX of MAX).
- :func:`key_aggregates`: in a group, ``MIN(k)``, ``MAX(k)``, ``SUM(DISTINCT k)`` of a grouping
  column ``k`` is ``k``.
- :func:`intersect_by_count`: ``SELECT c FROM (DISTINCT a UNION ALL DISTINCT b) GROUP BY c
  HAVING COUNT(*) = 2`` = ``a INTERSECT b``.
- :func:`set_semantics`: under a duplicate-removing block (GROUP BY without aggregates), the
  DISTINCT of a derived table does not matter.
- :func:`duplicate_free`: a block whose outputs determine a key of every table instance it
  joins returns no duplicates: it equals its DISTINCT.
- :func:`lift_over_join`: ``SELECT .. FROM (SELECT k, agg .. GROUP BY k) g JOIN r ON g.k = r.key``
  = ``SELECT .. FROM .. JOIN r .. GROUP BY k, r.cols`` when each group meets at most one row of r.
- :func:`key_invariants`: a filter on a grouping column inside a grouped derived table holds on
  every row it returns (a TRUE conjunct added outside, both sides alike).
"""

from __future__ import annotations

import time
from typing import Any

from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import smt
from sqlsluice.verifiers.smt import Block, Query, SetOp, Unit

# kinds whose GROUP BY equality is plain equality (no -0.0/NaN, no collation): safe to reason
# "rows of one group hold the same value" and "a = b on a key determines it"
_EXACT = ("int", "real", "str", "date", "ts", "time", "bool")


def second_chance(o1: exp.Expression, o2: exp.Expression, catalog: Catalog, deadline: float,
                  binary_strings: bool) -> bool:
    """Prove ``o1`` (optimized) = ``o2`` with the aggregate normal forms; False when no proof.
    Raises what ``smt.prove`` reports (:class:`smt.Outside`, ``TimeoutError``, z3 errors)."""
    if time.monotonic() >= deadline:
        return False
    try:
        return _second_chance(o1, o2, catalog, deadline, binary_strings)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, AssertionError):
        return False  # a model these normal forms did not expect: no proof (never a guess)


def _second_chance(o1: exp.Expression, o2: exp.Expression, catalog: Catalog, deadline: float,
                   binary_strings: bool) -> bool:
    b = smt.Builder(catalog)
    m1 = extend(smt.normalize(b.query(o1), catalog), catalog)
    m2 = extend(smt.normalize(b.query(o2), catalog), catalog)
    prover = smt.Prover(deadline, frozenset(t.name.lower() for t in catalog.tables),
                        binary_strings=binary_strings, catalog=catalog)
    if prover.equiv(m1, m2):
        return True
    # a duplicate-free block equals its DISTINCT: try it on both sides (set semantics inside)
    d1, d2 = distinct_form(m1, catalog), distinct_form(m2, catalog)
    if d1 is None and d2 is None:
        return False
    prover = smt.Prover(deadline, frozenset(t.name.lower() for t in catalog.tables),
                        binary_strings=binary_strings, catalog=catalog)
    return prover.equiv(d1 if d1 is not None else m1, d2 if d2 is not None else m2)


def extend(q: Query, catalog: Catalog, depth: int = 0) -> Query:
    """Apply the aggregate normal forms bottom-up (bounded)."""
    if depth > 6:
        return q
    if isinstance(q, SetOp):
        kids = [smt._unwrap(extend(c, catalog, depth)) for c in q.children]
        if q.kind == "distinct" and len(kids) == 1:
            child = _set_child(kids[0], catalog)
            if (isinstance(child, Block) and child.group is None and child.outputs
                    and not any(_has_agg(o) or o.find(exp.Select) for o in child.outputs)):
                # DISTINCT of a plain block is the block grouped by its outputs (as SELECT DISTINCT)
                return Block(child.units, child.ljs, child.conds, [o.copy() for o in child.outputs], None,
                             child.outputs, q.out_kinds)
            return SetOp("distinct", True, [child], q.out_kinds)
        if q.kind == "intersect" and q.distinct:
            flat: list[Query] = []
            for k in kids:  # INTERSECT (distinct) is associative: (a ∩ b) ∩ c = a ∩ b ∩ c
                flat.extend(k.children if isinstance(k, SetOp) and k.kind == "intersect" and k.distinct else [k])
            kids = flat
        if q.kind in ("intersect", "except") and q.distinct:
            kids = [_set_child(k, catalog) for k in kids]  # set operations: only the sets of rows count
        return SetOp(q.kind, q.distinct, kids, q.out_kinds)
    for u in [*q.units, *(lu for lu, _ in q.ljs)]:
        if u.derived is not None:
            u.derived = extend(u.derived, catalog, depth)
    for r in (collapse_two_level(q), intersect_by_count(q, catalog), lift_over_join(q, catalog),
              keyed_aggregates(q, catalog)):
        if r is not None:
            return extend(smt.normalize(r, catalog), catalog, depth + 1)
    q = key_aggregates(q)
    q = key_invariants(q)
    s = set_semantics(q, catalog)
    if s is not None:
        return extend(smt.normalize(s, catalog), catalog, depth + 1)
    return canonical_columns(q)


def canonical_columns(q: Block) -> Block:
    """Put the columns of each derived table in an order that does not depend on their names
    (derived tables are matched column by column): by the text of their expressions, each column
    read as ``<table>.<column>``.  Only the order changes (``smt._prune_query`` keeps every row)."""
    for u in [*q.units, *(lu for lu, _ in q.ljs)]:
        d = smt._unwrap(u.derived) if u.derived is not None else None
        if isinstance(d, Block):
            branches = [d]
        elif isinstance(d, SetOp) and d.kind == "union" and not d.distinct and all(
                isinstance(smt._unwrap(c), Block) for c in d.children):
            branches = [smt._unwrap(c) for c in d.children]  # type: ignore[misc]
        else:
            continue
        n = len(u.columns)
        if any(len(b.outputs) != n for b in branches):
            continue
        keys = [tuple(_canon(b.outputs[i], b) for b in branches) for i in range(n)]
        perm = sorted(range(n), key=lambda i: keys[i])
        if perm == list(range(n)):
            continue
        new = smt._prune_query(u.derived, perm)
        if new is not None:
            u.derived = new
            u.columns = [u.columns[i] for i in perm]
    return q


def _canon(e: exp.Expression, b: Block) -> str:
    kinds = {x.alias: x.type_key if x.type_key.startswith("table:") else "derived"
             for x in [*b.units, *(lu for lu, _ in b.ljs)]}

    def ren(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.table in kinds:
            return exp.column(n.name.lower(), table=kinds[n.table], quoted=True)
        return n

    return e.copy().transform(ren, copy=False).sql("duckdb")


def _set_child(q: Query, catalog: Catalog) -> Query:
    """Under DISTINCT only the set of rows counts: drop the duplicate removal of UNION ALL
    branches and of a plain block's derived tables (see :func:`set_semantics`)."""
    if isinstance(q, SetOp) and q.kind == "union" and not q.distinct:
        return SetOp("union", False, [_set_child(smt._unwrap(c), catalog) for c in q.children], q.out_kinds)
    if isinstance(q, SetOp) and q.kind == "distinct":
        return _set_child(smt._unwrap(q.children[0]), catalog)
    if isinstance(q, Block) and _group_only(q) and not any(o.find(exp.Select) for o in q.outputs):
        return Block(q.units, q.ljs, q.conds, None, None, q.outputs, q.out_kinds)
    return q


def distinct_form(q: Query, catalog: Catalog) -> Query | None:
    """The DISTINCT form of a duplicate-free top block, with set semantics applied inside."""
    q = smt._unwrap(q)
    if not isinstance(q, Block):
        return None
    d = duplicate_free(q, catalog)
    if d is None:
        return None
    s = set_semantics(d, catalog)
    return extend(smt.normalize(s, catalog), catalog) if s is not None else d


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _t(e: exp.Expression) -> str:
    return e.sql("duckdb")


def _has_agg(e: exp.Expression | None) -> bool:
    return e is not None and e.find(exp.AggFunc) is not None


def _block_exprs(q: Block) -> list[exp.Expression]:
    return [*q.outputs, *(q.group or []), *([q.having] if q.having is not None else [])]


def _conjuncts(cs: list[exp.Expression]) -> list[exp.Expression]:
    out: list[exp.Expression] = []
    for c in cs:
        parts: list[Any] = list(c.flatten()) if isinstance(c, exp.And) else [c]
        out.extend(parts)
    return out


def _col_kind(q: Block, c: exp.Expression) -> str | None:
    """The kind of a plain column of one of ``q``'s table instances."""
    if not isinstance(c, exp.Column):
        return None
    for u in [*q.units, *(lu for lu, _ in q.ljs)]:
        if u.alias == c.table:
            for name, kind, _ in u.columns:
                if name == c.name.lower():
                    return kind
    return None


def _group_only(d: Block) -> bool:
    """GROUP BY (or DISTINCT) without aggregates or HAVING, every output a grouping expression
    or built from grouping columns only."""
    if not d.group or d.having is not None or any(_has_agg(o) for o in d.outputs):
        return False
    keys = {_t(g) for g in d.group}
    return all(_t(o) in keys or all(_t(c) in keys for c in o.find_all(exp.Column)) for o in d.outputs)


def _unit_key(u: Unit, catalog: Catalog) -> list[str] | None:
    """Column names of ``u`` that identify its rows (no two rows agree on all of them)."""
    if u.type_key.startswith("table:"):
        t = catalog.table(u.type_key[6:])
        if t is None or not t.primary_key:
            return None
        return [k.lower() for k in t.primary_key]
    d = smt._unwrap(u.derived) if u.derived is not None else None
    names = [n for n, _, _ in u.columns]
    if isinstance(d, SetOp) and d.kind == "distinct":
        return names
    if isinstance(d, Block) and d.group and len(d.outputs) == len(names):
        # one row per group: the outputs that are the grouping expressions identify it
        pos = {_t(o): i for i, o in enumerate(d.outputs)}
        if all(_t(g) in pos for g in d.group):
            return [names[pos[_t(g)]] for g in d.group]
    return None


def _kind_ok(u: Unit, name: str) -> bool:
    return any(n == name and k in _EXACT for n, k, _ in u.columns)


# ---------------------------------------------------------------------------------------------
# two-level aggregation
# ---------------------------------------------------------------------------------------------

_MERGE: dict[tuple[type, type], type] = {(exp.Sum, exp.Sum): exp.Sum, (exp.Sum, exp.Count): exp.Count,
                                         (exp.Min, exp.Min): exp.Min, (exp.Max, exp.Max): exp.Max,
                                         (exp.LogicalAnd, exp.LogicalAnd): exp.LogicalAnd,
                                         (exp.LogicalOr, exp.LogicalOr): exp.LogicalOr,
                                         (exp.BitwiseAndAgg, exp.BitwiseAndAgg): exp.BitwiseAndAgg,
                                         (exp.BitwiseOrAgg, exp.BitwiseOrAgg): exp.BitwiseOrAgg}
# aggregates that only see the set of values (duplicates do not change them)
_IDEMPOTENT = (exp.Min, exp.Max, exp.LogicalAnd, exp.LogicalOr, exp.BitwiseAndAgg, exp.BitwiseOrAgg)
_OUTER = (exp.Sum, exp.Count, exp.Avg, *_IDEMPOTENT)


def collapse_two_level(q: Block) -> Query | None:
    """``SELECT f(k, AGG_o(t.a)) FROM (B1 [UNION ALL B2 ...]) t GROUP BY g(k)`` where each Bi is
    ``SELECT .., AGG_i(x) AS a, .. FROM .. GROUP BY ..`` -> one grouping over the rows of the Bi.

    Preconditions (checked): the outer block reads one derived table, has no WHERE / LEFT JOIN;
    every branch is grouped (all by keys, or all scalar) with no HAVING; every column read outside
    an aggregate is a grouping expression of every branch (so an outer group is a union of inner
    groups); every outer aggregate is ``AGG_o(t.a)`` with ``(AGG_o, AGG_i)`` one of SUM/SUM,
    SUM/COUNT, MIN/MIN, MAX/MAX (DISTINCT only for MIN/MAX), or MIN/MAX of an inner key.
    Hazards: SUM over floats is not associative (only exact kinds merge); SUM of COUNTs over no row
    is NULL, not 0 (COUNT merges only where every outer group holds an inner row: a grouped outer
    block, or scalar inner blocks that always answer one row); a grouped outer block over scalar
    inner blocks would group the row an empty input still yields (refused).
    When the single inner block's keys are exactly the outer keys, each outer group holds exactly
    one inner row, and SUM/MIN/MAX of any inner column is that column itself."""
    if q.ljs or q.conds or len(q.units) != 1 or q.group is None or q.units[0].derived is None:
        return None
    u = q.units[0]
    d = smt._unwrap(u.derived)
    if isinstance(d, Block):
        branches: list[Block] = [d]
    elif isinstance(d, SetOp) and d.kind == "union" and not d.distinct and all(
            isinstance(smt._unwrap(c), Block) for c in d.children):
        branches = [smt._unwrap(c) for c in d.children]  # type: ignore[misc]
    else:
        return None
    names = [n for n, _, _ in u.columns]
    if any(b.group is None or b.having is not None or len(b.outputs) != len(names) for b in branches):
        return None
    scalar_inner = [not b.group for b in branches]
    if any(scalar_inner) and not all(scalar_inner):
        return None
    inner_scalar = all(scalar_inner)
    if inner_scalar and q.group:
        return None
    keysets = [{_t(g) for g in b.group or []} for b in branches]
    if any(e.find(exp.Select) for e in _block_exprs(q)):
        return None  # subqueries would read the inner scope after the merge
    # work on copies: the plan is keyed by node ids and the rewrite replaces nodes in place
    q = Block(q.units, q.ljs, q.conds, [g.copy() for g in q.group], q.having.copy() if q.having is not None else None,
              [o.copy() for o in q.outputs], q.out_kinds)
    assert q.group is not None

    def cls(j: int) -> str:
        if all(_t(b.outputs[j]) in ks for b, ks in zip(branches, keysets, strict=True)):
            return "key"
        outs = [b.outputs[j] for b in branches]
        if all(isinstance(o, exp.AggFunc) and type(o) is type(outs[0]) for o in outs):
            return "agg"
        return "other"

    col_cls = {n: cls(j) for j, n in enumerate(names)}
    pos = {n: j for j, n in enumerate(names)}
    # one inner group per outer group: a single branch whose keys are exactly the outer keys
    outer_keys = {c.name.lower() for c in q.group if isinstance(c, exp.Column) and c.table == u.alias}
    same_partition = (len(branches) == 1 and all(isinstance(c, exp.Column) and c.table == u.alias for c in q.group)
                      and all(col_cls.get(n) == "key" for n in outer_keys)
                      and {_t(branches[0].outputs[pos[n]]) for n in outer_keys} == keysets[0])
    # COALESCE(SUM(t.c), 0) of inner COUNTs is the COUNT of the rows, also over no inner row
    zero_ok: set[int] = set()

    def uncoalesce(n: exp.Expression) -> exp.Expression:
        if (isinstance(n, exp.Coalesce) and len(n.expressions) == 1 and isinstance(n.expressions[0], exp.Literal)
                and n.expressions[0].is_int and int(n.expressions[0].this) == 0 and isinstance(n.this, exp.Sum)
                and isinstance(n.this.this, exp.Column) and n.this.this.table == u.alias
                and col_cls.get(n.this.this.name.lower()) == "agg"
                and all(isinstance(b.outputs[pos[n.this.this.name.lower()]], exp.Count) for b in branches)):
            inner = n.this
            inner.pop()
            zero_ok.add(id(inner))
            return inner
        return n

    q.outputs = [o.transform(uncoalesce, copy=False) for o in q.outputs]
    if q.having is not None:
        q.having = q.having.transform(uncoalesce, copy=False)
    # classify the outer aggregates
    plan: dict[int, tuple[str, Any]] = {}
    for e in _block_exprs(q):
        for a in e.find_all(exp.AggFunc):
            if not isinstance(a, _OUTER) or a.find_ancestor(exp.AggFunc) or a.expressions:
                return None
            if isinstance(a.parent, exp.Filter | exp.Window):
                return None
            arg = a.this
            distinct = isinstance(arg, exp.Distinct)
            if distinct:
                if len(arg.expressions) != 1:
                    return None
                arg = arg.expressions[0]
            if not (isinstance(arg, exp.Column) and arg.table == u.alias and arg.name.lower() in pos):
                return None
            n = arg.name.lower()
            j = pos[n]
            ck = col_cls[n]
            if same_partition and isinstance(a, exp.Sum | exp.Min | exp.Max):
                plan[id(a)] = ("self", j)
                continue
            if ck == "key" and isinstance(a, _IDEMPOTENT):
                plan[id(a)] = ("key", (type(a), j))
                continue
            if (ck == "key" and isinstance(a, exp.Sum | exp.Count | exp.Avg) and not distinct and len(branches) == 1
                    and all(isinstance(c, exp.Column) and c.table == u.alias for c in q.group)
                    and all(col_cls.get(k) == "key" for k in outer_keys)
                    and {_t(branches[0].outputs[pos[k]]) for k in outer_keys | {n}} == keysets[0]
                    and _col_kind(branches[0], branches[0].outputs[j]) in _EXACT):
                # the inner groups of one outer group hold distinct values of this key: one each
                plan[id(a)] = ("key_distinct", (type(a), j))
                continue
            if isinstance(a, exp.Avg):
                return None
            if ck != "agg":
                return None
            inner = branches[0].outputs[j]
            merged = _MERGE.get((type(a), type(inner)))
            if merged is None:
                return None
            if distinct and merged not in (exp.Min, exp.Max):
                return None
            sigs = {smt._agg_sig(b.outputs[j]) for b in branches}
            if len(sigs) != 1:
                return None
            _, inner_distinct, star = sigs.pop()
            if inner_distinct and merged not in (exp.Min, exp.Max):
                return None
            if merged is exp.Count and not q.group and not inner_scalar and id(a) not in zero_ok:
                return None  # SUM of COUNTs over no inner row is NULL, COUNT is 0
            if merged is exp.Sum:
                for b in branches:
                    x = smt._agg_args(b.outputs[j])
                    if len(x) != 1:
                        return None
                    if not isinstance(x[0], exp.Null) and b.out_kinds[j] not in ("int", "real"):
                        return None  # float sums are not associative
            plan[id(a)] = ("agg", (merged, j, star))
    # columns outside aggregates must be keys of every branch
    for e in _block_exprs(q):
        for c in e.find_all(exp.Column):
            if c.table != u.alias:
                return None
            if c.find_ancestor(exp.AggFunc) is None and col_cls.get(c.name.lower()) != "key":
                return None
    if len(branches) == 1:
        return _collapse_one(q, u, branches[0], plan, pos)
    return _collapse_union(q, u, branches, plan, pos)


def _inner_arg(b: Block, j: int) -> exp.Expression | None:
    x = smt._agg_args(b.outputs[j])
    return x[0] if len(x) == 1 else None


def _collapse_one(q: Block, u: Unit, b: Block, plan: dict[int, tuple[str, Any]], pos: dict[str, int]) -> Query | None:
    def agg_node(a: exp.Expression) -> exp.Expression | None:
        how, info = plan[id(a)]
        if how == "self":
            return b.outputs[info].copy()
        if how == "key":
            typ, j = info
            return typ(this=b.outputs[j].copy())
        if how == "key_distinct":
            typ, j = info
            return typ(this=exp.Distinct(expressions=[b.outputs[j].copy()]))
        merged, j, star = info
        if star:
            return exp.Count(this=exp.Star())
        x = _inner_arg(b, j)
        if x is None:
            return None
        inner = b.outputs[j]
        arg: exp.Expression = exp.Distinct(expressions=[x.copy()]) if isinstance(inner.this, exp.Distinct) else x.copy()
        return merged(this=arg)

    failed = []

    def sub(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.AggFunc) and id(n) in plan:
            r = agg_node(n)
            if r is None:
                failed.append(n)
                return n
            return r
        if isinstance(n, exp.Column) and n.table == u.alias and n.name.lower() in pos:
            return b.outputs[pos[n.name.lower()]].copy()
        return n

    def conv(e: exp.Expression) -> exp.Expression:
        return e.transform(sub, copy=False) if not isinstance(e, exp.AggFunc | exp.Column) else sub(e)

    # transform on the original nodes (plan is keyed by their ids), working on a throwaway tree
    outputs = [conv(o) for o in q.outputs]
    group = [conv(g) for g in q.group or []]
    having = conv(q.having) if q.having is not None else None
    if failed:
        return None
    return Block(b.units, b.ljs, b.conds, group, having, outputs, q.out_kinds)


def _collapse_union(q: Block, u: Unit, branches: list[Block], plan: dict[int, tuple[str, Any]],
                    pos: dict[str, int]) -> Query | None:
    # columns of the new union: the key columns read, then one per aggregate argument
    used_keys = sorted({c.name.lower() for e in _block_exprs(q) for c in e.find_all(exp.Column)
                        if c.find_ancestor(exp.AggFunc) is None})
    kinds = {n: k for n, k, _ in u.columns}
    cols: list[tuple[str, str, bool]] = [(n, kinds[n], True) for n in used_keys]
    outs: list[list[exp.Expression]] = [[b.outputs[pos[n]].copy() for n in used_keys] for b in branches]
    taken = set(used_keys)
    arg_col: dict[int, str] = {}
    by_exprs: dict[tuple[str, ...], str] = {tuple(_t(b.outputs[pos[n]]) for b in branches): n for n in used_keys}
    for aid, (how, info) in plan.items():
        if how in ("self", "key_distinct"):
            return None
        if how == "key":
            _, j = info
            exprs = [b.outputs[j] for b in branches]
            kind = u.columns[j][1]
        else:
            _, j, star = info
            if star:
                continue
            xs = [_inner_arg(b, j) for b in branches]
            if any(x is None for x in xs):
                return None
            exprs = [x for x in xs if x is not None]
            kind = _kind_of(branches[0], exprs[0])
        texts = tuple(_t(x) for x in exprs)
        if texts in by_exprs:  # the same argument in every branch: one column
            arg_col[aid] = by_exprs[texts]
            continue
        base = exprs[0].name.lower() if isinstance(exprs[0], exp.Column) else u.columns[j][0]
        name = base
        i = 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        arg_col[aid] = by_exprs[texts] = name
        cols.append((name, kind, True))
        for o, x in zip(outs, exprs, strict=True):
            o.append(x.copy())
    kids: list[Query] = [Block(b.units, b.ljs, b.conds, None, None, o, [k for _, k, _ in cols])
                         for b, o in zip(branches, outs, strict=True)]
    sop = SetOp("union", False, kids, [k for _, k, _ in cols])
    alias = u.alias

    def sub(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.AggFunc) and id(n) in plan:
            how, info = plan[id(n)]
            if how == "key":
                return info[0](this=exp.column(arg_col[id(n)], table=alias, quoted=True))
            merged, j, star = info
            if star:
                return exp.Count(this=exp.Star())
            c = exp.column(arg_col[id(n)], table=alias, quoted=True)
            inner_distinct = isinstance(branches[0].outputs[j].this, exp.Distinct)
            return merged(this=exp.Distinct(expressions=[c]) if inner_distinct else c)
        return n

    def conv(e: exp.Expression) -> exp.Expression:
        return sub(e) if isinstance(e, exp.AggFunc) else e.transform(sub, copy=False)

    outputs = [conv(o) for o in q.outputs]
    group = [conv(g) for g in q.group or []]
    having = conv(q.having) if q.having is not None else None
    nu = Unit(alias, f"derived:{id(sop)}", cols, sop)
    return Block([nu], [], [], group, having, outputs, q.out_kinds)


def _kind_of(b: Block, x: exp.Expression) -> str:
    k = _col_kind(b, x)
    if k is not None:
        return k
    if isinstance(x, exp.Null):
        return "opaque:null"
    return smt._kind_of_type(x.type)


# ---------------------------------------------------------------------------------------------
# aggregates of grouping keys
# ---------------------------------------------------------------------------------------------

def key_aggregates(q: Block) -> Block:
    """In a grouped block, ``MIN(k)``, ``MAX(k)`` (DISTINCT or not), ``SUM(DISTINCT k)`` of a plain
    grouping column ``k`` is ``k``: every row of a group holds the same ``k`` (exact kinds only,
    where GROUP BY equality is equality); NULL stays NULL."""
    if not q.group:
        return q
    keys = {(g.table, g.name.lower()) for g in q.group if isinstance(g, exp.Column) and _col_kind(q, g) in _EXACT}
    if not keys:
        return q
    changed = False

    def sub(n: exp.Expression) -> exp.Expression:
        nonlocal changed
        if isinstance(n, exp.Min | exp.Max | exp.Sum) and not isinstance(n.parent, exp.Filter | exp.Window):
            arg = n.this
            distinct = isinstance(arg, exp.Distinct)
            if distinct and len(arg.expressions) == 1:
                arg = arg.expressions[0]
            if isinstance(n, exp.Sum) and not (distinct and _col_kind(q, arg) in ("int", "real")):
                return n  # SUM(k) multiplies by the group size; SUM of a non-number is an error
            if isinstance(arg, exp.Column) and (arg.table, arg.name.lower()) in keys and not n.expressions:
                changed = True
                return arg.copy()
        return n

    outputs = [o.copy().transform(sub, copy=False) for o in q.outputs]
    having = q.having.copy().transform(sub, copy=False) if q.having is not None else None
    if not changed:
        return q
    return Block(q.units, q.ljs, q.conds, q.group, having, outputs, q.out_kinds)


# ---------------------------------------------------------------------------------------------
# INTERSECT written as a count over UNION ALL
# ---------------------------------------------------------------------------------------------

def intersect_by_count(q: Block, catalog: Catalog) -> Query | None:
    """``SELECT c.. FROM (B1 UNION ALL .. UNION ALL Bn) t GROUP BY c.. HAVING COUNT(*) = n`` where
    every Bi returns distinct rows on the columns c.. (grouped by exactly those expressions, or
    its outputs determine a key of each of its tables: :func:`duplicate_free`) is
    ``B1 INTERSECT .. INTERSECT Bn`` (set semantics, NULLs equal in both GROUP BY and INTERSECT)."""
    if q.ljs or q.conds or len(q.units) != 1 or not q.group or q.having is None:
        return None
    u = q.units[0]
    d = smt._unwrap(u.derived) if u.derived is not None else None
    if not (isinstance(d, SetOp) and d.kind == "union" and not d.distinct and len(d.children) >= 2):
        return None
    h = q.having
    if not isinstance(h, exp.EQ):
        return None
    cnt, lit = (h.this, h.expression) if isinstance(h.this, exp.Count) else (h.expression, h.this)
    if not (isinstance(cnt, exp.Count) and isinstance(cnt.this, exp.Star) and isinstance(lit, exp.Literal)
            and lit.is_int and int(lit.this) == len(d.children)):
        return None
    names = [n for n, _, _ in u.columns]
    if not all(isinstance(o, exp.Column) and o.table == u.alias and o.name.lower() in names for o in q.outputs):
        return None
    out_names = [o.name.lower() for o in q.outputs]
    keys = {g.name.lower() if isinstance(g, exp.Column) and g.table == u.alias else None for g in q.group}
    if keys != set(out_names) or len(set(out_names)) != len(out_names):
        return None
    kids: list[Query] = []
    for c in d.children:
        b = smt._unwrap(c)
        if not isinstance(b, Block) or b.having is not None or len(b.outputs) != len(names):
            return None
        sel = [b.outputs[names.index(n)].copy() for n in out_names]
        kinds = [b.out_kinds[names.index(n)] for n in out_names]
        if any(_has_agg(o) for o in sel):
            return None
        if b.group is None:
            if duplicate_free(Block(b.units, b.ljs, b.conds, None, None, sel, kinds), catalog) is None:
                return None
        elif {_t(g) for g in b.group} != {_t(o) for o in sel}:
            return None
        kids.append(Block(b.units, b.ljs, b.conds, b.group, None, sel, kinds))
    return SetOp("intersect", True, kids, q.out_kinds)


# ---------------------------------------------------------------------------------------------
# set semantics under DISTINCT, duplicate-free blocks
# ---------------------------------------------------------------------------------------------

def _duplicate_insensitive(q: Block) -> bool:
    """Every aggregate of the grouped block only sees the set of its input rows (MIN, MAX, BOOL_AND,
    BOOL_OR, BIT_AND, BIT_OR, and DISTINCT ones), and a GROUP BY without aggregates keeps one row
    per set element: duplicates of input rows change nothing."""
    for e in [*q.outputs, *([q.having] if q.having is not None else [])]:
        for a in e.find_all(exp.AggFunc):
            if isinstance(a.parent, exp.Filter | exp.Window) or a.expressions:
                return False
            if not (isinstance(a, _IDEMPOTENT) or isinstance(a, exp.Count | exp.Sum | exp.Avg)
                    and isinstance(a.this, exp.Distinct)):
                return False
    return True


def set_semantics(q: Block, catalog: Catalog) -> Block | None:
    """Under a block that removes duplicates (GROUP BY without aggregates, or with aggregates that
    see only the set of rows: :func:`_duplicate_insensitive`), a derived table's own duplicate
    removal does not matter:
    ``DISTINCT(x)`` and ``x`` hold the same set of rows, and inner joins, LEFT JOINs and filters
    of sets give the same set.  A LEFT JOINed table whose columns nothing else reads is dropped:
    every left row appears at least once, with the same values in the columns read."""
    if q.group is None or not _duplicate_insensitive(q):
        return None
    changed = False

    def dedup(u: Unit) -> Unit:
        nonlocal changed
        d = smt._unwrap(u.derived) if u.derived is not None else None
        new: Query | None = None
        if isinstance(d, SetOp) and d.kind == "distinct":
            new = d.children[0]
        elif isinstance(d, Block) and _group_only(d) and not any(o.find(exp.Select) for o in d.outputs):
            new = Block(d.units, d.ljs, d.conds, None, None, d.outputs, d.out_kinds)
        elif isinstance(d, SetOp) and d.kind == "union" and not d.distinct:
            s = _set_child(d, catalog)
            if isinstance(s, SetOp) and any(x is not smt._unwrap(y) for x, y in zip(s.children, d.children,
                                                                                     strict=True)):
                new = s
        if new is None:
            return u
        changed = True
        return Unit(u.alias, f"derived:{id(new)}", u.columns, new)

    units = [dedup(u) for u in q.units]
    ljs = [(dedup(u), on) for u, on in q.ljs]
    kept: list[tuple[Unit, exp.Expression]] = []
    for k, (u, on) in enumerate(ljs):
        others = [*q.outputs, *q.group, *q.conds, *([q.having] if q.having is not None else []),
                  *(o for _, o in ljs[k + 1:])]
        if any(c.table == u.alias for e in others for c in e.find_all(exp.Column)) or any(
                e.find(exp.Select) for e in others):
            kept.append((u, on))
        else:
            changed = True
    if not changed:
        return None
    return Block(units, kept, q.conds, q.group, q.having, q.outputs, q.out_kinds)


def keyed_aggregates(q: Block, catalog: Catalog) -> Block | None:
    """GROUP BY over one table instance whose grouping columns include a key of it puts every row
    in a group of its own: each aggregate sees one row (``SUM/MIN/MAX/BIT_AND/BIT_OR/BOOL_AND/BOOL_OR/
    ANY_VALUE(x)`` = ``x``, ``COUNT(*)`` =
    1, ``COUNT(x)`` = 1 unless ``x`` is NULL) and HAVING filters rows.  Not for a scalar aggregate
    (an empty input still answers a row) nor for aggregates not listed here."""
    if not q.group or len(q.units) != 1 or q.ljs:
        return None
    u = q.units[0]
    key = _unit_key(u, catalog)
    cols = {g.name.lower() for g in q.group if isinstance(g, exp.Column) and g.table == u.alias}
    if not key or not all(k in cols for k in key):
        return None
    exprs = [*q.outputs, *([q.having] if q.having is not None else [])]
    if not any(_has_agg(e) for e in exprs):
        return None
    failed = []

    def sub(n: exp.Expression) -> exp.Expression:
        if not isinstance(n, exp.AggFunc):
            return n
        if isinstance(n.parent, exp.Filter | exp.Window) or n.expressions:
            failed.append(n)
            return n
        arg = n.this
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1:
                failed.append(n)
                return n
            arg = arg.expressions[0]
        if isinstance(n, exp.Count):
            if arg is None or isinstance(arg, exp.Star):
                return exp.Literal.number(1)
            return exp.Case(ifs=[exp.If(this=exp.Is(this=arg.copy(), expression=exp.Null()),
                                        true=exp.Literal.number(0))], default=exp.Literal.number(1))
        if (isinstance(n, exp.Sum | exp.Min | exp.Max | exp.BitwiseAndAgg | exp.BitwiseOrAgg | exp.LogicalAnd
                       | exp.LogicalOr | exp.AnyValue) and arg is not None and not isinstance(arg, exp.Star)):
            return arg.copy()
        failed.append(n)
        return n

    outputs = [o.copy().transform(sub, copy=False) for o in q.outputs]
    having = q.having.copy().transform(sub, copy=False) if q.having is not None else None
    if failed:
        return None
    return Block(q.units, q.ljs, [*q.conds, *([having] if having is not None else [])], None, None, outputs,
                 q.out_kinds)


def duplicate_free(q: Block, catalog: Catalog) -> Block | None:
    """A plain block (no GROUP BY) whose output columns determine a key of every inner table
    instance (directly, or through ``a = b`` conjuncts of the WHERE clause, which hold only for
    equal non-NULL values) returns each row once: it equals its DISTINCT (given as GROUP BY of
    its outputs).  Keys: primary keys, and the grouping columns of a grouped derived table.  A
    LEFT JOINed instance must match at most one row per left row: its key equated, in its ON
    clause, to columns of inner instances (then each inner combination gives one row)."""
    if q.group is not None or not q.units or any(o.find(exp.Select) for o in q.outputs):
        return None
    inner_alias = {u.alias: u for u in q.units}
    for lu, on in q.ljs:
        lkey = _unit_key(lu, catalog)
        if not lkey:
            return None
        bound = set()
        for c in _conjuncts([on]):
            if isinstance(c, exp.EQ) and isinstance(c.this, exp.Column) and isinstance(c.expression, exp.Column):
                a, b = c.this, c.expression
                if a.table == lu.alias:
                    a, b = b, a
                ua = inner_alias.get(a.table)
                if (b.table == lu.alias and ua is not None and _kind_ok(ua, a.name.lower())
                        and _kind_ok(lu, b.name.lower())):
                    bound.add(b.name.lower())
        if not all(k in bound for k in lkey):
            return None
    det: set[tuple[str, str]] = {(o.table, o.name.lower()) for o in q.outputs if isinstance(o, exp.Column)}
    eqs = [(c.this, c.expression) for c in _conjuncts(q.conds) if isinstance(c, exp.EQ)
           and isinstance(c.this, exp.Column) and isinstance(c.expression, exp.Column)]
    by_alias = {u.alias: u for u in q.units}
    changed = True
    while changed:
        changed = False
        for a, b in eqs:
            ka, kb = (a.table, a.name.lower()), (b.table, b.name.lower())
            ua, ub = by_alias.get(a.table), by_alias.get(b.table)
            if ua is None or ub is None or not _kind_ok(ua, ka[1]) or not _kind_ok(ub, kb[1]):
                continue
            if (ka in det) != (kb in det):
                det |= {ka, kb}
                changed = True
    for u in q.units:
        key = _unit_key(u, catalog)
        if key is None or not all((u.alias, k) in det for k in key):
            return None
    return Block(q.units, q.ljs, q.conds, [o.copy() for o in q.outputs], None, q.outputs, q.out_kinds)


# ---------------------------------------------------------------------------------------------
# GROUP BY pulled above a join with a unique match
# ---------------------------------------------------------------------------------------------

def _grouped_with_aggs(u: Unit) -> bool:
    d = smt._unwrap(u.derived) if u.derived is not None else None
    return isinstance(d, Block) and bool(d.group) and any(_has_agg(o) for o in d.outputs)


def lift_over_join(q: Block, catalog: Catalog) -> Block | None:
    """``SELECT f(g.*, r.*) FROM (SELECT k.., aggs FROM .. GROUP BY k..) g, r WHERE g.k = r.key AND p``
    = ``SELECT f(..) FROM .., r WHERE r.key = k AND p' GROUP BY k.., r.cols HAVING p''``.

    Preconditions (checked): ``g`` is grouped by a non-empty key list (a scalar aggregate answers
    a row even for an empty input) and has no LEFT JOIN; there is exactly one other unit ``r``,
    whose key (primary key, or grouping columns of a grouped derived table) is equated column by
    column to grouping outputs of ``g`` of exact kinds: so each group meets at most one row of
    ``r``, every row of the group the same one, and the aggregates see the same rows.  Conjuncts
    that read aggregates of ``g`` become HAVING; the columns of ``r`` read are added to the
    grouping keys (constant within a group, so the groups stay the same)."""
    if q.group is not None or q.ljs or len(q.units) != 2 or q.having is not None:
        return None
    grouped = [i for i, u in enumerate(q.units) if _grouped_with_aggs(u)]
    if len(grouped) != 1:
        return None
    gu, ru = q.units[grouped[0]], q.units[1 - grouped[0]]
    g = smt._unwrap(gu.derived)
    if not isinstance(g, Block) or not g.group or g.ljs:
        return None
    if ru.alias in {x.alias for x in g.units} or any(e.find(exp.Select) for e in [*_block_exprs(g), *g.conds]):
        return None  # one scope after the merge: no alias may be captured
    names = [n for n, _, _ in gu.columns]
    if len(names) != len(g.outputs) or len(set(names)) != len(names):
        return None
    gkeys = {_t(x) for x in g.group}
    key_cols = {n for n, o in zip(names, g.outputs, strict=True) if _t(o) in gkeys and not _has_agg(o)}
    rkey = _unit_key(ru, catalog)
    if not rkey:
        return None
    matched: set[str] = set()
    for c in _conjuncts(q.conds):
        if not (isinstance(c, exp.EQ) and isinstance(c.this, exp.Column) and isinstance(c.expression, exp.Column)):
            continue
        a, b = c.this, c.expression
        if a.table == ru.alias:
            a, b = b, a
        if (a.table == gu.alias and b.table == ru.alias and a.name.lower() in key_cols and b.name.lower() in rkey
                and _kind_ok(gu, a.name.lower()) and _kind_ok(ru, b.name.lower())):
            matched.add(b.name.lower())
    if set(rkey) != matched:
        return None
    if any(e.find(exp.Select) for e in [*q.conds, *q.outputs]):
        return None
    # a grouping column read row by row: every row of a group must hold the same value
    if any(col.table == gu.alias and col.name.lower() in key_cols and not _kind_ok(gu, col.name.lower())
           for e in [*q.conds, *q.outputs] for col in e.find_all(exp.Column)):
        return None
    repl = dict(zip(names, g.outputs, strict=True))
    agg_names = {n for n, o in zip(names, g.outputs, strict=True) if _has_agg(o)}
    where: list[exp.Expression] = []
    having: list[exp.Expression] = [g.having] if g.having is not None else []
    for c in _conjuncts(q.conds):
        reads_agg = any(col.table == gu.alias and col.name.lower() in agg_names for col in c.find_all(exp.Column))
        (having if reads_agg else where).append(smt._substitute(c, gu.alias, repl))
    outputs = [smt._substitute(o, gu.alias, repl) for o in q.outputs]
    rcols = sorted({col.name.lower() for e in [*outputs, *having] for col in e.find_all(exp.Column)
                    if col.table == ru.alias})
    group = [x.copy() for x in g.group] + [exp.column(n, table=ru.alias, quoted=True) for n in rcols]
    h: Any = exp.and_(*having) if having else None
    return Block([*g.units, ru], [], [*g.conds, *where], group, h, outputs, q.out_kinds)


# ---------------------------------------------------------------------------------------------
# filters known to hold on a grouped derived table's rows
# ---------------------------------------------------------------------------------------------

def key_invariants(q: Block) -> Block:
    """A WHERE conjunct of a grouped derived table that reads only plain grouping columns (compared
    with literals or each other) holds, on every row it returns, for the output columns that carry
    those keys: adding it outside is adding a conjunct that is always TRUE."""
    extra: list[exp.Expression] = []
    have = {_t(c) for c in _conjuncts(q.conds)}
    for u in q.units:
        g = smt._unwrap(u.derived) if u.derived is not None else None
        if not isinstance(g, Block) or not g.group or g.ljs:
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs):
            continue
        keyout = {_t(o): n for n, o in zip(names, g.outputs, strict=True)
                  if isinstance(o, exp.Column) and _t(o) in {_t(x) for x in g.group}}
        for c in _conjuncts(g.conds):
            nodes = list(c.walk())
            cols = [n for n in nodes if isinstance(n, exp.Column)]
            if not cols or not all(isinstance(n, smt._KEY_ONLY) for n in nodes):
                continue
            if not all(_t(col) in keyout for col in cols) or any(isinstance(n, exp.In) and n.args.get("query")
                                                                 for n in nodes):
                continue
            if not all(_col_kind(g, col) in _EXACT for col in cols):
                continue

            def ren(n: exp.Expression, keyout: dict[str, str] = keyout, alias: str = u.alias) -> exp.Expression:
                if isinstance(n, exp.Column) and _t(n) in keyout:
                    return exp.column(keyout[_t(n)], table=alias, quoted=True)
                return n

            new = c.copy().transform(ren, copy=False)
            if _t(new) not in have:
                have.add(_t(new))
                extra.append(new)
    if not extra:
        return q
    return Block(q.units, q.ljs, [*q.conds, *extra], q.group, q.having, q.outputs, q.out_kinds)
