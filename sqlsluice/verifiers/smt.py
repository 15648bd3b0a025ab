"""Tier 2: SMT proof with z3 over a fragment modelled soundly under bag semantics.

Fragment: query blocks ``SELECT [DISTINCT] ... FROM units [LEFT JOIN unit ON ...]* WHERE ...
[GROUP BY ... HAVING ...]`` where a unit is a base table or a derived table that is itself proved
equivalent to its counterpart; UNION/INTERSECT/EXCEPT [ALL] of such queries; expressions with
three-valued logic (NULL flags on every value), CASE/COALESCE/IN lists/BETWEEN, integer and decimal
arithmetic, other deterministic functions as uninterpreted functions, and EXISTS/IN/scalar
subqueries as uninterpreted functions of their correlated values (same subquery text => same
function).  NOT NULL constraints are assumed.

The proof for two blocks picks a bijection ``s`` between their table instances (same table for
both) and shows, for every valuation of one symbolic tuple per instance:
  the filters agree (both TRUE or both not TRUE), the outputs agree (NULL-safe) where the filter
  holds; for grouped blocks, the grouping keys induce the same partition (two-copy check), the
  aggregates take the same argument on every row and the group outputs / HAVING agree.
A bijection of instances maps each row combination of one query to exactly one of the other, so
multiplicities are preserved (bag semantics).  Anything outside the fragment raises
:class:`Outside` and the tier reports it instead of guessing.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import z3
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import smt_extend
from sqlsluice.verifiers.canonical import CanonicalError, canonical_sql, optimized, outer_join_hazard
from sqlsluice.verifiers.flatten import inside


class Outside(Exception):
    """The queries use something this tier does not model soundly."""


@dataclass
class SMTResult:
    proved: bool
    reason: str


# ---------------------------------------------------------------------------------------------
# values and three-valued predicates
# ---------------------------------------------------------------------------------------------

_SORTS = {"int": z3.IntSort, "real": z3.RealSort, "float": z3.RealSort, "str": z3.StringSort,
          "bool": z3.BoolSort, "date": z3.IntSort, "ts": z3.IntSort, "time": z3.IntSort}
_OPAQUE = z3.DeclareSort("Opaque")


def _sort(kind: str) -> z3.SortRef:
    f = _SORTS.get(kind)
    return f() if f else _OPAQUE


@dataclass
class Val:
    v: Any  # z3 expression (None for an untyped NULL literal)
    n: Any  # z3 Bool: is NULL
    kind: str  # int real float str bool date ts time null opaque:<type>
    lit: str | None = None  # raw text of a string literal (for coercion to dates)
    naive: bool = False  # a "ts" known to be a TIMESTAMP without time zone (a date shifted by an interval)


@dataclass
class Pred:
    t: Any  # TRUE
    n: Any  # UNKNOWN


TRUE = Pred(z3.BoolVal(True), z3.BoolVal(False))


def _kind_of_type(t: str | exp.DataType | None) -> str:
    if t is None:
        return "opaque:unknown"
    s = t.sql("duckdb").upper() if isinstance(t, exp.DataType) else str(t).upper()
    if s in ("UNKNOWN", "NULL", ""):
        return "opaque:unknown"
    if "INTERVAL" in s:
        return "opaque:interval"
    if "[]" in s or "STRUCT" in s or "MAP" in s or "LIST" in s:
        return "opaque:" + s
    if "INT" in s:
        return "int"
    if "DECIMAL" in s or "NUMERIC" in s:
        return "real"
    if "DOUBLE" in s or "FLOAT" in s or "REAL" in s:
        return "float"
    if "BOOL" in s:
        return "bool"
    if "TIMESTAMP" in s or "DATETIME" in s:
        return "ts"
    if "DATE" in s:
        return "date"
    if "TIME" in s:
        return "time"
    if "CHAR" in s or "TEXT" in s or "STRING" in s:
        return "str"
    return "opaque:" + s


_NONDETERMINISTIC = {"rand", "random", "uuid", "gen_random_uuid", "now", "current_timestamp", "nextval",
                     "setseed", "current_time", "current_date", "localtimestamp", "localtime", "currval"}
_AGGS: tuple[type[exp.Expression], ...] = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg, exp.Stddev,
                                           exp.StddevPop, exp.StddevSamp, exp.Variance, exp.VariancePop,
                                           exp.LogicalAnd, exp.LogicalOr)


# ---------------------------------------------------------------------------------------------
# query model
# ---------------------------------------------------------------------------------------------

@dataclass
class Unit:
    alias: str
    type_key: str  # "table:<name>" or "derived:<n>"
    columns: list[tuple[str, str, bool]]  # name, kind, nullable
    derived: Any = None  # the Query of a derived table
    source: Any = None  # a derived table's body as SQL (outer CTEs inlined), where known


@dataclass
class Block:
    units: list[Unit]
    ljs: list[tuple[Unit, exp.Expression]]
    conds: list[exp.Expression]
    group: list[exp.Expression] | None
    having: exp.Expression | None
    outputs: list[exp.Expression]
    out_kinds: list[str] = field(default_factory=list)


@dataclass
class SetOp:
    kind: str  # union intersect except
    distinct: bool
    children: list[Any]
    out_kinds: list[str] = field(default_factory=list)


Query = Block | SetOp


class Builder:
    """sqlglot (optimized, qualified) tree -> Query."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.n_derived = 0

    def query(self, e: exp.Expression, ctes: dict[str, exp.Expression] | None = None) -> Query:
        ctes = dict(ctes or {})
        w = e.args.get("with_") or e.args.get("with")
        if w is not None:
            if w.args.get("recursive"):
                raise Outside("recursive CTE")
            for cte in w.expressions:
                ctes[cte.alias_or_name] = cte.this
        if e.args.get("limit") or e.args.get("offset") or e.args.get("fetch"):
            raise Outside("LIMIT/OFFSET")
        if isinstance(e, exp.Subquery):
            return self.query(e.this, ctes)
        if isinstance(e, exp.Union | exp.Intersect | exp.Except):
            kind = {exp.Union: "union", exp.Intersect: "intersect", exp.Except: "except"}[type(e)]
            distinct = bool(e.args.get("distinct"))
            if e.args.get("by_name"):
                raise Outside("UNION BY NAME")
            kids = [self.query(e.this, ctes), self.query(e.expression, ctes)]
            flat: list[Query] = []
            for k in kids:
                if kind != "except" and isinstance(k, SetOp) and k.kind == kind and k.distinct == distinct:
                    flat.extend(k.children)
                else:
                    flat.append(k)
            if kind == "except":
                flat = kids
            return SetOp(kind, distinct, flat, kids[0].out_kinds)
        if isinstance(e, exp.Select):
            return self.block(e, ctes)
        raise Outside(f"query node {type(e).__name__}")

    def block(self, s: exp.Select, ctes: dict[str, exp.Expression]) -> Query:
        for bad in ("qualify", "windows", "laterals", "pivots", "match", "connect", "prewhere", "sample",
                    "distribute", "sort", "cluster"):
            if s.args.get(bad):
                raise Outside(bad.upper())
        if s.find(exp.Window):
            raise Outside("window function")
        frm = s.args.get("from_") or s.args.get("from")
        units: list[Unit] = []
        ljs: list[tuple[Unit, exp.Expression]] = []
        conds: list[exp.Expression] = []
        if frm is not None:
            if len(frm.expressions) > 0:
                raise Outside("comma list in FROM")
            units.append(self.unit(frm.this, ctes))
        for j in s.args.get("joins") or []:
            side = (j.args.get("side") or "").upper()
            kind = (j.args.get("kind") or "").upper()
            if j.args.get("using") or j.args.get("method") or kind not in ("", "INNER", "CROSS", "OUTER"):
                raise Outside(f"join {side} {kind}".strip())
            on = j.args.get("on")
            src = j.this
            if isinstance(src, exp.Table) and src.name in ctes and not src.args.get("joins"):
                src = exp.Subquery(this=ctes[src.name].copy(), alias=exp.TableAlias(this=exp.to_identifier(src.alias_or_name)))
            ex = _exists_table(src) if side == "" else None
            if ex is not None and not _referenced(s, j.this.alias_or_name, j.this):
                conds.append(ex)
                if on is not None:
                    conds.append(on)
                continue
            u = self.unit(j.this, ctes)
            if side == "":
                units.append(u)
                if on is not None:
                    conds.append(on)
            elif side == "LEFT":
                if on is None:
                    raise Outside("LEFT JOIN without ON")
                ljs.append((u, on))
            elif side == "RIGHT" and on is not None and len(units) == 1 and not ljs and not conds:
                # a RIGHT JOIN b ON c = b LEFT JOIN a ON c (outputs name their columns, order is kept)
                ljs.append((units[0], on))
                units = [u]
            else:
                raise Outside(f"{side} JOIN")
            if ljs and side == "":
                # an inner unit after a LEFT JOIN joins the LEFT JOIN's result: still a filter on the
                # cross product, because LEFT JOIN preserves every row of its left input.
                pass
        where = s.args.get("where")
        if where is not None:
            w = where.this
            parts: list[Any] = list(w.flatten()) if isinstance(w, exp.And) else [w]
            for c in parts:
                semi = self._semijoin(c, ctes) if not s.args.get("group") else None
                if semi is None:
                    conds.append(c)
                else:
                    units.append(semi[0])
                    conds.extend(semi[1])
        group = s.args.get("group")
        gexprs: list[exp.Expression] | None = None
        if group is not None:
            if group.args.get("rollup") or group.args.get("cube") or group.args.get("grouping_sets"):
                raise Outside("ROLLUP/CUBE/GROUPING SETS")
            gexprs = list(group.expressions)
        outputs = [p.this if isinstance(p, exp.Alias) else p for p in s.expressions]
        if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
               for p in outputs):
            raise Outside("unexpanded *")
        has_agg = any(o.find(exp.AggFunc) for o in outputs) or (s.args.get("having") is not None)
        if gexprs is None and has_agg:
            gexprs = []
        if s.args.get("distinct"):
            if s.args["distinct"].args.get("on"):
                raise Outside("DISTINCT ON")
            if gexprs is not None:
                raise Outside("DISTINCT with GROUP BY")
            gexprs = [o.copy() for o in outputs]
        having = s.args.get("having")
        kinds = [_kind_of_type(o.type) for o in outputs]
        if ctes:  # a subquery that reads a CTE of the outer query reads its definition
            conds = [inline_ctes(c, ctes) for c in conds]
            outputs = [inline_ctes(o, ctes) for o in outputs]
            ljs = [(u, inline_ctes(on, ctes)) for u, on in ljs]
            if having is not None:
                having = exp.Having(this=inline_ctes(having.this, ctes))
        return Block(units, ljs, conds, gexprs, having.this if having is not None else None, outputs, kinds)

    def _semijoin(self, c: exp.Expression, ctes: dict[str, exp.Expression]) -> tuple[Unit, list[exp.Expression]] | None:
        """A WHERE conjunct ``x IN (SELECT y FROM s WHERE p)`` or ``EXISTS (SELECT .. FROM s WHERE
        s.a = o.b AND p)`` is TRUE iff some row of s matches: the same as joining the DISTINCT
        matching keys (each outer row meets at most one).  Only top-level conjuncts (only TRUE
        matters there), only equality correlations, ``p`` free of outer references."""
        if isinstance(c, exp.In) and c.args.get("query") is not None:
            sub = c.args["query"]
            sel = sub.this if isinstance(sub, exp.Subquery) else sub
            if not isinstance(sel, exp.Select) or len(sel.expressions) != 1:
                return None
            y = sel.expressions[0]
            pairs = [(y.this if isinstance(y, exp.Alias) else y, c.this)]
        elif isinstance(c, exp.Exists) and isinstance(c.this, exp.Select):
            sel = c.this
            pairs = []
        else:
            return None
        if any(sel.args.get(k) for k in ("group", "having", "limit", "offset", "fetch", "qualify", "with_", "with",
                                           "laterals", "windows")):
            return None
        if any(p.find(exp.AggFunc, exp.Window) for p in sel.expressions):
            return None
        frm = sel.args.get("from_") or sel.args.get("from")
        if frm is None:
            return None
        inner = {t.alias_or_name for t in sel.find_all(exp.Table)} | {a.name for a in sel.find_all(exp.TableAlias)}

        def outer_free(e: exp.Expression) -> bool:
            return all(col.table in inner for col in e.find_all(exp.Column))

        def inner_free(e: exp.Expression) -> bool:
            return all(col.table and col.table not in inner for col in e.find_all(exp.Column))

        rest = []
        w = sel.args.get("where")
        sub_parts: list[Any] = (list(w.this.flatten()) if w is not None and isinstance(w.this, exp.And) else
                                [w.this] if w is not None else [])
        for part in sub_parts:
            if outer_free(part):
                rest.append(part)
            elif isinstance(part, exp.EQ) and outer_free(part.this) and inner_free(part.expression):
                pairs.append((part.this, part.expression))
            elif isinstance(part, exp.EQ) and outer_free(part.expression) and inner_free(part.this):
                pairs.append((part.expression, part.this))
            else:
                return None
        if not pairs or not all(outer_free(i) and inner_free(o) for i, o in pairs):
            return None
        if any(o.find(exp.Select) or i.find(exp.Select) for i, o in pairs):
            return None
        body = sel.copy()
        body.set("expressions", [exp.alias_(i.copy(), f"_k{n}") for n, (i, _) in enumerate(pairs)])
        body.set("where", exp.Where(this=exp.and_(*[r.copy() for r in rest])) if rest else None)
        body.set("distinct", exp.Distinct())
        body.set("order", None)
        alias = f"_semi{next(_FRESH)}"
        u = self._derived(alias, body, ctes)
        return u, [exp.EQ(this=o.copy(), expression=exp.column(f"_k{n}", table=alias)) for n, (_, o) in enumerate(pairs)]

    def unit(self, src: exp.Expression, ctes: dict[str, exp.Expression]) -> Unit:
        if isinstance(src, exp.Table):
            if src.args.get("joins"):
                raise Outside("parenthesised join")
            alias = src.alias_or_name
            if src.name in ctes:
                return self._derived(alias, ctes[src.name], ctes)
            if not isinstance(src.this, exp.Identifier):
                raise Outside("table function")
            t = self.catalog.table(src.name)
            if t is None:
                raise Outside(f"unknown table {src.name}")
            return Unit(alias, "table:" + t.name.lower(), [(c.name.lower(), _kind_of_type(c.type), c.nullable)
                                                            for c in t.columns])
        if isinstance(src, exp.Subquery):
            if src.args.get("joins"):
                raise Outside("parenthesised join")
            return self._derived(src.alias_or_name, src.this, ctes)
        if isinstance(src, exp.Values):
            return self._values(src)
        raise Outside(f"FROM {type(src).__name__}")

    def _values(self, v: exp.Values) -> Unit:
        """``(VALUES (..), (..)) AS t(c1, ..)``: a UNION ALL of one-row SELECTs of constants."""
        alias = v.args.get("alias")
        if alias is None or not v.expressions:
            raise Outside("VALUES without alias")
        rows = [r.expressions if isinstance(r, exp.Tuple) else [r] for r in v.expressions]
        width = len(rows[0])
        names = [c.name.lower() for c in alias.columns] or [f"col{i}" for i in range(width)]
        if any(len(r) != width for r in rows) or len(names) != width:
            raise Outside("ragged VALUES")
        kinds = []
        for i in range(width):
            ks = {_literal_kind(r[i]) for r in rows} - {"null"}
            if len(ks) > 1 and ks <= {"int", "real"}:
                ks = {"real"}
            if len(ks) > 1:
                raise Outside("VALUES column of mixed types")
            kinds.append(ks.pop() if ks else "opaque:null")
        blocks: list[Query] = [Block([], [], [], None, None, [x.copy() for x in r], kinds) for r in rows]
        q: Query = blocks[0] if len(blocks) == 1 else SetOp("union", False, blocks, kinds)
        self.n_derived += 1
        return Unit(alias.name, f"derived:{id(q)}", [(n, k, True) for n, k in zip(names, kinds, strict=True)],
                    derived=q)

    def _derived(self, alias: str, body: exp.Expression, ctes: dict[str, exp.Expression]) -> Unit:
        q = self.query(body, ctes)
        names = smt_extend.first_wins(body.named_selects if isinstance(body, exp.Query) else [])
        if len(names) != len(q.out_kinds):
            raise Outside("derived table columns")
        self.n_derived += 1
        return Unit(alias, f"derived:{id(q)}", [(n.lower(), k, True) for n, k in zip(names, q.out_kinds, strict=True)],
                    derived=q, source=inline_ctes(body, ctes))


def inline_ctes(e: exp.Expression, ctes: dict[str, exp.Expression], depth: int = 0) -> exp.Expression:
    """``e`` with every table reference to one of ``ctes`` (that ``e`` does not define itself)
    replaced by the CTE's body as a derived table of the same alias (non-recursive CTEs only:
    the caller refuses RECURSIVE)."""
    if not ctes or depth > 20 or not any(isinstance(t, exp.Table) and t.name in ctes for t in e.find_all(exp.Table)):
        return e
    own = {c.alias_or_name for c in e.find_all(exp.CTE)}

    def sub(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Table) and n.name in ctes and n.name not in own and not n.args.get("db"):
            body = inline_ctes(ctes[n.name].copy(), {k: v for k, v in ctes.items() if k != n.name}, depth + 1)
            return exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(n.alias_or_name, quoted=True)))
        return n

    return e.copy().transform(sub, copy=False)


def _referenced(s: exp.Select, alias: str, own: exp.Expression) -> bool:
    for c in s.find_all(exp.Column):
        if c.table == alias and not inside(c, own):
            return True
    return False


def _exists_body(sub: exp.Expression) -> exp.Expression:
    """EXISTS only asks whether a row exists: a plain SELECT's list does not matter."""
    if (isinstance(sub, exp.Select) and not sub.args.get("group") and not sub.args.get("having")
            and not sub.args.get("limit") and not sub.args.get("offset") and not sub.args.get("fetch")
            and not sub.args.get("distinct") and not any(p.find(exp.AggFunc, exp.Window) for p in sub.expressions)):
        sub = sub.copy()
        sub.set("expressions", [exp.Literal.number(1)])
        sub.set("order", None)
    return sub


def _exists_table(src: exp.Expression) -> exp.Expression | None:
    """``(SELECT TRUE AS i FROM .. WHERE .. GROUP BY TRUE) AS t``: one row if the inner query has a
    row, none otherwise: cross-joining it is filtering by ``EXISTS (SELECT 1 FROM .. WHERE ..)``."""
    if not isinstance(src, exp.Subquery) or not isinstance(src.this, exp.Select):
        return None
    sel = src.this
    group = sel.args.get("group")
    if group is None or not group.expressions or sel.args.get("having") or sel.args.get("with_") or sel.args.get("with"):
        return None
    const = (exp.Literal, exp.Boolean, exp.Null)
    if not all(isinstance(g, const) for g in group.expressions):
        return None
    if not all(isinstance(p.this if isinstance(p, exp.Alias) else p, const) for p in sel.expressions):
        return None
    if sel.args.get("limit") or sel.args.get("offset") or sel.args.get("distinct"):
        return None
    body = sel.copy()
    body.set("group", None)
    body.set("expressions", [exp.Literal.number(1)])
    return exp.Exists(this=body)


def _literal_kind(e: exp.Expression) -> str:
    if isinstance(e, exp.Null):
        return "null"
    if isinstance(e, exp.Boolean):
        return "bool"
    if isinstance(e, exp.Literal):
        if e.is_string:
            return "str"
        return "real" if ("." in e.this or "e" in e.this.lower()) else "int"
    if isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal) and not e.this.is_string:
        return _literal_kind(e.this)
    raise Outside("non-literal in VALUES")


# ---------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------

class Encoder:
    def __init__(self, binary_strings: bool = False) -> None:
        self.binary_strings = binary_strings
        self.catalog: Catalog | None = None  # for canonical subquery names (set by the Prover)
        self.deadline: float | None = None  # the proof's deadline (set by the Prover)
        self.funcs: dict[tuple[Any, ...], z3.FuncDeclRef] = {}
        self.counter = itertools.count()

    def fresh(self, name: str, kind: str) -> Val:
        i = next(self.counter)
        return Val(z3.Const(f"{name}!{i}", _sort(kind)), z3.Bool(f"{name}!{i}!null"), kind)

    def func(self, key: tuple[Any, ...], args: list[Any], ret: z3.SortRef) -> Any:
        sig = (key, tuple(a.sort() for a in args), ret)
        f = self.funcs.get(sig)
        if f is None:
            f = z3.Function(f"f{len(self.funcs)}", *[a.sort() for a in args], ret)
            self.funcs[sig] = f
        return f(*args) if args else f()


Env = dict[str, dict[str, Val]]  # alias -> column -> value
# canonical names of subqueries: (catalog id, subquery text) -> name (see Scope._canonical_key)
_CANON_KEYS: dict[tuple[int, str], tuple[str, list[int]] | None] = {}


class Scope:
    """Evaluates expressions of one side in a symbolic environment."""

    def __init__(self, enc: Encoder, env: Env, aggs: dict[int, Val] | None = None,
                 tables: frozenset[str] = frozenset()) -> None:
        self.enc = enc
        self.env = env
        self.aggs = aggs or {}
        self.tables = tables  # base table names: a subquery may read only these (or its own CTEs)

    # -- values --
    def val(self, e: exp.Expression) -> Val:
        if id(e) in self.aggs:
            return self.aggs[id(e)]
        if isinstance(e, exp.Paren):
            return self.val(e.this)
        if isinstance(e, exp.Column):
            cols = self.env.get(e.table)
            if cols is None or e.name.lower() not in cols:
                raise Outside(f"unresolved column {e.sql()}")
            return cols[e.name.lower()]
        if isinstance(e, exp.Null):
            return Val(None, z3.BoolVal(True), "null")
        if isinstance(e, exp.Boolean):
            return Val(z3.BoolVal(bool(e.this)), z3.BoolVal(False), "bool")
        if isinstance(e, exp.Literal):
            if e.is_string:
                return Val(z3.StringVal(e.this), z3.BoolVal(False), "str", lit=e.this)
            txt = e.this
            if "." in txt or "e" in txt.lower():
                return Val(z3.RealVal(txt), z3.BoolVal(False), "real")
            return Val(z3.IntVal(int(txt)), z3.BoolVal(False), "int")
        if isinstance(e, exp.Neg):
            a = self.val(e.this)
            if a.kind not in ("int", "real"):
                return self.opaque("neg", [a], a.kind)
            return Val(-a.v, a.n, a.kind)
        if isinstance(e, exp.Add | exp.Sub | exp.Mul):
            a, b = self.val(e.this), self.val(e.expression)
            if a.kind == "null" or b.kind == "null":
                k = b.kind if a.kind == "null" else a.kind
                return Val(z3.FreshConst(_sort(k)) if k != "null" else None, z3.BoolVal(True), k)
            if a.kind in ("int", "real") and b.kind in ("int", "real"):
                av, bv, k = _unify(a, b)
                r = av + bv if isinstance(e, exp.Add) else av - bv if isinstance(e, exp.Sub) else av * bv
                return Val(r, z3.Or(a.n, b.n), k)
            shifted = _shift_by_interval(e, a, b)
            if shifted is not None:
                return shifted
            if isinstance(e, exp.Add | exp.Sub) and {a.kind, b.kind} == {"date", "int"} and (
                    isinstance(e, exp.Add) or a.kind == "date"):
                # date ± integer is a date (PostgreSQL and DuckDB alike): days, exactly
                r = a.v + b.v if isinstance(e, exp.Add) else a.v - b.v
                return Val(r, z3.Or(a.n, b.n), "date")
            return self.opaque(type(e).__name__, [a, b], _arith_kind(a.kind, b.kind))
        if isinstance(e, exp.Case):
            return self.case(e)
        if isinstance(e, exp.If):
            p = self.pred(e.this)
            a = self.val(e.args["true"])
            b = self.val(e.args["false"]) if e.args.get("false") is not None else Val(None, z3.BoolVal(True), "null")
            return _ite(p.t, a, b)
        if isinstance(e, exp.Coalesce):
            args = [e.this, *e.expressions]
            vals = [self.val(a) for a in args]
            out = vals[-1]
            for v in reversed(vals[:-1]):
                out = _ite(z3.Not(v.n), v, out)
            return out
        if isinstance(e, exp.Cast | exp.TryCast):
            a = self.val(e.this)
            target = _kind_of_type(e.to)
            if a.kind == "null":
                return Val(None, z3.BoolVal(True), "null")
            if target == "ts" and not _naive_ts(e.to) and a.naive:
                return self.opaque("cast:" + e.to.sql("duckdb"), [a], target)  # to a zone: not the same number
            if target == "ts" and _naive_ts(e.to) and a.kind == "date" and a.v is not None:
                return Val(a.v * _DAY_US, a.n, "ts", naive=True)  # the date's midnight
            if a.kind == target and target in ("int", "str", "bool", "date", "ts") and not _narrowing(e.to):
                return a
            if a.kind == "int" and target == "real":
                return Val(z3.ToReal(a.v), a.n, "real")
            if a.kind == "str" and a.lit is not None and target in ("date", "ts"):
                days = _date_lit(a.lit, target)
                if days is not None:
                    return Val(z3.IntVal(days), z3.BoolVal(False), target, naive=_naive_ts(e.to))
            return self.opaque("cast:" + e.to.sql("duckdb"), [a], target)
        if isinstance(e, exp.Subquery) and not e.args.get("alias"):
            return self.subquery_val(e)
        if isinstance(e, exp.Predicate | exp.Not | exp.And | exp.Or | exp.Exists | exp.In):
            p = self.pred(e)
            return Val(p.t, p.n, "bool")
        if isinstance(e, exp.AggFunc | exp.Window):
            raise Outside(f"aggregate {e.sql()[:40]} in this position")
        if isinstance(e, exp.Interval):
            return Val(self.enc.func(("interval", e.sql("duckdb")), [], _OPAQUE), z3.BoolVal(False), "opaque:interval")
        if isinstance(e, exp.DataType | exp.Var | exp.Star | exp.Placeholder | exp.Parameter):
            raise Outside(f"{type(e).__name__} in expression")
        return self.generic(e)

    def generic(self, e: exp.Expression) -> Val:
        name = (e.name if isinstance(e, exp.Anonymous) else type(e).__name__).lower()
        if name in _NONDETERMINISTIC or isinstance(e, exp.Rand | exp.CurrentTimestamp | exp.CurrentDate):
            raise Outside(f"non-deterministic function {name}")
        if e.find(exp.Select):
            raise Outside("subquery inside a function")
        args: list[Val] = []
        consts: list[str] = []
        for key, arg in e.args.items():
            for a in arg if isinstance(arg, list) else [arg]:
                if isinstance(a, exp.Expression) and not isinstance(a, exp.DataType | exp.Var):
                    args.append(self.val(a))
                elif a is not None:
                    consts.append(f"{key}={a.sql() if isinstance(a, exp.Expression) else a}")
        kind = _kind_of_type(e.type)
        return self.opaque(name + "(" + ",".join(consts) + ")", args, kind)

    def opaque(self, name: str, args: list[Val], kind: str) -> Val:
        """An uninterpreted (deterministic) function of the argument values and NULL flags."""
        zargs: list[Any] = []
        for a in args:
            zargs.append(a.v if a.v is not None else z3.IntVal(0))
            zargs.append(a.n)
        key = (name, tuple(a.kind for a in args))
        v = self.enc.func((*key, "v", kind), zargs, _sort(kind))
        n = self.enc.func((*key, "n"), zargs, z3.BoolSort())
        return Val(v, n, kind)

    def case(self, e: exp.Case) -> Val:
        default = e.args.get("default")
        out = self.val(default) if default is not None else Val(None, z3.BoolVal(True), "null")
        subject = e.this
        for when in reversed(e.args.get("ifs") or []):
            cond = when.this if subject is None else exp.EQ(this=subject, expression=when.this)
            p = self.pred(cond)
            out = _ite(p.t, self.val(when.args["true"]), out)
        return out

    def subquery_key(self, sub: exp.Expression) -> tuple[str, list[Val]]:
        """Text of the subquery with outer references as placeholders, and the outer values."""
        from sqlsluice.verifiers.smt_decorrelate import canonical_subquery

        sub = canonical_subquery(sub)
        own_ctes = {c.alias_or_name.lower() for c in sub.find_all(exp.CTE)}
        for t in sub.find_all(exp.Table):
            if t.name.lower() not in self.tables and t.name.lower() not in own_ctes:
                # a CTE or derived name of the outer query: its text does not pin down its contents
                raise Outside(f"subquery reads {t.name}, defined outside it")
        inner = {t.alias_or_name for t in sub.find_all(exp.Table)} | {
            a.name for a in sub.find_all(exp.TableAlias)}
        c = sub.copy()
        outer: list[tuple[str, str]] = []
        for col in list(c.find_all(exp.Column)):
            if col.table and col.table not in inner:
                k = (col.table, col.name.lower())
                if k not in outer:
                    outer.append(k)
                col.replace(exp.column(f"p{outer.index(k)}", table="__outer"))
        names: dict[str, str] = {}
        for n in c.find_all(exp.TableAlias):
            if n.name and n.name not in names:
                names[n.name] = f"_s{len(names)}"
        canon = self._canonical_key(c)
        c = smt_extend.rename_aliases(c, names)
        vals = []
        for tname, cname in outer:
            cols = self.env.get(tname)
            if cols is None or cname not in cols:
                raise Outside(f"unresolved outer reference {tname}.{cname}")
            vals.append(cols[cname])
        if canon is None:
            return c.sql("duckdb"), vals
        text, order = canon
        return text, [vals[old] for old in order]

    def _canonical_key(self, c: exp.Expression) -> tuple[str, list[int]] | None:
        """The subquery in the canonical tier's normal form, so that one subquery written two
        ways (a CTE inlined, columns pruned, predicates pushed, outer references met in another
        order) is one function: ``(text, order)`` where outer value ``i`` of the text is outer
        reference ``order[i]`` of ``c``.  The outer values are placeholders; every numbering of
        them is tried (up to 4) and the smallest text, renumbered by first use, wins.  None
        when it cannot be normalised (the plain text is used)."""
        import re

        cat = getattr(self.enc, "catalog", None)
        if cat is None:
            return None
        from sqlsluice.verifiers.canonical import canonical_sql

        ck = (id(cat), c.sql("duckdb"))
        if ck in _CANON_KEYS:
            return _CANON_KEYS[ck]
        n = len({col.name for col in c.find_all(exp.Column) if col.table == "__outer"})
        best: tuple[str, list[int]] | None = None
        deadline = getattr(self.enc, "deadline", None)
        for perm in itertools.permutations(range(n)) if n <= 4 else [tuple(range(n))]:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError  # the prover reports "timed out"
            q = c.copy()
            for col in list(q.find_all(exp.Column)):
                if col.table == "__outer":
                    col.replace(exp.Placeholder(this=f"p{perm[int(col.name[1:])]}"))
            try:
                text = canonical_sql(q, cat, "duckdb")
            except CanonicalError:
                best = None
                break
            first: list[int] = []  # placeholder numbers in order of first use
            for m in re.finditer(r"\$p(\d+)\b", text):
                i = int(m.group(1))
                if i not in first:
                    first.append(i)
            if sorted(first) != list(range(n)):
                best = None
                break
            new_of = {p: k for k, p in enumerate(first)}

            def renumber(m: re.Match[str], new_of: dict[int, int] = new_of) -> str:
                return f"$q{new_of[int(m.group(1))]}"

            text = "canon:" + re.sub(r"\$p(\d+)\b", renumber, text)
            inv = {p: i for i, p in enumerate(perm)}  # placeholder number -> outer reference
            order = [inv[p] for p in first]
            if best is None or text < best[0]:
                best = (text, order)
        if len(_CANON_KEYS) > 4096:
            _CANON_KEYS.clear()
        _CANON_KEYS[ck] = best
        return best

    def subquery_val(self, e: exp.Subquery) -> Val:
        lifted = _lift_scalar_arith(e.this)
        if lifted is not None:
            try:
                return self.val(lifted)
            except Outside:  # an operator the model keeps opaque (e.g. NUMERIC division): the whole subquery
                pass
        key, vals = self.subquery_key(e.this)
        sel = e.this
        kind = _kind_of_type(sel.expressions[0].type) if isinstance(sel, exp.Select) and sel.expressions else "opaque:x"
        return self.opaque("scalar:" + key, vals, kind)

    # -- predicates --
    def pred(self, e: exp.Expression) -> Pred:
        if isinstance(e, exp.Paren):
            return self.pred(e.this)
        if isinstance(e, exp.And):
            a, b = self.pred(e.this), self.pred(e.expression)
            t = z3.And(a.t, b.t)
            f = z3.Or(_false(a), _false(b))
            return Pred(t, z3.And(z3.Not(t), z3.Not(f)))
        if isinstance(e, exp.Or):
            a, b = self.pred(e.this), self.pred(e.expression)
            t = z3.Or(a.t, b.t)
            f = z3.And(_false(a), _false(b))
            return Pred(t, z3.And(z3.Not(t), z3.Not(f)))
        if isinstance(e, exp.Not):
            a = self.pred(e.this)
            return Pred(_false(a), a.n)
        if isinstance(e, exp.Boolean):
            return Pred(z3.BoolVal(bool(e.this)), z3.BoolVal(False))
        if isinstance(e, exp.Null):
            return Pred(z3.BoolVal(False), z3.BoolVal(True))
        if isinstance(e, exp.Is):
            va = self.val(e.this)
            rhs = e.expression
            if isinstance(rhs, exp.Null):
                return Pred(va.n, z3.BoolVal(False))
            if isinstance(rhs, exp.Boolean) and va.kind == "bool":
                return Pred(z3.And(z3.Not(va.n), va.v == z3.BoolVal(bool(rhs.this))), z3.BoolVal(False))
            raise Outside("IS with non-NULL operand")
        if isinstance(e, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
            return self.compare(type(e), self.val(e.this), self.val(e.expression))
        if isinstance(e, exp.NullSafeEQ | exp.NullSafeNEQ):
            va, vb = self.val(e.this), self.val(e.expression)
            eq = _ns_eq(va, vb, strict=True)
            return Pred(eq if isinstance(e, exp.NullSafeEQ) else z3.Not(eq), z3.BoolVal(False))
        if isinstance(e, exp.Between):
            x = e.this
            both: Any = exp.and_(exp.GTE(this=x, expression=e.args["low"]),
                                            exp.LTE(this=x, expression=e.args["high"]))
            return self.pred(both)
        if isinstance(e, exp.In):
            if e.args.get("query") is not None:
                q = e.args["query"]
                key, vals = self.subquery_key(q.this if isinstance(q, exp.Subquery) else q)
                x = self.val(e.this)
                t = self.opaque("in_t:" + key, [x, *vals], "bool")
                n = self.opaque("in_n:" + key, [x, *vals], "bool")
                tt = z3.And(t.v, z3.Not(t.n))
                return Pred(tt, z3.And(z3.Not(tt), n.v, z3.Not(n.n)))
            if e.args.get("unnest") or e.args.get("field"):
                raise Outside("IN UNNEST")
            items = e.expressions
            if not items:
                raise Outside("empty IN list")
            out: exp.Expression = exp.EQ(this=e.this, expression=items[0])
            for it in items[1:]:
                out = exp.Or(this=out, expression=exp.EQ(this=e.this, expression=it))
            return self.pred(out)
        if isinstance(e, exp.Exists):
            key, vals = self.subquery_key(_exists_body(e.this))
            r = self.opaque("exists:" + key, vals, "bool")
            return Pred(z3.And(r.v, z3.Not(r.n)), z3.BoolVal(False))
        if isinstance(e, exp.Like | exp.ILike):
            va, vb = self.val(e.this), self.val(e.expression)
            if e.args.get("escape"):
                raise Outside("LIKE ESCAPE")
            r = self.enc.func((type(e).__name__,), [_v(va), _v(vb)], z3.BoolSort())
            nn = z3.Or(va.n, vb.n)
            return Pred(z3.And(z3.Not(nn), r), nn)
        if isinstance(e, exp.Any | exp.All):
            raise Outside("ANY/ALL")
        v = self.val(e)
        if v.kind == "null":
            return Pred(z3.BoolVal(False), z3.BoolVal(True))
        if v.kind != "bool":
            raise Outside(f"non-boolean predicate {e.sql()[:40]}")
        return Pred(z3.And(v.v, z3.Not(v.n)), v.n)

    def compare(self, op: type[exp.Expression], a: Val, b: Val) -> Pred:
        if a.kind == "null" or b.kind == "null":
            return Pred(z3.BoolVal(False), z3.BoolVal(True))
        av, bv = _coerce_pair(a, b)
        nn = z3.Or(a.n, b.n)
        if op is exp.EQ:
            r = av == bv
        elif op is exp.NEQ:
            r = av != bv
        else:
            if op in (exp.GT, exp.GTE):
                av, bv, op = bv, av, exp.LT if op is exp.GT else exp.LTE
            if av.sort() in (z3.IntSort(), z3.RealSort()):
                r = av < bv if op is exp.LT else av <= bv
            elif av.sort() == z3.StringSort() and self.enc.binary_strings:
                # DuckDB orders VARCHAR by bytes (code points): z3's lexicographic order is the same
                r = av < bv if op is exp.LT else z3.Or(av < bv, av == bv)
            else:
                # string / opaque order: an uninterpreted relation (collation-independent), with <= as
                # < or =
                lt = self.enc.func(("lt", str(av.sort())), [av, bv], z3.BoolSort())
                r = lt if op is exp.LT else z3.Or(lt, av == bv)
        return Pred(z3.And(z3.Not(nn), r), nn)


_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div)


def _lift_scalar_arith(sel: exp.Expression) -> exp.Expression | None:
    """``(SELECT AGG(x) op c FROM ..)`` -> ``(SELECT AGG(x) FROM ..) op c`` for a scalar aggregate
    query (no GROUP BY / HAVING / DISTINCT / LIMIT: exactly one row) and a literal ``c``: the one
    row's value is ``AGG op c``, so one subquery written either way is one function."""
    if not isinstance(sel, exp.Select) or len(sel.expressions) != 1:
        return None
    if any(sel.args.get(k) for k in ("group", "having", "distinct", "limit", "offset", "fetch", "qualify",
                                       "windows", "order")):
        return None
    out = sel.expressions[0]
    out = out.this if isinstance(out, exp.Alias) else out
    while isinstance(out, exp.Paren):
        out = out.this
    if not isinstance(out, _ARITH):
        return None
    const = (exp.Literal, exp.Neg)
    agg, lit, left = (out.this, out.expression, True) if isinstance(out.expression, const) else (
        (out.expression, out.this, False) if isinstance(out.this, const) else (None, None, True))
    if agg is None or lit is None or not isinstance(agg, _AGGS) or isinstance(agg.parent, exp.Filter):
        return None
    if lit.find(exp.Column) is not None or (isinstance(lit, exp.Neg) and not isinstance(lit.this, exp.Literal)):
        return None
    inner = sel.copy()
    inner.set("expressions", [agg.copy()])
    sub = exp.Subquery(this=inner)
    return type(out)(this=sub, expression=lit.copy()) if left else type(out)(this=lit.copy(), expression=sub)


def _v(a: Val) -> Any:
    return a.v if a.v is not None else z3.StringVal("")


def _false(p: Pred) -> Any:
    return z3.And(z3.Not(p.t), z3.Not(p.n))


def _unify(a: Val, b: Val) -> tuple[Any, Any, str]:
    if a.kind == b.kind:
        return a.v, b.v, a.kind
    return (z3.ToReal(a.v) if a.kind == "int" else a.v), (z3.ToReal(b.v) if b.kind == "int" else b.v), "real"


def _arith_kind(a: str, b: str) -> str:
    if a in ("date", "ts") or b in ("date", "ts"):
        return "opaque:datetime-arith"
    if "float" in (a, b):
        return "float"
    if a == b:
        return a
    if {a, b} <= {"int", "real"}:
        return "real"
    return "opaque:arith"


def _coerce_pair(a: Val, b: Val) -> tuple[Any, Any]:
    ka, kb = a.kind, b.kind
    if ka == kb == "ts" and a.naive != b.naive:
        raise Outside("comparison of a timestamp without time zone with one that may have a zone")
    if ka == kb:
        return a.v, b.v
    num = ("int", "real", "float")
    if ka in num and kb in num:
        return (z3.ToReal(a.v) if ka == "int" else a.v), (z3.ToReal(b.v) if kb == "int" else b.v)
    # a date against a TIMESTAMP without time zone: the date is its midnight (both engines)
    if ka == "date" and kb == "ts" and b.naive:
        return a.v * _DAY_US, b.v
    if ka == "ts" and kb == "date" and a.naive:
        return a.v, b.v * _DAY_US
    if ka in ("date", "ts") and kb == "str" and b.lit is not None:
        v = _date_lit(b.lit, ka)
        if v is not None:
            return a.v, z3.IntVal(v)
    if kb in ("date", "ts") and ka == "str" and a.lit is not None:
        v = _date_lit(a.lit, kb)
        if v is not None:
            return z3.IntVal(v), b.v
    raise Outside(f"comparison of {ka} with {kb}")


_DAY_US = 86_400_000_000
_FIXED_US = {"DAY": _DAY_US, "DAYS": _DAY_US, "WEEK": 7 * _DAY_US, "WEEKS": 7 * _DAY_US,
             "HOUR": 3_600_000_000, "HOURS": 3_600_000_000, "MINUTE": 60_000_000, "MINUTES": 60_000_000,
             "SECOND": 1_000_000, "SECONDS": 1_000_000}


def _naive_ts(t: exp.DataType) -> bool:
    """A TIMESTAMP without time zone (DuckDB's TIMESTAMP, sqlglot's DATETIME for it)."""
    return t.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.DATETIME) and not t.expressions


def _interval_us(iv: exp.Expression) -> int | None:
    """A constant interval of whole days, weeks, hours, minutes or seconds, in microseconds (None
    for months and years, whose length depends on the date, and for anything not a literal)."""
    if not isinstance(iv, exp.Interval) or not isinstance(iv.this, exp.Literal):
        return None
    parts = iv.this.this.split()
    unit = iv.args.get("unit")
    if unit is not None:
        parts.append(unit.name if isinstance(unit, exp.Expression) else str(unit))
    if len(parts) != 2 or parts[1].upper() not in _FIXED_US:
        return None
    try:
        n = int(parts[0])
    except ValueError:
        return None
    return n * _FIXED_US[parts[1].upper()]


def _shift_by_interval(e: exp.Expression, a: Val, b: Val) -> Val | None:
    """``date ± INTERVAL 'n' DAY`` (and ``INTERVAL .. + date``, weeks, hours, minutes, seconds):
    PostgreSQL and DuckDB both give a TIMESTAMP without time zone, the date at midnight moved by
    a fixed length of time; with dates as days and timestamps as microseconds since 1970-01-01
    that is ``date * 86400e6 ± n * unit``, exactly.  A timestamp operand is shifted only when it is
    known to be without time zone (``naive``: with a zone, a day is not always 24 hours).  Months
    and years (calendar arithmetic) stay uninterpreted."""
    if isinstance(e, exp.Add) and a.kind == "opaque:interval":
        a, b, iv = b, a, e.this
    else:
        iv = e.expression
    if not isinstance(e, exp.Add | exp.Sub) or b.kind != "opaque:interval":
        return None
    while isinstance(iv, exp.Paren):
        iv = iv.this
    us = _interval_us(iv)
    if us is None or a.v is None:
        return None
    if a.kind == "date":
        base = a.v * _DAY_US
    elif a.kind == "ts" and a.naive:
        base = a.v
    else:
        return None
    return Val(base + us if isinstance(e, exp.Add) else base - us, a.n, "ts", naive=True)


def _date_lit(s: str, kind: str) -> int | None:
    try:
        if kind == "date":
            if len(s.strip()) != 10:
                return None
            return (_dt.date.fromisoformat(s.strip()) - _dt.date(1970, 1, 1)).days
        d = _dt.datetime.fromisoformat(s.strip())
        return int((d - _dt.datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    except ValueError:
        return None


def _narrowing(t: exp.DataType) -> bool:
    """CASTs that can change a value of the same kind (VARCHAR(n) truncation, TINYINT overflow)."""
    return bool(t.expressions) or t.this in (exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT)


def _ite(c: Any, a: Val, b: Val) -> Val:
    if a.kind == "null" and b.kind == "null":
        return a
    kind = b.kind if a.kind == "null" else a.kind if b.kind == "null" else a.kind
    if a.kind != "null" and b.kind != "null" and a.kind != b.kind:
        if {a.kind, b.kind} <= {"int", "real"}:
            kind = "real"
        elif {a.kind, b.kind} <= {"int", "real", "float"}:
            kind = "float"
        else:
            raise Outside(f"CASE branches of kinds {a.kind} and {b.kind}")
    av = _as(a, kind)
    bv = _as(b, kind)
    return Val(z3.If(c, av, bv), z3.If(c, a.n, b.n), kind)


def _as(a: Val, kind: str) -> Any:
    if a.v is None:
        return z3.FreshConst(_sort(kind))
    if a.kind == "int" and kind in ("real", "float"):
        return z3.ToReal(a.v)
    return a.v


def _ns_eq(a: Val, b: Val, *, strict: bool = False) -> Any:
    """``a`` and ``b`` are the same value (NULL the same as NULL).

    Not strict (an obligation to prove: two outputs are the same): values of kinds that do not
    compare are never the same (a DATE output is not a TIMESTAMP output) -- False can only make a
    proof fail.  Strict (a formula that is assumed or negated: an IS [NOT] DISTINCT FROM
    predicate, a fact about a witness row): kinds that do not compare are outside the model,
    since False there would be an assumption that SQL does not make (``'5' IS NOT DISTINCT FROM
    5`` is true in PostgreSQL; an assumed False proves anything)."""
    if a.kind == "null" and b.kind == "null":
        return z3.BoolVal(True)
    if a.kind == "null":
        return b.n
    if b.kind == "null":
        return a.n
    if {a.kind, b.kind} == {"date", "ts"}:
        if strict:
            raise Outside("IS [NOT] DISTINCT FROM between a date and a timestamp")
        return z3.BoolVal(False)  # a DATE is never the same value as a TIMESTAMP (another type)
    try:
        av, bv = _coerce_pair(a, b)
    except Outside:
        if strict:
            raise
        return z3.BoolVal(False)
    return z3.Or(z3.And(a.n, b.n), z3.And(z3.Not(a.n), z3.Not(b.n), av == bv))


# ---------------------------------------------------------------------------------------------
# the prover
# ---------------------------------------------------------------------------------------------

class Prover:
    def __init__(self, deadline: float, tables: frozenset[str], check_timeout_ms: int = 2000,
                 max_bijections: int = 64, binary_strings: bool = False, catalog: Catalog | None = None) -> None:
        self.enc = Encoder(binary_strings)
        self.enc.catalog = catalog
        self.enc.deadline = deadline
        self.catalog = catalog
        self.tables = tables
        self.deadline = deadline
        self.check_ms = check_timeout_ms
        self.max_bij = max_bijections
        self.memo: dict[tuple[int, int], bool] = {}

    def valid(self, assumptions: list[Any], goal: Any) -> bool:
        """True when ``assumptions => goal`` holds for every valuation (z3 says the negation is unsat)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        s = z3.Solver()
        s.set("timeout", int(max(50, min(self.check_ms, left * 1000))))
        s.add(*assumptions)
        s.add(z3.Not(goal))
        return bool(s.check() == z3.unsat)

    def equiv(self, q1: Query, q2: Query) -> bool:
        key = (id(q1), id(q2))
        if key not in self.memo:
            self.memo[key] = self._equiv(q1, q2)
        return self.memo[key]

    def _drop_empty_branches(self, q: Query) -> Query:
        if isinstance(q, SetOp) and q.kind == "union" and not q.distinct:
            kids = [c for c in q.children if not self.is_empty(c)]
            if len(kids) == 1:
                return _unwrap(kids[0])
            if kids and len(kids) < len(q.children):
                return SetOp("union", False, kids, q.out_kinds)
        return q

    def _equiv(self, q1: Query, q2: Query) -> bool:
        q1, q2 = _unwrap(q1), _unwrap(q2)
        if isinstance(q1, SetOp) != isinstance(q2, SetOp) or (
                isinstance(q1, SetOp) and isinstance(q2, SetOp) and len(q1.children) != len(q2.children)):
            q1, q2 = self._drop_empty_branches(q1), self._drop_empty_branches(q2)
        if len(q1.out_kinds) != len(q2.out_kinds):
            return False
        if self._equiv_shapes(q1, q2):
            return True
        # two queries that never return a row are equivalent
        return self.is_empty(q1) and self.is_empty(q2)

    def is_empty(self, q: Query) -> bool:
        q = _unwrap(q)
        if isinstance(q, SetOp):
            if q.kind in ("union", "distinct"):
                return all(self.is_empty(c) for c in q.children)
            if q.kind == "intersect":
                return any(self.is_empty(c) for c in q.children)
            return self.is_empty(q.children[0])
        if q.group is not None and not q.group:
            return False  # a scalar aggregate always answers one row (unless HAVING; not modelled)
        env, _, cons, _ = self._side_envs(q, q, list(range(len(q.units))), "e")
        w = _conj([Scope(self.enc, env, tables=self.tables).pred(c) for c in q.conds])
        return self.valid(cons, z3.Not(w.t))

    def _equiv_shapes(self, q1: Query, q2: Query) -> bool:
        if isinstance(q1, SetOp) and isinstance(q2, SetOp):
            if q1.kind == q2.kind == "distinct":
                return self.equiv(q1.children[0], q2.children[0])
            if q1.kind != q2.kind or q1.distinct != q2.distinct or len(q1.children) != len(q2.children):
                return False
            if q1.kind == "except":
                return all(self.equiv(a, b) for a, b in zip(q1.children, q2.children, strict=True))
            return self._match_all(q1.children, q2.children)
        if isinstance(q1, Block) and isinstance(q2, Block):
            return self.block_equiv(q1, q2)
        return False

    def _match_all(self, xs: list[Query], ys: list[Query]) -> bool:
        if not xs:
            return True
        for j, y in enumerate(ys):
            if self.equiv(xs[0], y) and self._match_all(xs[1:], ys[:j] + ys[j + 1:]):
                return True
        return False

    # -- blocks --
    def compatible(self, u1: Unit, u2: Unit) -> bool:
        if u1.type_key.startswith("table:") or u2.type_key.startswith("table:"):
            return u1.type_key == u2.type_key
        return len(u1.columns) == len(u2.columns) and self.equiv(u1.derived, u2.derived)

    def bijections(self, b1: Block, b2: Block) -> Iterator[list[int]]:
        """Candidate maps: position in b2.units -> position in b1.units (same table / equivalent),
        at most ``max_bij`` of them.  Lazy: a pair of units is checked for compatibility (a proof
        for derived units) only when the search reaches it, so the first map (usually the
        identity of a rewrite that kept the order of its inputs) is tried before the other
        pairs are proved or refuted: q31-like queries with six grouped derived tables spent
        most of their budget proving all 36 pairs first.  The maps and their order are those
        of the eager search."""
        n = len(b1.units)
        if n != len(b2.units):
            return
        count = 0

        def ok(i: int, j: int) -> bool:
            return self.compatible(b1.units[i], b2.units[j])

        def rec(j: int, used: set[int], acc: list[int]) -> Iterator[list[int]]:
            nonlocal count
            if count >= self.max_bij:
                return
            if j == n:
                count += 1
                yield list(acc)
                return
            for i in range(n):
                if i not in used and ok(i, j):
                    acc.append(i)
                    used.add(i)
                    yield from rec(j + 1, used, acc)
                    used.discard(i)
                    acc.pop()

        yield from rec(0, set(), [])

    def make_env(self, units: list[Unit], tag: str) -> tuple[list[dict[str, Val]], list[Any]]:
        vals, cons = [], []
        for k, u in enumerate(units):
            cols = {}
            for name, kind, nullable in u.columns:
                v = self.enc.fresh(f"{tag}{k}.{name}", kind)
                if not nullable:
                    cons.append(z3.Not(v.n))
                cols[name] = v
            vals.append(cols)
            cons.extend(smt_extend.witness(self, u, cols, f"{tag}{k}"))  # a derived row comes from an input row
        return vals, cons

    def reduce_left_joins(self, b: Block) -> Block:
        """A LEFT JOIN whose NULL-padded rows the WHERE clause always rejects is an inner join."""
        k = 0
        while k < len(b.ljs):
            ident = list(range(len(b.units)))
            env, _, cons, _ = self._side_envs(b, b, ident, "z")
            pad = self._pads[k]
            w = _conj([Scope(self.enc, env, tables=self.tables).pred(c) for c in b.conds])
            if self.valid([*cons, pad], z3.Not(w.t)):
                u, on = b.ljs[k]
                b = Block([*b.units, u], b.ljs[:k] + b.ljs[k + 1:], [*b.conds, on], b.group, b.having,
                          b.outputs, b.out_kinds)
            else:
                k += 1
        return b

    def _after_reduction(self, b: Block) -> Block:
        r = self.reduce_left_joins(b)
        if len(r.ljs) == len(b.ljs) or self.catalog is None:
            return r
        return _fk_join_elimination(_merge_spj(r), self.catalog)

    def block_equiv(self, b1: Block, b2: Block) -> bool:
        if b1.ljs:
            b1 = self._after_reduction(b1)
        if b2.ljs:
            b2 = self._after_reduction(b2)
        if len(b1.outputs) != len(b2.outputs) or len(b1.ljs) != len(b2.ljs):
            return False
        if (b1.group is None) != (b2.group is None):
            return False
        if b1.group is not None and b2.group is not None and (len(b1.group) == 0) != (len(b2.group) == 0):
            return False
        for i in range(len(b1.ljs)):
            if not self.compatible(b1.ljs[i][0], b2.ljs[i][0]):
                return False
        for sigma in self.bijections(b1, b2):
            if self.block_under(b1, b2, sigma):
                return True
        return False

    def _side_envs(self, b1: Block, b2: Block, sigma: list[int], tag: str) -> tuple[Env, Env, list[Any], list[Any]]:
        """Environments of both sides over one set of symbolic tuples; validity constraints;
        and the LEFT JOIN obligations (each ON of b2 agrees with b1's)."""
        inner, cons = self.make_env(b1.units, tag + "u")
        env1: Env = {u.alias: inner[i] for i, u in enumerate(b1.units)}
        env2: Env = {u.alias: _rename(inner[sigma[j]], b1.units[sigma[j]], u) for j, u in enumerate(b2.units)}
        obligations = []
        self._pads: list[Any] = []
        # ONs need agree only where both sides keep the left row: a WHERE conjunct over the inner
        # units alone that fails drops every row built from that left row, matched or padded
        left1, left2 = (_left_filter(b, env, self.enc, self.tables) for b, env in ((b1, env1), (b2, env2)))
        for i, ((u1, on1), (u2, on2)) in enumerate(zip(b1.ljs, b2.ljs, strict=True)):
            rv, rcons = self.make_env([u1], f"{tag}r{i}_")
            cols = rv[0]
            pad = z3.Bool(f"{tag}pad{i}!{next(self.enc.counter)}")
            self._pads.append(pad)
            p1_on = Scope(self.enc, {**env1, u1.alias: cols}, tables=self.tables).pred(on1)
            p2_on = Scope(self.enc, {**env2, u2.alias: _rename(cols, u1, u2)}, tables=self.tables).pred(on2)
            obligations.append((list(cons) + rcons, z3.Or(p1_on.t == p2_on.t, z3.And(z3.Not(left1), z3.Not(left2)))))
            padded = {name: Val(v.v, z3.Or(pad, v.n), v.kind) for name, v in cols.items()}
            # a padded row has every column NULL; a matched row satisfies ON
            cons.extend(z3.Implies(z3.Not(pad), c) for c in rcons)
            cons.append(z3.Implies(z3.Not(pad), p1_on.t))
            env1[u1.alias] = padded
            env2[u2.alias] = _rename(padded, u1, u2)
        return env1, env2, cons, obligations

    def block_under(self, b1: Block, b2: Block, sigma: list[int]) -> bool:
        env1, env2, cons, obligations = self._side_envs(b1, b2, sigma, "a")
        for assume, goal in obligations:
            if not self.valid(assume, goal):
                return False
        s1, s2 = Scope(self.enc, env1, tables=self.tables), Scope(self.enc, env2, tables=self.tables)
        w1 = _conj([s1.pred(c) for c in b1.conds])
        w2 = _conj([s2.pred(c) for c in b2.conds])
        if not self.valid(cons, w1.t == w2.t):
            return False
        base = [*cons, w1.t]
        if b1.group is None:
            return all(self.valid(base, _ns_eq(s1.val(o1), s2.val(o2)))
                       for o1, o2 in zip(b1.outputs, b2.outputs, strict=True))
        assert b2.group is not None
        # same partition into groups: two rows are in one group of b1 iff they are in one group of b2
        if b1.group or b2.group:
            e1b, e2b, consb, _ = self._side_envs(b1, b2, sigma, "b")
            t1, t2 = Scope(self.enc, e1b, tables=self.tables), Scope(self.enc, e2b, tables=self.tables)
            wb = _conj([t1.pred(c) for c in b1.conds])
            same1 = z3.And(*[_ns_eq(s1.val(g), t1.val(g)) for g in b1.group]) if b1.group else z3.BoolVal(True)
            same2 = z3.And(*[_ns_eq(s2.val(g), t2.val(g)) for g in b2.group]) if b2.group else z3.BoolVal(True)
            if not self.valid([*base, *consb, wb.t], same1 == same2):
                return False
        # aggregates: each aggregate of b2 takes the same arguments as one of b1 on every row
        aggs1 = _aggs(b1)
        aggs2 = _aggs(b2)
        vars1: dict[int, Val] = {}
        vars2: dict[int, Val] = {}
        by_text: dict[str, Val] = {}
        for a in aggs1:
            t = a.sql("duckdb")
            if t not in by_text:
                by_text[t] = self.enc.fresh("agg", _agg_kind(a, s1))
            vars1[id(a)] = by_text[t]
        for a in aggs2:
            for a1 in aggs1:
                if _agg_sig(a) == _agg_sig(a1) and self._same_args(a1, a, s1, s2, base):
                    vars2[id(a)] = vars1[id(a1)]
                    break
            else:
                return False
        g1 = Scope(self.enc, env1, vars1, self.tables)
        g2 = Scope(self.enc, env2, vars2, self.tables)
        # A grouped block has one row per non-empty group, so a group's row passes the filter; a
        # scalar aggregate (no GROUP BY) also answers one row for an empty input: no filter assumed.
        group_base = base if b1.group else cons
        for o1, o2 in zip(b1.outputs, b2.outputs, strict=True):
            if not self.valid(group_base, _ns_eq(g1.val(o1), g2.val(o2))):
                return False
        h1 = g1.pred(b1.having) if b1.having is not None else TRUE
        h2 = g2.pred(b2.having) if b2.having is not None else TRUE
        return self.valid(group_base, h1.t == h2.t)

    def _same_args(self, a1: exp.Expression, a2: exp.Expression, s1: Scope, s2: Scope, base: list[Any]) -> bool:
        x1, x2 = _agg_args(a1), _agg_args(a2)
        if len(x1) != len(x2):
            return False
        return all(self.valid(base, _ns_eq(s1.val(p), s2.val(q))) for p, q in zip(x1, x2, strict=True))


def _left_filter(b: Block, env: Env, enc: Encoder, tables: frozenset[str]) -> Any:
    """TRUE where the WHERE conjuncts of ``b`` that read no LEFT JOINed alias hold."""
    lj_aliases = {u.alias for u, _ in b.ljs}
    parts: list[Any] = [c for cond in b.conds for c in (cond.flatten() if isinstance(cond, exp.And) else [cond])]
    left = [c for c in parts if b.ljs and not any(col.table in lj_aliases for col in c.find_all(exp.Column))]
    scope = Scope(enc, dict(env), tables=tables)
    return _conj([scope.pred(c) for c in left]).t if left else z3.BoolVal(True)


def _rename(cols: dict[str, Val], u_from: Unit, u_to: Unit) -> dict[str, Val]:
    """Columns of ``u_from`` seen under ``u_to``'s column names (by position)."""
    vals = [cols[name] for name, _, _ in u_from.columns]
    return {name: vals[i] for i, (name, _, _) in enumerate(u_to.columns)}


def _conj(ps: list[Pred]) -> Pred:
    if not ps:
        return TRUE
    out = ps[0]
    for p in ps[1:]:
        t = z3.And(out.t, p.t)
        f = z3.Or(_false(out), _false(p))
        out = Pred(t, z3.And(z3.Not(t), z3.Not(f)))
    return out


def _aggs(b: Block) -> list[Any]:
    out: list[Any] = []
    for e in [*b.outputs, *([b.having] if b.having is not None else [])]:
        for a in e.find_all(exp.AggFunc):
            if not isinstance(a, _AGGS):
                raise Outside(f"aggregate {type(a).__name__}")
            if a.find_ancestor(exp.AggFunc) is not None and a.find_ancestor(exp.AggFunc) is not a:
                raise Outside("nested aggregate")
            if isinstance(a.parent, exp.Filter | exp.Window):
                raise Outside("aggregate FILTER/OVER")
            out.append(a)
    return out


def _agg_args(a: exp.Expression) -> list[exp.Expression]:
    x = a.this
    if isinstance(x, exp.Distinct):
        return list(x.expressions)
    if x is None or isinstance(x, exp.Star):
        return []
    return [x, *a.expressions]


def _agg_sig(a: exp.Expression) -> tuple[str, bool, bool]:
    x = a.this
    return type(a).__name__, isinstance(x, exp.Distinct), isinstance(x, exp.Star) or x is None


def _agg_kind(a: exp.Expression, s: Scope) -> str:
    if isinstance(a, exp.Count):
        return "int"
    if isinstance(a, exp.Avg | exp.Stddev | exp.StddevPop | exp.StddevSamp | exp.Variance | exp.VariancePop):
        return "float"
    if isinstance(a, exp.LogicalAnd | exp.LogicalOr):
        return "bool"
    args = _agg_args(a)
    if len(args) != 1:
        raise Outside("aggregate arity")
    k = s.val(args[0]).kind
    return "opaque:null" if k == "null" else k


def _unwrap(q: Query) -> Query:
    """``SELECT c1, ..., cn FROM (q) AS t`` with nothing else is ``q``."""
    while (isinstance(q, Block) and len(q.units) == 1 and not q.ljs and not q.conds and q.group is None
           and q.units[0].derived is not None):
        u = q.units[0]
        names = [n for n, _, _ in u.columns]
        outs = [o.name.lower() if isinstance(o, exp.Column) and o.table == u.alias else None for o in q.outputs]
        if outs != names:
            break
        q = u.derived
    return q


# ---------------------------------------------------------------------------------------------
# normalisations of the query model (each one preserves bag semantics; hazards named)
# ---------------------------------------------------------------------------------------------

# the running proof's deadline: normalisation can multiply a query (joins pushed into unions)
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("smt_deadline", default=None)
_MAX_BRANCHES = 64  # a join is pushed into a UNION ALL only while the result stays this small


def normalize(q: Query, catalog: Catalog) -> Query:
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError
    if isinstance(q, SetOp):
        kids = [_unwrap(normalize(c, catalog)) for c in q.children]
        if q.kind == "union":
            flat: list[Query] = []
            for k in kids:
                if isinstance(k, SetOp) and k.kind == "union" and not k.distinct:
                    flat.extend(k.children)
                else:
                    flat.append(k)
            if q.distinct:
                # UNION = DISTINCT (UNION ALL); DISTINCT (DISTINCT x UNION ALL y) = DISTINCT (x UNION ALL y)
                flat2: list[Query] = []
                for k in flat:
                    if isinstance(k, SetOp) and k.kind == "distinct":
                        k = _unwrap(k.children[0])
                    if isinstance(k, SetOp) and k.kind == "union" and not k.distinct:
                        flat2.extend(k.children)
                    else:
                        flat2.append(k)
                return SetOp("distinct", True, [SetOp("union", False, flat2, q.out_kinds)], q.out_kinds)
            return SetOp("union", False, flat, q.out_kinds)
        if q.kind == "distinct" and isinstance(kids[0], SetOp) and kids[0].kind == "distinct":
            return kids[0]
        return smt_extend.flatten_intersect(SetOp(q.kind, q.distinct, kids, q.out_kinds))
    for u in [*q.units, *(u for u, _ in q.ljs)]:
        if u.derived is not None:
            u.derived = normalize(u.derived, catalog)
    inner = _unwrap(q)
    if inner is not q:
        return inner
    q = _prune_derived(q)
    q = _merge_left_derived(q)
    from sqlsluice.verifiers.smt_decorrelate import recorrelate  # decorrelated scalar aggregates

    q = recorrelate(q)
    pushed_down = _push_into_group(q)
    if pushed_down is not q:
        q = _prune_derived(pushed_down)
    q = _ungroup_under_min_max(q)
    from sqlsluice.verifiers.smt_aggregates import canonical_columns  # column order without names

    q = canonical_columns(q)
    pushed = _push_into_union(q)
    if pushed is not q:
        return normalize(pushed, catalog)
    q = _merge_spj(q)
    q = _merge_over_group(q)
    q = _having_to_where(q)
    q = _keyed_group_elimination(q, catalog)
    from sqlsluice.verifiers.smt_semijoin import semijoin_normal_form  # IN/EXISTS/markers/keyed self-joins

    q = semijoin_normal_form(q, catalog)
    q = _fk_join_elimination(q, catalog)
    from sqlsluice.verifiers.smt_filter import filter_normal_form  # FILTER aggregates, scalar subqueries

    return _distinct_wrapper(filter_normal_form(q, catalog))


def _substitute(e: exp.Expression, alias: str, repl: dict[str, exp.Expression]) -> exp.Expression:
    """``e`` with the columns ``alias.n`` (n in ``repl``) that refer to this block's ``alias``
    replaced (see :func:`free_columns`: a subquery that declares ``alias`` itself keeps its own)."""
    c = e.copy()
    for col in free_columns(c, alias):
        if col.name.lower() in repl:
            new = repl[col.name.lower()].copy()
            if col is c:
                return new
            col.replace(new)
    return c


def free_columns(e: exp.Expression, alias: str) -> list[exp.Column]:
    """The columns of ``e`` qualified by ``alias`` that refer to the enclosing block's ``alias``.

    SQL resolves a qualifier in the innermost query that declares it: inside a subquery whose
    own FROM/JOIN declares ``alias`` (``.. > (SELECT AVG(t.x) FROM t WHERE t.k = o.k)`` with an
    outer ``t`` as well) every ``alias.c`` of its select list, WHERE, ON, GROUP BY, HAVING and of
    the subqueries nested there is the inner one, and renaming or substituting it as the outer
    one would change the subquery (a correlated AVG over one row instead of the group).  The
    bodies of that subquery's own derived tables and CTEs are evaluated in the enclosing scope
    (their siblings are not visible without LATERAL), so they are searched with the outer
    binding; under LATERAL the name is taken as the inner one's (nothing substituted)."""
    out: list[exp.Column] = []

    def visit(n: exp.Expression) -> None:
        if isinstance(n, exp.Column):
            if n.table == alias:
                out.append(n)
            return
        if isinstance(n, exp.Select):
            frm = n.args.get("from_") or n.args.get("from")
            sources = ([frm.this] if frm is not None else []) + [j.this for j in n.args.get("joins") or []]
            if any(s.alias_or_name == alias for s in sources):
                w = n.args.get("with")
                if w is not None:
                    visit(w)
                for s in sources:
                    if isinstance(s, exp.Subquery):
                        visit(s.this)
                return
        for child in n.iter_expressions():
            visit(child)

    visit(e)
    return out


_FRESH = itertools.count()


def _push_into_union(q: Block) -> Query:
    """Joins, filters and projections distribute over UNION ALL:
    ``SELECT f FROM (a UNION ALL b) t, r WHERE p`` = ``SELECT f FROM a t, r WHERE p UNION ALL ...``
    (not through GROUP BY / DISTINCT, which would merge rows across branches)."""
    if q.group is not None:
        return q
    for ui, u in enumerate(q.units):
        d = u.derived
        if isinstance(d, SetOp) and d.kind == "union" and not d.distinct and _union_size(q) * len(d.children) <= _MAX_BRANCHES:
            branches: list[Query] = []
            for child in d.children:
                nu = Unit(u.alias, f"derived:{id(child)}", list(u.columns), child)
                branches.append(Block([*q.units[:ui], nu, *q.units[ui + 1:]], list(q.ljs), list(q.conds), None,
                                      q.having, list(q.outputs), q.out_kinds))
            return SetOp("union", False, branches, q.out_kinds)
    return q


def _union_size(q: Block) -> int:
    """How many branches pushing every UNION ALL unit of ``q`` into the block would make."""
    n = 1
    for u in q.units:
        d = u.derived
        if isinstance(d, SetOp) and d.kind == "union" and not d.distinct:
            n *= max(1, len(d.children))
    return n


def _push_into_group(q: Block) -> Block:
    """``SELECT .. FROM (SELECT k, agg .. GROUP BY k) t, .. WHERE p(t.k)`` -> the filter inside, on the
    rows: ``p`` over grouping columns keeps or drops whole groups, so filtering the rows first
    leaves the same groups with the same rows.  Only what :func:`_having_to_where` moves
    (comparisons of plain grouping columns and literals: a function could tell apart values that
    GROUP BY treats as equal); never into a scalar aggregate (it answers a row on empty input),
    never from a LEFT JOIN's ON (only inner units, only WHERE conjuncts)."""
    parts: list[Any] = [c for cond in q.conds for c in (cond.flatten() if isinstance(cond, exp.And) else [cond])]
    units = list(q.units)
    changed = False
    for ui, u in enumerate(units):
        g = u.derived
        if not isinstance(g, Block) or not g.group or g.having is not None and g.having.find(exp.Select):
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs) or len(set(names)) != len(names):
            continue
        keys = {(k.table, k.name.lower()) for k in g.group if isinstance(k, exp.Column)}
        repl: dict[str, exp.Expression] = {n: o for n, o in zip(names, g.outputs, strict=True)
                                           if isinstance(o, exp.Column) and (o.table, o.name.lower()) in keys}
        move: list[Any] = []
        for c in parts:
            nodes = list(c.walk())
            cols = [n for n in nodes if isinstance(n, exp.Column)]
            if (cols and all(isinstance(n, _KEY_ONLY) for n in nodes)
                    and all(col.table == u.alias and col.name.lower() in repl for col in cols)
                    and not any(isinstance(n, exp.In) and n.args.get("query") is not None for n in nodes)):
                move.append(c)
        if not move:
            continue
        parts = [c for c in parts if all(c is not m for m in move)]
        inner = Block(g.units, g.ljs, [*g.conds, *[_substitute(c, u.alias, repl) for c in move]], g.group, g.having,
                      g.outputs, g.out_kinds)
        units[ui] = Unit(u.alias, f"derived:{id(inner)}", u.columns, inner, None)
        changed = True
    if not changed:
        return q
    return Block(units, q.ljs, parts, q.group, q.having, q.outputs, q.out_kinds)


_IDEMPOTENT = (exp.Min, exp.Max)


def _ungroup_under_min_max(q: Block) -> Block:
    """``SELECT K, MIN(t.m) .. FROM (SELECT k, MIN(x) AS m FROM .. GROUP BY k) t, .. GROUP BY K`` ->
    the inner query without its GROUP BY (``m`` is ``x`` on each of its rows): Calcite's
    AGGREGATE_JOIN_TRANSPOSE.  Each outer group then meets the rows of the inner groups it met
    before (a group has at least one row), and the minimum of the union of those rows is the
    minimum of their minimums.  Only when every aggregate of the outer block is MIN/MAX (no
    COUNT/SUM/AVG: they would count the extra rows), the inner block's outputs are its grouping
    expressions or MIN/MAX, and the outer block reads each inner MIN only as ``MIN(t.m)`` (MAX as
    ``MAX``): never in a WHERE, an ON, a GROUP BY, a HAVING outside that aggregate.  The inner
    GROUP BY is not empty (a scalar aggregate answers a row on empty input) and has no HAVING."""
    if q.group is None:
        return q
    exprs = [*q.outputs, *([q.having] if q.having is not None else [])]
    aggs = [a for e in exprs for a in e.find_all(exp.AggFunc)]
    if any(not isinstance(a, _IDEMPOTENT) or isinstance(a.parent, exp.Filter | exp.Window) for a in aggs):
        return q
    units = list(q.units)
    changed = False
    for ui, u in enumerate(units):
        g = u.derived
        if not isinstance(g, Block) or not g.group or g.having is not None or g.ljs:
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs) or len(set(names)) != len(names):
            continue
        group_sql = {ge.sql() for ge in g.group}
        kinds: dict[str, type] = {}
        plain: list[exp.Expression] = []
        for n, o in zip(names, g.outputs, strict=True):
            if o.sql() in group_sql:
                plain.append(o)
            elif (isinstance(o, _IDEMPOTENT) and not isinstance(o.this, exp.Distinct) and o.this is not None
                  and not o.expressions and o.find(exp.Select) is None):
                kinds[n] = type(o)
                plain.append(o.this)
            else:
                break
        else:
            if not kinds:
                continue
            ok = True
            for e in [*q.conds, *q.outputs, *(q.group or []), *([q.having] if q.having is not None else []),
                      *(on for _, on in q.ljs)]:
                for c in e.find_all(exp.Column):
                    if c.table == u.alias and c.name.lower() in kinds:
                        agg: Any = c.parent
                        if not (type(agg) is kinds[c.name.lower()] and getattr(agg, "this", None) is c):
                            ok = False
            if not ok:
                continue
            inner = Block(g.units, g.ljs, g.conds, None, None, plain, g.out_kinds)
            units[ui] = Unit(u.alias, f"derived:{id(inner)}", u.columns, inner, None)
            changed = True
    if not changed:
        return q
    return Block(units, q.ljs, q.conds, q.group, q.having, q.outputs, q.out_kinds)


def _prune_derived(q: Block) -> Block:
    """Drop the columns of a derived table that the block never reads (only where dropping a
    column cannot change the row count: plain blocks and UNION ALL of them)."""
    exprs = [*q.conds, *q.outputs, *(q.group or []), *([q.having] if q.having is not None else []),
             *(on for _, on in q.ljs)]
    for u in [*q.units, *(lu for lu, _ in q.ljs)]:
        if u.derived is None:
            continue
        used = {c.name.lower() for e in exprs for c in e.find_all(exp.Column) if c.table == u.alias}
        # keep the read columns, in name order (so that both queries list them alike)
        keep = sorted((i for i, (n, _, _) in enumerate(u.columns) if n in used), key=lambda i: u.columns[i][0])
        if keep == list(range(len(u.columns))) or not keep or len({u.columns[i][0] for i in keep}) != len(keep):
            continue
        pruned = _prune_query(u.derived, keep)
        if pruned is not None:
            u.derived = pruned
            u.columns = [u.columns[i] for i in keep]
    return q


def _prune_query(q: Query, keep: list[int]) -> Query | None:
    if isinstance(q, Block):
        # the grouping (and so the number of rows) stays as it is; only outputs go
        if len(q.outputs) != len(q.out_kinds):
            return None
        return Block(q.units, q.ljs, q.conds, q.group, q.having, [q.outputs[i] for i in keep],
                     [q.out_kinds[i] for i in keep])
    if q.kind == "union" and not q.distinct:
        kids = [_prune_query(_unwrap(c), keep) for c in q.children]
        if any(k is None for k in kids):
            return None
        return SetOp("union", False, [k for k in kids if k is not None], [q.out_kinds[i] for i in keep])
    return None


def _rename_alias(e: exp.Expression, old: str, new: str) -> exp.Expression:
    """``e`` with its references to this block's ``old`` qualified by ``new`` (a subquery that
    declares ``old`` itself keeps its own: :func:`free_columns`)."""
    c = e.copy()
    for col in free_columns(c, old):
        col.set("table", exp.to_identifier(new))
    return c


_STRICT = (exp.Column, exp.Literal, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Neg, exp.EQ, exp.NEQ, exp.GT,
           exp.GTE, exp.LT, exp.LTE, exp.Cast, exp.Identifier, exp.DataType, exp.DataTypeParam)


def _null_strict(e: exp.Expression) -> bool:
    """NULL whenever its columns are NULL: operators that propagate NULL, and at least one column."""
    return e.find(exp.Column) is not None and all(isinstance(n, _STRICT) for n in e.walk())


def _merge_left_derived(q: Block) -> Block:
    """``LEFT JOIN (SELECT f(c) AS x FROM t WHERE p) d ON on(d.x)`` = ``LEFT JOIN t ON on(f(c)) AND p``
    when every f is NULL on a NULL-padded row (sqlglot's own merge ignores that hazard)."""
    for li, (u, on) in enumerate(q.ljs):
        g = u.derived
        if not isinstance(g, Block) or g.group is not None or g.ljs or len(g.units) != 1:
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs) or len(set(names)) != len(names):
            continue
        inner = g.units[0]
        outs = smt_extend.pad_guarded(g.outputs, inner, _null_strict)  # NULL on a padded row
        if outs is None or any(c.find(exp.Select) for c in g.conds):
            continue
        new_alias = f"{inner.alias}__l{next(_FRESH)}"
        repl = {n: _rename_alias(o, inner.alias, new_alias) for n, o in zip(names, outs, strict=True)}
        a = u.alias
        new_on: Any = exp.and_(_substitute(on, a, repl), *[_rename_alias(c, inner.alias, new_alias) for c in g.conds])
        ljs = [(lu, _substitute(lon, a, repl)) for lu, lon in q.ljs]
        ljs[li] = (Unit(new_alias, inner.type_key, inner.columns, inner.derived), new_on)
        merged = Block(q.units, ljs, [_substitute(c, a, repl) for c in q.conds], _subst_list(q.group, a, repl),
                       _substitute(q.having, a, repl) if q.having is not None else None,
                       [_substitute(o, a, repl) for o in q.outputs], q.out_kinds)
        return _merge_left_derived(merged)
    return q


def _merge_spj(q: Block) -> Block:
    """An inner derived table that is itself a select-project-join block (no GROUP BY, DISTINCT,
    LEFT JOIN) merges into the outer block: its tables join the outer ones, its filter joins the
    outer filter, its output expressions replace references to its columns.

    A derived table with LEFT JOINs merges only into a block that reads nothing else (one unit, no
    LEFT JOIN of its own): ``SELECT f FROM (SELECT .. FROM a LEFT JOIN b ON o WHERE p) t WHERE q``
    filters the rows of ``a LEFT JOIN b ON o`` by ``p`` and then by ``q``, which is
    ``SELECT f FROM a LEFT JOIN b ON o WHERE p AND q`` (TPC-DS q93); beside other tables the LEFT
    JOIN's place among the joins would matter."""
    for ui, u in enumerate(q.units):
        g = u.derived
        if not isinstance(g, Block) or g.group is not None or (g.ljs and (len(q.units) != 1 or q.ljs)):
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs) or len(set(names)) != len(names):
            continue
        if any(o.find(exp.Select) for o in g.outputs):
            continue  # a scalar subquery output would be copied into the outer expressions
        fresh = {gu.alias: f"{gu.alias}__m{next(_FRESH)}" for gu in [*g.units, *(lu for lu, _ in g.ljs)]}
        if len(fresh) != len(g.units) + len(g.ljs):
            continue

        def rn(e: exp.Expression, fresh: dict[str, str] = fresh) -> exp.Expression:
            for old, new in fresh.items():
                e = _rename_alias(e, old, new)
            return e

        units = [Unit(fresh[gu.alias], gu.type_key, gu.columns, gu.derived) for gu in g.units]
        g_ljs = [(Unit(fresh[lu.alias], lu.type_key, lu.columns, lu.derived), rn(on)) for lu, on in g.ljs]
        repl = {n: rn(o) for n, o in zip(names, g.outputs, strict=True)}
        a = u.alias
        merged = Block(
            [*q.units[:ui], *units, *q.units[ui + 1:]],
            [*g_ljs, *((lu, _substitute(on, a, repl)) for lu, on in q.ljs)],
            [rn(c) for c in g.conds] + [_substitute(c, a, repl) for c in q.conds],
            _subst_list(q.group, a, repl),
            _substitute(q.having, a, repl) if q.having is not None else None,
            [_substitute(o, a, repl) for o in q.outputs], q.out_kinds)
        return _merge_spj(merged)
    return q


def _merge_over_group(q: Block) -> Block:
    """``SELECT f(c) FROM (SELECT k, agg ... GROUP BY k) t WHERE p(c)`` -> one block with the outer
    filter as HAVING (it filters whole groups)."""
    if len(q.units) != 1 or q.ljs or q.group is not None or q.units[0].derived is None:
        return q
    g = _unwrap(q.units[0].derived)
    if not isinstance(g, Block) or g.group is None:
        return q
    if any(e.find(exp.Select) for e in [*q.conds, *q.outputs]):
        return q  # outer subqueries would see the inner aliases
    u = q.units[0]
    names = [n for n, _, _ in u.columns]
    if len(names) != len(g.outputs) or len(set(names)) != len(names):
        return q
    repl = dict(zip(names, g.outputs, strict=True))
    conds = [_substitute(c, u.alias, repl) for c in q.conds]
    having: Any = exp.and_(*([g.having] if g.having is not None else []), *conds) if (conds or g.having is not None) else None
    outputs = [_substitute(o, u.alias, repl) for o in q.outputs]
    for o in outputs:
        for c in o.find_all(exp.Column):
            if c.table == u.alias:
                return q
    return Block(g.units, g.ljs, g.conds, g.group, having, outputs, q.out_kinds)


_KEY_ONLY = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
             exp.Is, exp.Not, exp.And, exp.Or, exp.Paren, exp.In, exp.Between, exp.Identifier)


def _having_to_where(q: Block) -> Block:
    """A HAVING conjunct over grouping columns only keeps or drops whole groups: it may filter rows
    first.  Only comparisons of plain grouping columns and literals move (a function could tell
    apart values that GROUP BY treats as equal); never for a scalar aggregate (empty input)."""
    if not q.group or q.having is None:
        return q
    keys = {(g.table, g.name.lower()) for g in q.group if isinstance(g, exp.Column)}
    stay: list[Any] = []
    move: list[Any] = []
    for c in q.having.flatten() if isinstance(q.having, exp.And) else [q.having]:
        nodes = list(c.walk())
        cols = [n for n in nodes if isinstance(n, exp.Column)]
        if (cols and all(isinstance(n, _KEY_ONLY) for n in nodes)
                and all((col.table, col.name.lower()) in keys for col in cols)
                and not any(isinstance(n, exp.In) and n.args.get("query") is not None for n in nodes)):
            move.append(c)
        else:
            stay.append(c)
    if not move:
        return q
    having: Any = exp.and_(*stay) if stay else None
    return Block(q.units, q.ljs, [*q.conds, *move], q.group, having, q.outputs, q.out_kinds)


def _keyed_group_elimination(q: Block, catalog: Catalog) -> Block:
    """GROUP BY (or DISTINCT) over one base table whose keys include its primary key puts every
    row in a group of its own: without aggregates or HAVING it changes nothing."""
    if not q.group or q.having is not None or len(q.units) != 1 or q.ljs:
        return q
    u = q.units[0]
    if not u.type_key.startswith("table:") or any(o.find(exp.AggFunc) for o in q.outputs):
        return q
    t = catalog.table(u.type_key[6:])
    if t is None or not t.primary_key:
        return q
    keys = {g.name.lower() for g in q.group if isinstance(g, exp.Column) and g.table == u.alias}
    if not all(k.lower() in keys for k in t.primary_key):
        return q
    return Block(q.units, q.ljs, q.conds, None, None, q.outputs, q.out_kinds)


def _fk_join_elimination(q: Block, catalog: Catalog) -> Block:
    """``X JOIN D ON X.c = D.k`` with a foreign key X.c -> D.k, X.c NOT NULL and D.k D's primary key
    matches every X row with exactly one D row: when nothing else reads D, drop D."""
    changed = True
    while changed:
        changed = False
        conjs: list[Any] = [c for cond in q.conds for c in (cond.flatten() if isinstance(cond, exp.And) else [cond])]
        for di, d in enumerate(q.units):
            if not d.type_key.startswith("table:"):
                continue
            dt = catalog.table(d.type_key[6:])
            if dt is None or len(dt.primary_key) != 1:
                continue
            k = dt.primary_key[0].lower()
            for ci, c in enumerate(conjs):
                if not (isinstance(c, exp.EQ) and isinstance(c.this, exp.Column) and isinstance(c.expression, exp.Column)):
                    continue
                a, b = c.this, c.expression
                if b.table == d.alias:
                    a, b = b, a
                if a.table != d.alias or a.name.lower() != k or b.table == d.alias:
                    continue
                x = next((u for u in q.units if u.alias == b.table and u.type_key.startswith("table:")), None)
                xt = catalog.table(x.type_key[6:]) if x is not None else None
                if xt is None or not any(
                        [f.lower() for f in fk.columns] == [b.name.lower()] and fk.ref_table.lower() == dt.name.lower()
                        and [r.lower() for r in fk.ref_columns] == [k] for fk in xt.foreign_keys):
                    continue
                col = xt.column(b.name)
                if col is None or col.nullable:
                    continue
                rest = conjs[:ci] + conjs[ci + 1:]
                others = [*rest, *q.outputs, *(q.group or []), *([q.having] if q.having is not None else []),
                          *(on for _, on in q.ljs)]
                used = [n for e in others for n in e.find_all(exp.Column) if n.table == d.alias]
                if any(n.name.lower() != k for n in used):
                    continue
                repl: dict[str, exp.Expression] = {k: exp.column(b.name, table=b.table)}
                q = Block([u for j, u in enumerate(q.units) if j != di], q.ljs,
                          [_substitute(r, d.alias, repl) for r in rest], _subst_list(q.group, d.alias, repl),
                          _substitute(q.having, d.alias, repl) if q.having is not None else None,
                          [_substitute(o, d.alias, repl) for o in q.outputs], q.out_kinds)
                q.ljs = [(u, _substitute(on, d.alias, repl)) for u, on in q.ljs]
                changed = True
                break
            if changed:
                break
    return q


def _subst_list(xs: list[exp.Expression] | None, alias: str, repl: dict[str, exp.Expression]) -> list[exp.Expression] | None:
    return None if xs is None else [_substitute(x, alias, repl) for x in xs]


def _distinct_wrapper(q: Block) -> Query:
    """``SELECT c1..cn FROM (q) t GROUP BY c1..cn`` (or DISTINCT) is DISTINCT q."""
    if len(q.units) != 1 or q.ljs or q.conds or not q.group or q.having is not None or q.units[0].derived is None:
        return q
    u = q.units[0]
    names = [n for n, _, _ in u.columns]
    outs = [o.name.lower() if isinstance(o, exp.Column) and o.table == u.alias else None for o in q.outputs]
    keys = {g.name.lower() if isinstance(g, exp.Column) and g.table == u.alias else None for g in q.group}
    if outs != names or keys != set(names):
        return q
    inner = u.derived
    return SetOp("distinct", True, [inner], q.out_kinds)


def model_text(q: Query) -> str:
    """The whole model of a query as text: two queries with the same text are one model (same
    tables under the same names, same filters, joins, groups and outputs, subqueries as the same
    functions), so they return the same bag; every normalisation that led there preserves it.
    Derived tables are written out in full, base tables by name (a one-row unit that
    :func:`~sqlsluice.verifiers.smt_filter.pair_one_row_units` proved the same in both is one such
    name, as the prover also takes it)."""
    def x(e: exp.Expression | None) -> str:
        return "-" if e is None else e.sql("duckdb", comments=False)

    def unit(u: Unit) -> str:
        body = u.type_key if u.derived is None or u.type_key.startswith("table:") else "(" + model_text(u.derived) + ")"
        return f"{u.alias}:{body}:{u.columns}"

    if isinstance(q, SetOp):
        return f"{q.kind}/{q.distinct}/{q.out_kinds}[" + ";".join(model_text(c) for c in q.children) + "]"
    return "|".join([
        ",".join(unit(u) for u in q.units),
        ",".join(f"{unit(u)} ON {x(on)}" for u, on in q.ljs),
        " AND ".join(x(c) for c in q.conds),
        "-" if q.group is None else "GROUP " + ",".join(x(g) for g in q.group),
        x(q.having), ",".join(x(o) for o in q.outputs), str(q.out_kinds)])


def _strip_order(e: exp.Expression) -> exp.Expression:
    """Top-level ORDER BY without LIMIT does not change the bag of rows."""
    if e.args.get("order") is not None and not (e.args.get("limit") or e.args.get("offset") or e.args.get("fetch")):
        e = e.copy()
        e.set("order", None)
    return e


def prove(q1: exp.Expression, q2: exp.Expression, catalog: Catalog, dialect: str, *,
          timeout_s: float = 1.0) -> SMTResult:
    """Try to prove bag equivalence; never raises for unsupported input (reports it instead)."""
    deadline = time.monotonic() + timeout_s
    token = _DEADLINE.set(deadline)
    try:
        # Calcite's eager aggregation: pre-aggregated derived tables expanded back into their
        # rows (regroup.py).  When the expansion changes a query it is tried first, with half the
        # time (the plain models of such pairs are large and rarely match), then the pair as written.
        limited = any(q.args.get(k) for q in (q1, q2) for k in ("limit", "offset", "fetch"))
        # (with a top-level LIMIT the caller proves the bodies: the expansion waits for them)
        expanded = _regrouped(q1, q2, catalog) if _REGROUP.get() and not limited else None
        if expanded is None:
            return _prove(q1, q2, catalog, dialect, timeout_s, deadline)
        inner = _REGROUP.set(False)
        half = time.monotonic() + 0.5 * (deadline - time.monotonic())
        try:
            try:  # expanded, the two often are one query written twice: one canonical form
                safe = outer_join_hazard(*expanded)
                if (canonical_sql(expanded[0], catalog, dialect, safe=safe)
                        == canonical_sql(expanded[1], catalog, dialect, safe=safe)):
                    return SMTResult(True, "pre-aggregated derived tables expanded (regroup): same canonical form")
            except CanonicalError:
                pass
            again = _prove(expanded[0], expanded[1], catalog, dialect, half - time.monotonic(), half)
        finally:
            _REGROUP.reset(inner)
        if again.proved:
            return SMTResult(True, f"pre-aggregated derived tables expanded (regroup): {again.reason}")
        res = _prove(q1, q2, catalog, dialect, deadline - time.monotonic(), deadline)
        if res.proved:
            return res
        return SMTResult(False, f"{res.reason}; pre-aggregated derived tables expanded: {again.reason}")
    finally:
        _DEADLINE.reset(token)


def _regrouped(q1: exp.Expression, q2: exp.Expression, catalog: Catalog
               ) -> tuple[exp.Expression, exp.Expression] | None:
    from sqlsluice.verifiers.regroup import expand_regrouped

    try:
        x1, x2 = expand_regrouped(q1, catalog), expand_regrouped(q2, catalog)
    except Exception:  # an input the expansion does not understand: no expanded attempt
        logging.getLogger(__name__).exception("regroup expansion failed")
        return None
    if x1 is None and x2 is None:
        return None
    return (x1 if x1 is not None else q1), (x2 if x2 is not None else q2)


# the regroup expansion is tried once per proof, not again inside its own second attempt
_REGROUP: contextvars.ContextVar[bool] = contextvars.ContextVar("smt_regroup", default=True)


def _prove(q1: exp.Expression, q2: exp.Expression, catalog: Catalog, dialect: str, timeout_s: float,
           deadline: float) -> SMTResult:
    try:
        top = smt_extend.top_proof(q1, q2, catalog, dialect, timeout_s)  # ORDER BY .. LIMIT/OFFSET on both
        if top is not None:
            return top
        from sqlsluice.verifiers.smt_filter import one_row_limit  # LIMIT n >= 1 of one row: no LIMIT

        q1, q2 = one_row_limit(q1), one_row_limit(q2)
        if any(q.args.get(k) for q in (q1, q2) for k in ("limit", "offset", "fetch")):
            raise Outside("LIMIT/OFFSET")  # before the optimizer: the model has no LIMIT (see Builder.query)
        safe = outer_join_hazard(q1, q2)
        o1 = _strip_order(optimized(q1, catalog, dialect, safe=safe))
        o2 = _strip_order(optimized(q2, catalog, dialect, safe=safe))
        o1, o2 = smt_extend.simplify_outer_joins(o1), smt_extend.simplify_outer_joins(o2)  # FULL/RIGHT -> LEFT/INNER
        b = Builder(catalog)
        m1, m2 = normalize(b.query(o1), catalog), normalize(b.query(o2), catalog)
        from sqlsluice.verifiers.smt_filter import pair_one_row_units  # one-row aggregates proved alike

        pair_one_row_units(m1, m2, catalog, dialect == "duckdb")
        if model_text(m1) == model_text(m2):  # one model: nothing left for z3 to compare
            return SMTResult(True, "proved: both queries normalise to the same model")
        ok = Prover(deadline, frozenset(t.name.lower() for t in catalog.tables),
                    binary_strings=dialect == "duckdb", catalog=catalog).equiv(m1, m2)
        if not ok:  # aggregate normal forms: a second model of both queries (smt_aggregates)
            from sqlsluice.verifiers.smt_aggregates import second_chance
            ok = second_chance(o1, o2, catalog, deadline, dialect == "duckdb")
    except CanonicalError as e:
        return SMTResult(False, f"not applicable: {e}")
    except Outside as e:
        return SMTResult(False, f"outside fragment: {e}")
    except TimeoutError:
        return SMTResult(False, "timed out")
    except (z3.Z3Exception, RecursionError) as e:
        return SMTResult(False, f"outside fragment: z3 could not encode ({type(e).__name__}: {str(e)[:80]})")
    if ok:
        return SMTResult(True, "proved by z3 (bijection of table instances, 3-valued logic)")
    return SMTResult(False, "no proof found")
