"""Semi-join normal form for the SMT tier: subqueries, semi-joins and keys.

IR-level rewrites, each exact under SQL bag semantics with NULLs (three-valued logic,
duplicates, empty inputs), applied by :func:`semijoin_normal_form` from ``smt.normalize``:

* ``subqueries_to_exists``: ``x IN (SELECT y FROM b)`` and ``EXISTS (SELECT .. FROM b)`` become
  EXISTS predicates with a *canonical* body text (aliases renamed, conjuncts oriented and sorted,
  select list dropped), so that both queries reach the same uninterpreted function.
  IN keeps its exact three-valued meaning: TRUE when some row matches; NULL when none matches and
  ``x`` is NULL (over a non-empty ``b``) or some ``y`` is NULL; FALSE otherwise.  Where only TRUE
  matters (under AND/OR of a WHERE/ON conjunct, or a CASE WHEN condition) it is just the EXISTS.
* ``marker_joins_to_exists``: ``LEFT JOIN (SELECT y, TRUE AS i FROM b ...) t ON x = t.y`` whose
  derived table is duplicate-free on the ON's equi-join columns (GROUP BY / DISTINCT on them, or a
  key of a base table among them) and whose columns are read only as constant markers (``t.i``):
  every left row meets at most one right row, so the join keeps the row count and ``t.i`` is
  ``CASE WHEN EXISTS (SELECT 1 FROM b WHERE on) THEN TRUE END``.
  Calcite's NOT IN counters (``t.c = 0``, ``t.ck < t.c`` over COUNT(*) / COUNT(y)) are folded too.
* ``key_self_join_elimination``: ``X JOIN X2 ON X.k = X2.k`` over the same base table, ``k`` a
  primary key (or a UNIQUE set of NOT NULL columns): each X row meets exactly itself, so X2 is X.
* ``own_group_units``: ``T o JOIN (SELECT c FROM T GROUP BY c) u ON o.c = u.c`` (no filter, c NOT
  NULL): every row meets its own group once, so u goes.
* ``single_row_units_to_exists``: an inner-joined derived table with at most one row (GROUP BY
  constants) is the conjunct ``EXISTS (its body)``.
* ``key_self_semijoin_elimination``: ``EXISTS (SELECT 1 FROM T e WHERE e.k = o.k AND p(e))`` with
  ``o`` a row of T and ``k`` a key is ``p(o) IS TRUE``; an uncorrelated ``EXISTS (T e WHERE p(e))``
  gets the implied disjuncts ``p(o) IS TRUE`` for each in-scope row ``o`` of T.

Each function checks its precondition and returns its input unchanged when it does not hold.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import smt
from sqlsluice.verifiers.smt import Block, Outside, Query, Unit

_CONST = (exp.Literal, exp.Boolean)


def semijoin_normal_form(q: Block, catalog: Catalog) -> Block:
    """The hook called by ``smt.normalize`` on every (already normalized) block.  Each step is an
    optional normal form: when one cannot handle a tree (an unexpected node shape) the block goes
    on as it was, which only costs a proof, never soundness."""
    from sqlsluice.verifiers import smt_union

    for step in (smt_union.left_join_key_removal, smt_union.constant_having_to_where, smt_union.intersect_units,
                 key_self_join_elimination, own_group_units, single_row_units_to_exists, marker_joins_to_exists,
                 subqueries_to_exists, key_self_semijoin_elimination):
        try:
            q = step(q, catalog)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, SqlglotError):
            continue
    return q


# ---------------------------------------------------------------------------------------------
# canonical EXISTS bodies
# ---------------------------------------------------------------------------------------------

def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return [*_conjuncts(e.this), *_conjuncts(e.expression)]
    return [e]


def _mask(e: exp.Expression, inner: set[str]) -> str:
    """Text of ``e`` with every outer column reference replaced by one placeholder."""
    def sub(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.table not in inner:
            return exp.column("__o", table="__o")
        return n

    return e.copy().transform(sub, copy=False).sql("duckdb")


def _orient(c: exp.Expression, inner: set[str]) -> exp.Expression:
    """``a = b`` and ``a <> b`` with their operands in a fixed order (the masked text decides)."""
    if isinstance(c, exp.EQ | exp.NEQ | exp.NullSafeEQ):
        a, b = c.this, c.expression
        if (_mask(a, inner), a.sql("duckdb")) > (_mask(b, inner), b.sql("duckdb")):
            return type(c)(this=b.copy(), expression=a.copy())
    return c


def canonical_exists(body: Query, extra: list[exp.Expression]) -> exp.Exists | None:
    """``EXISTS (SELECT 1 FROM <body's tables> WHERE <body's filter> AND <extra>)`` in a canonical
    text, or None when the body is not a plain block of base tables.

    Precondition (checked): ``body`` is a Block whose units are base tables, without LEFT JOIN,
    HAVING, or a scalar aggregate (``GROUP BY ()`` answers one row even for an empty input); a
    non-empty GROUP BY does not change whether a row exists.  Every column is qualified; columns
    of other aliases are outer references (they become the arguments of the uninterpreted
    function the SMT tier makes of the EXISTS)."""
    body = smt._unwrap(body)
    if not isinstance(body, Block) or body.ljs or body.having is not None:
        return None
    if body.group is not None and not body.group:
        return None
    if not body.units or not all(u.type_key.startswith("table:") for u in body.units):
        return None
    conds: list[exp.Expression] = [c for e in [*body.conds, *extra] for c in _conjuncts(e)
                                   if not (isinstance(c, exp.Boolean) and c.this is True)]
    if any(c.find(exp.Select, exp.AggFunc, exp.Window) for c in conds):
        return None
    if any(not col.table for c in conds for col in c.find_all(exp.Column)):
        return None
    aliases = [u.alias for u in body.units]
    if len(set(aliases)) != len(aliases):
        return None
    inner = set(aliases)

    def unit_key(u: Unit) -> tuple[str, list[str]]:
        texts = []
        for c in conds:
            if any(col.table == u.alias for col in c.find_all(exp.Column)):
                texts.append(_mask(_rename_all(c, {u.alias: "__self", **{a: "__other" for a in inner - {u.alias}}}),
                                   inner | {"__self", "__other"}))
        return u.type_key, sorted(texts)

    order = sorted(body.units, key=unit_key)
    names = {u.alias: f"_e{i}" for i, u in enumerate(order)}
    new_inner = set(names.values())
    if any(col.table in new_inner and col.table not in inner for c in conds for col in c.find_all(exp.Column)):
        return None  # an outer alias spelled like a canonical inner one would be captured
    renamed = [_orient(_rename_all(c, names), new_inner) for c in conds]
    seen: dict[str, exp.Expression] = {}
    for c in sorted(renamed, key=lambda c: (_mask(c, new_inner), c.sql("duckdb"))):
        seen.setdefault(c.sql("duckdb"), c)
    tables = [exp.alias_(exp.to_table(u.type_key[6:]), names[u.alias], table=True) for u in order]
    sel = exp.select("1").from_(tables[0])
    for t in tables[1:]:
        sel = sel.join(t, join_type="cross")
    if seen:
        sel = sel.where(exp.and_(*seen.values()))
    return exp.Exists(this=sel)


def _rename_all(e: exp.Expression, names: dict[str, str]) -> exp.Expression:
    def ren(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.table in names:
            n = n.copy()
            n.set("table", exp.to_identifier(names[n.table]))
        return n

    return e.copy().transform(ren, copy=False)


def _fresh(body: Query | None) -> Block | None:
    """``body`` (a plain block) with its table aliases renamed apart: a subquery may reuse an
    alias of the enclosing query (``FROM emp WHERE emp.x IN (SELECT .. FROM emp ..)``), where its
    own alias shadows the outer one; after renaming, the outer values cannot be captured."""
    body = smt._unwrap(body) if body is not None else None
    if not isinstance(body, Block) or body.ljs or body.having is not None:
        return None
    if any(e.find(exp.Select) for e in [*body.conds, *body.outputs, *(body.group or [])]):
        return None
    names = {u.alias: f"{u.alias}__s{next(smt._FRESH)}" for u in body.units}
    if len(names) != len(body.units):
        return None
    units = [Unit(names[u.alias], u.type_key, u.columns, u.derived) for u in body.units]
    return Block(units, [], [_rename_all(c, names) for c in body.conds],
                 None if body.group is None else [_rename_all(g, names) for g in body.group], None,
                 [_rename_all(o, names) for o in body.outputs], body.out_kinds)


def _body(sel: exp.Expression, catalog: Catalog) -> Query | None:
    """The normalized model of a subquery's SELECT (None when outside the fragment)."""
    try:
        return smt.normalize(smt.Builder(catalog).query(sel), catalog)
    except (Outside, RecursionError):
        return None


# ---------------------------------------------------------------------------------------------
# IN / EXISTS subqueries -> canonical EXISTS
# ---------------------------------------------------------------------------------------------

def _nonnull(e: exp.Expression, units: list[Unit]) -> bool:
    """``e`` is never NULL: a NOT NULL column of one of ``units`` (inner-joined base tables), a
    non-NULL literal, or +,-,* of such."""
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, _CONST):
        return True
    if isinstance(e, exp.Column):
        for u in units:
            if u.alias == e.table and u.type_key.startswith("table:"):
                return any(n == e.name.lower() and not nullable for n, _, nullable in u.columns)
        return False
    if isinstance(e, exp.Add | exp.Sub | exp.Mul):
        return _nonnull(e.this, units) and _nonnull(e.expression, units)
    return False


def _in_to_exists(e: exp.In, positive: bool, outer_units: list[Unit], catalog: Catalog) -> exp.Expression | None:
    q = e.args.get("query")
    sel = q.this if isinstance(q, exp.Subquery) else q
    if not isinstance(sel, exp.Select):
        return None
    lhs = e.this
    while isinstance(lhs, exp.Paren):
        lhs = lhs.this
    xs = list(lhs.expressions) if isinstance(lhs, exp.Tuple) else [lhs]
    if len(xs) != len(sel.expressions) or any(x.find(exp.Select) for x in xs):
        return None
    body = _fresh(_body(sel, catalog))
    if body is None or len(body.outputs) != len(xs):
        return None
    inner = {u.alias for u in body.units}
    if any(col.table in inner or not col.table for x in xs for col in x.find_all(exp.Column)):
        return None  # an outer value that would be read as an inner column
    ys = body.outputs
    if any(y.find(exp.AggFunc, exp.Select, exp.Window) for y in ys):
        return None
    if body.group and not {y.sql("duckdb") for y in ys} <= {g.sql("duckdb") for g in body.group}:
        return None  # a grouped subquery's value must be a grouping key (one value per group)
    match = canonical_exists(body, [exp.EQ(this=y.copy(), expression=x.copy()) for x, y in zip(xs, ys, strict=True)])
    if match is None:
        return None
    x_nn = all(_nonnull(x, outer_units) for x in xs)
    y_nn = all(_nonnull(y, body.units) for y in ys) and not body.ljs
    if positive or (x_nn and y_nn):
        return match
    if len(xs) != 1:
        return None  # row-valued IN with NULLs: not modelled
    unknown: list[Any] = []
    if not x_nn:
        nonempty = canonical_exists(body, [])
        if nonempty is None:
            return None
        unknown.append(exp.and_(exp.Is(this=xs[0].copy(), expression=exp.Null()), nonempty))
    if not y_nn:
        some_null = canonical_exists(body, [exp.Is(this=ys[0].copy(), expression=exp.Null())])
        if some_null is None:
            return None
        unknown.append(some_null)
    return exp.Case(ifs=[exp.If(this=match, true=exp.true()),
                         exp.If(this=exp.or_(*unknown), true=exp.Null())], default=exp.false())


def _exists_to_canonical(e: exp.Exists, catalog: Catalog) -> exp.Expression | None:
    sel = e.this
    if not isinstance(sel, exp.Select):
        return None
    body = _fresh(_body(sel, catalog))
    return canonical_exists(body, []) if body is not None else None


def _rewrite(e: exp.Expression, positive: bool, units: list[Unit], catalog: Catalog) -> exp.Expression:
    """Rewrite the IN/EXISTS subqueries of ``e``; ``positive``: only TRUE of ``e`` matters."""
    if isinstance(e, exp.In) and e.args.get("query") is not None:
        from sqlsluice.verifiers.smt_union import in_union_to_or

        split = in_union_to_or(e)  # x IN (A UNION B) = x IN (A) OR x IN (B)
        if split is not None:
            return _rewrite(split, positive, units, catalog)
        r = _in_to_exists(e, positive, units, catalog)
        return r if r is not None else e
    if isinstance(e, exp.Exists):
        r = _exists_to_canonical(e, catalog)
        return r if r is not None else e
    if isinstance(e, exp.Select):
        return e  # a scalar subquery: left to the uninterpreted-function encoding as it is
    for key, arg in list(e.args.items()):
        if isinstance(e, exp.And | exp.Or | exp.Paren):
            pos = positive
        elif isinstance(e, exp.If) and key == "this":
            pos = True  # CASE WHEN c: the branch is taken iff c is TRUE
        else:
            pos = False
        if isinstance(arg, exp.Expression):
            new = _rewrite(arg, pos, units, catalog)
            if new is not arg:
                e.set(key, new)
        elif isinstance(arg, list):
            items = [_rewrite(a, pos, units, catalog) if isinstance(a, exp.Expression) else a for a in arg]
            if any(n is not o for n, o in zip(items, arg, strict=True)):
                e.set(key, items)
    return e


def _has_subquery_pred(e: exp.Expression) -> bool:
    return any(isinstance(n, exp.Exists) or (isinstance(n, exp.In) and n.args.get("query") is not None)
               for n in e.walk())


def subqueries_to_exists(q: Block, catalog: Catalog) -> Block:
    """IN/EXISTS subqueries in WHERE, ON and the select list -> canonical EXISTS (see module doc).
    In a grouped block only WHERE and ON (evaluated per row before grouping, as in any block); not
    its select list, GROUP BY or HAVING (read per group)."""
    conds = [_rewrite(c.copy(), True, q.units, catalog) if _has_subquery_pred(c) else c for c in q.conds]
    outputs = [_rewrite(o.copy(), False, q.units, catalog) if _has_subquery_pred(o) and q.group is None else o
               for o in q.outputs]
    ljs = [(u, _rewrite(on.copy(), True, q.units, catalog) if _has_subquery_pred(on) else on) for u, on in q.ljs]
    return Block(q.units, ljs, conds, q.group, q.having, outputs, q.out_kinds)


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

def table_keys(catalog: Catalog, table: str) -> list[list[str]]:
    """Column sets (lower case) no two rows of ``table`` share with non-NULL values: the primary
    key and each UNIQUE set."""
    t = catalog.table(table)
    if t is None:
        return []
    keys = [[c.lower() for c in t.primary_key]] if t.primary_key else []
    keys.extend([c.lower() for c in u] for u in t.unique if u)
    return keys


def output_keys(q: Query, names: list[str], catalog: Catalog) -> list[set[str]]:
    """Sets of output names (``names``, by position) on which ``q`` has no two rows with equal
    non-NULL values.  GROUP BY: the grouping outputs (constants dropped; all-constant keys: at
    most one row, the empty set); DISTINCT: all outputs; a plain block: for every base table a
    key of it among the outputs."""
    q = smt._unwrap(q)
    if isinstance(q, smt.SetOp):
        if q.kind == "distinct" and len(q.out_kinds) == len(names):
            return [set(names)]
        return []
    if len(q.outputs) != len(names) or q.ljs:
        return []
    if q.group:
        texts = {o.sql("duckdb"): n for o, n in zip(q.outputs, names, strict=True)}
        key: set[str] = set()
        for g in q.group:
            if isinstance(g, _CONST):
                continue
            n = texts.get(g.sql("duckdb"))
            if n is None:
                return []
            key.add(n)
        return [key]
    if q.group is not None:
        return [set()]  # a scalar aggregate: exactly one row
    key = set()
    for u in q.units:
        if not u.type_key.startswith("table:"):
            return []
        found = None
        for k in table_keys(catalog, u.type_key[6:]):
            cols: dict[str, str] = {}
            for o, n in zip(q.outputs, names, strict=True):
                if isinstance(o, exp.Column) and o.table == u.alias:
                    cols.setdefault(o.name.lower(), n)
            if all(c in cols for c in k):
                found = {cols[c] for c in k}
                break
        if found is None:
            return []
        key |= found
    return [key]


# ---------------------------------------------------------------------------------------------
# LEFT JOIN markers -> EXISTS
# ---------------------------------------------------------------------------------------------

def _null_rejecting_use(c: exp.Expression, alias: str) -> bool:
    """A top-level conjunct that is never TRUE on a NULL-padded row of ``alias``: such a LEFT JOIN
    is an inner join, which the prover handles (it must stay a join on both sides)."""
    if isinstance(c, exp.Not) and isinstance(c.this, exp.Is) and isinstance(c.this.expression, exp.Null):
        x = c.this.this
        return isinstance(x, exp.Column) and x.table == alias
    if isinstance(c, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
        return any(isinstance(x, exp.Column) and x.table == alias for x in (c.this, c.expression))
    return False


def marker_joins_to_exists(q: Block, catalog: Catalog) -> Block:
    """``LEFT JOIN d t ON on`` -> ``CASE WHEN EXISTS (d's rows satisfying on) THEN lit END`` for
    each read of a constant column ``t.c`` (``lit`` its value), when (checked): the block has no
    GROUP BY/HAVING; ``d`` is a plain block of base tables; ``on`` equates, for a key K of ``d``,
    every column of K with an expression free of ``t``; and the block reads ``t`` only through
    columns that ``d`` outputs as non-NULL literals, or through Calcite's NOT IN counters (see
    :func:`_count_pred`).  Then each left row meets at most one row of ``d`` (no duplicates),
    keeps exactly one output row, and ``t.c`` is ``lit`` iff it met one."""
    if q.group is not None or q.having is not None:
        return q
    for li, (u, on) in enumerate(q.ljs):
        d = _fresh(u.derived)
        if d is None:
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(d.outputs) or len(set(names)) != len(names):
            continue
        out = dict(zip(names, d.outputs, strict=True))
        if any(not isinstance(c, exp.Column) or not c.table for c in on.find_all(exp.Column)):
            continue
        # the ON, with t's columns replaced by d's output expressions
        if any(c.table == u.alias and (c.name.lower() not in out or out[c.name.lower()].find(exp.AggFunc, exp.Window))
               for c in on.find_all(exp.Column)):
            continue
        outer_aliases = {x.alias for x in q.units} | {lu.alias for lu, _ in q.ljs}
        if {x.alias for x in d.units} & outer_aliases:
            continue
        if any(c.table not in outer_aliases for c in on.find_all(exp.Column)):
            continue  # a reference to an enclosing query could meet an alias of d
        eq_cols: set[str] = set()
        for c in _conjuncts(on):
            if isinstance(c, exp.EQ):
                for a, b in ((c.this, c.expression), (c.expression, c.this)):
                    if (isinstance(a, exp.Column) and a.table == u.alias
                            and not any(x.table == u.alias for x in b.find_all(exp.Column)) and not b.find(exp.Select)):
                        eq_cols.add(a.name.lower())
        if not any(k <= eq_cols for k in output_keys(d, names, catalog)):
            continue
        if any(_null_rejecting_use(c, u.alias) for cond in q.conds for c in _conjuncts(cond)):
            continue
        if u.alias in _declared(q):
            continue  # a subquery of the block declares the same alias: substitution could hit it
        on_d = smt._substitute(on, u.alias, out)
        ex = canonical_exists(d, [on_d])
        if ex is None:
            continue
        counts = _count_patterns(d, names, on, u.alias, on_d)

        markers: dict[str, exp.Expression] = {n: exp.Case(ifs=[exp.If(this=ex.copy(), true=o.copy())])
                                              for n, o in out.items() if isinstance(o, _CONST)}

        def fold(e: exp.Expression, ex: exp.Expression = ex, counts: Any = counts, alias: str = u.alias,
                 markers: dict[str, exp.Expression] = markers) -> exp.Expression:
            if counts is not None:
                e = e.copy().transform(lambda node: _count_pred(node, alias, counts, ex), copy=False)
            return smt._substitute(e, alias, markers)

        conds = [fold(c) for c in q.conds]
        outputs = [fold(o) for o in q.outputs]
        later = [(lu, fold(lon)) for lu, lon in q.ljs[li + 1:]]
        if any(c.table == u.alias for e in [*conds, *outputs, *(lon for _, lon in later)] for c in e.find_all(exp.Column)):
            continue  # t is read through a column that is not a marker
        if conds == q.conds and outputs == q.outputs and all(a[1] == b[1] for a, b in zip(later, q.ljs[li + 1:], strict=True)):
            continue  # t is not read at all
        q = Block(q.units, [*q.ljs[:li], *later], conds, q.group, q.having, outputs, q.out_kinds)
        return marker_joins_to_exists(q, catalog)
    return q


def _count_patterns(d: Block, names: list[str], on: exp.Expression, alias: str,
                    on_d: exp.Expression) -> tuple[set[str], dict[str, exp.Expression]] | None:
    """For a grouped ``d`` whose every non-constant grouping output is equated by ``on`` (and ``on``
    is nothing else): the columns holding COUNT(*), and for each column holding COUNT(y) the
    EXISTS of a matched row with ``y`` NULL (FALSE when ``y`` is NOT NULL)."""
    if not d.group:
        return None
    out = dict(zip(names, d.outputs, strict=True))
    texts = {o.sql("duckdb"): n for n, o in out.items()}
    keys = {texts.get(g.sql("duckdb")) for g in d.group if not isinstance(g, _CONST)}
    if None in keys:
        return None
    eqs: set[str] = set()
    for c in _conjuncts(on):
        if not isinstance(c, exp.EQ):
            return None
        sides = [x for x in (c.this, c.expression) if isinstance(x, exp.Column) and x.table == alias]
        if len(sides) != 1 or any(x.table == alias for x in (c.this if sides[0] is c.expression else c.expression)
                                  .find_all(exp.Column)):
            return None
        eqs.add(sides[0].name.lower())
    if keys != eqs:
        return None
    star: set[str] = set()
    nulls: dict[str, exp.Expression] = {}
    for n, o in out.items():
        if not isinstance(o, exp.Count):
            continue
        arg = o.this
        if arg is None or isinstance(arg, exp.Star):
            star.add(n)
            nulls[n] = exp.false()  # COUNT(*) counts every row: COUNT(*) < COUNT(*) is FALSE
        elif not isinstance(arg, exp.Distinct) and not o.expressions:
            if _nonnull(arg, d.units):
                nulls[n] = exp.false()
            else:
                ex = canonical_exists(d, [on_d, exp.Is(this=arg.copy(), expression=exp.Null())])
                if ex is not None:
                    nulls[n] = ex
    return star, nulls


def _count_pred(n: exp.Expression, alias: str, counts: tuple[set[str], dict[str, exp.Expression]],
                ex: exp.Expression) -> exp.Expression:
    """On a row of the LEFT JOIN (matched: a non-empty group; padded: NULL counters):
    ``t.c = 0`` with c COUNT(*) is FALSE or NULL: ``CASE WHEN match THEN FALSE END``;
    ``t.ck < t.c`` (ck COUNT(y)) holds iff the group has a NULL y: ``CASE WHEN match THEN
    EXISTS(.. AND y IS NULL) END``."""
    star, nulls = counts

    def col(x: exp.Expression, names: Any) -> str | None:
        return x.name.lower() if isinstance(x, exp.Column) and x.table == alias and x.name.lower() in names else None

    if isinstance(n, exp.EQ):
        for a, b in ((n.this, n.expression), (n.expression, n.this)):
            if col(a, star) and isinstance(b, exp.Literal) and not b.is_string and b.this == "0":
                return exp.Case(ifs=[exp.If(this=ex.copy(), true=exp.false())])
    if isinstance(n, exp.LT | exp.GT):
        lo, hi = (n.this, n.expression) if isinstance(n, exp.LT) else (n.expression, n.this)
        ck = col(lo, nulls)
        if ck and col(hi, star):
            return exp.Case(ifs=[exp.If(this=ex.copy(), true=nulls[ck].copy())])
    return n


# ---------------------------------------------------------------------------------------------
# self-join elimination by key
# ---------------------------------------------------------------------------------------------

def _non_null_keys(catalog: Catalog, table: str) -> list[list[str]]:
    t = catalog.table(table)
    if t is None:
        return []
    out = []
    for k in table_keys(catalog, table):
        cols = [t.column(c) for c in k]
        if k and all(c is not None and (not c.nullable or c.name.lower() in
                                        {p.lower() for p in t.primary_key}) for c in cols):
            out.append(k)
    return out


def key_self_join_elimination(q: Block, catalog: Catalog) -> Block:
    """``X JOIN X2 ON X.k1 = X2.k1 AND ..`` (inner, same base table, ``k`` a key of NOT NULL
    columns, every key column equated as a top-level WHERE/ON conjunct): the only X2 row that
    matches an X row is that row itself (a keyed table holds no duplicates), so X2's columns are
    X's and X2 goes.  Not when X2 is inside a LEFT JOIN (only inner units are considered)."""
    conjs: list[exp.Expression] = [c for cond in q.conds for c in _conjuncts(cond)]
    exprs: list[Any] = [*q.conds, *q.outputs, *(q.group or []), *(on for _, on in q.ljs),
                        *([q.having] if q.having is not None else [])]
    # aliases a subquery declares itself: substituting X2's columns there could hit a shadowing alias
    shadowed = {a.name for e in exprs for s in e.find_all(exp.Select) for a in s.find_all(exp.TableAlias)}
    for i, x in enumerate(q.units):
        if not x.type_key.startswith("table:"):
            continue
        for j, x2 in enumerate(q.units):
            if j == i or x2.type_key != x.type_key or x2.alias == x.alias or x2.alias in shadowed:
                continue
            for k in _non_null_keys(catalog, x.type_key[6:]):
                used: list[int] = []
                for col in k:
                    for ci, c in enumerate(conjs):
                        if (isinstance(c, exp.EQ) and isinstance(c.this, exp.Column)
                                and isinstance(c.expression, exp.Column)
                                and {(c.this.table, c.this.name.lower()), (c.expression.table, c.expression.name.lower())}
                                == {(x.alias, col), (x2.alias, col)}):
                            used.append(ci)
                            break
                    else:
                        break
                else:
                    repl: dict[str, exp.Expression] = {n: exp.column(n, table=x.alias) for n, _, _ in x2.columns}
                    rest = [c for ci, c in enumerate(conjs) if ci not in used]
                    sub = smt._substitute
                    q2 = Block([u for n, u in enumerate(q.units) if n != j],
                               [(lu, sub(on, x2.alias, repl)) for lu, on in q.ljs],
                               [sub(c, x2.alias, repl) for c in rest],
                               smt._subst_list(q.group, x2.alias, repl),
                               sub(q.having, x2.alias, repl) if q.having is not None else None,
                               [sub(o, x2.alias, repl) for o in q.outputs], q.out_kinds)
                    if _reads_alias(q2, x2.alias):
                        continue
                    return key_self_join_elimination(q2, catalog)
    return q


def _reads_alias(q: Block, alias: str) -> bool:
    exprs: list[Any] = [*q.conds, *q.outputs, *(q.group or []), *(on for _, on in q.ljs),
                        *([q.having] if q.having is not None else [])]
    return any(c.table == alias for e in exprs for c in e.find_all(exp.Column))


# ---------------------------------------------------------------------------------------------
# at most one row: inner-joined derived tables; EXISTS over the same row
# ---------------------------------------------------------------------------------------------

def _declared(q: Block) -> set[str]:
    """Table aliases declared inside the subqueries of the block's expressions."""
    return {a.name for e in _block_exprs(q) for sel in e.find_all(exp.Select) for a in sel.find_all(exp.TableAlias)}


def _block_exprs(q: Block) -> list[Any]:
    return [*q.conds, *q.outputs, *(q.group or []), *(on for _, on in q.ljs),
            *([q.having] if q.having is not None else [])]


def single_row_units_to_exists(q: Block, catalog: Catalog) -> Block:
    """An inner-joined derived table with at most one row (GROUP BY constants only, no HAVING)
    whose columns are read only where it outputs a literal: joining it keeps every row once if
    it has its row and none otherwise, i.e. it is the conjunct ``EXISTS (its body)`` and its
    columns are those literals.  A scalar aggregate (exactly one row) read nowhere is dropped."""
    for ui, u in enumerate(q.units):
        if u.derived is None:
            continue
        body = smt._unwrap(u.derived)
        names = [n for n, _, _ in u.columns]
        if not isinstance(body, Block) or len(names) != len(body.outputs) or len(set(names)) != len(names):
            continue
        reads = [c for e in _block_exprs(q) for c in e.find_all(exp.Column) if c.table == u.alias]
        if body.group is not None and not body.group and body.having is None and not reads:
            return single_row_units_to_exists(
                Block([x for j, x in enumerate(q.units) if j != ui], q.ljs, q.conds, q.group, q.having, q.outputs,
                      q.out_kinds), catalog)
        d = _fresh(body)
        if d is None or set() not in output_keys(d, names, catalog):
            continue
        out = dict(zip(names, d.outputs, strict=True))
        if any(not isinstance(out.get(c.name.lower()), _CONST) for c in reads) or (reads and u.alias in _declared(q)):
            continue
        ex = canonical_exists(d, [])
        if ex is None:
            continue
        repl: dict[str, exp.Expression] = {n: o for n, o in out.items() if isinstance(o, _CONST)}
        sub = smt._substitute
        q2 = Block([x for j, x in enumerate(q.units) if j != ui], [(lu, sub(on, u.alias, repl)) for lu, on in q.ljs],
                   [*(sub(c, u.alias, repl) for c in q.conds), ex], smt._subst_list(q.group, u.alias, repl),
                   sub(q.having, u.alias, repl) if q.having is not None else None,
                   [sub(o, u.alias, repl) for o in q.outputs], q.out_kinds)
        return single_row_units_to_exists(q2, catalog)
    return q


def own_group_units(q: Block, catalog: Catalog) -> Block:
    """``T o JOIN (SELECT c1.. FROM T e GROUP BY c1..) u ON o.c1 = u.c1 AND ..`` (no filter in u,
    every grouping column equated with the same column of the same row ``o``, each NOT NULL, u
    read nowhere else): every row o meets exactly one group, its own, so u goes."""
    conjs: list[exp.Expression] = [c for cond in q.conds for c in _conjuncts(cond)]
    for ui, u in enumerate(q.units):
        d = _fresh(u.derived) if u.derived is not None else None
        names = [n for n, _, _ in u.columns]
        if d is None or d.conds or not d.group or len(d.units) != 1 or len(names) != len(d.outputs):
            continue
        e = d.units[0]
        t = catalog.table(e.type_key[6:]) if e.type_key.startswith("table:") else None
        if t is None or not all(isinstance(g, exp.Column) and g.table == e.alias for g in d.group):
            continue
        out = dict(zip(names, d.outputs, strict=True))
        used: list[int] = []
        owners: set[str] = set()
        for ci, c in enumerate(conjs):
            if not isinstance(c, exp.EQ):
                continue
            for a, b in ((c.this, c.expression), (c.expression, c.this)):
                if not (isinstance(a, exp.Column) and a.table == u.alias and isinstance(b, exp.Column)):
                    continue
                o = next((x for x in q.units if x.alias == b.table and x.type_key == e.type_key), None)
                src = out.get(a.name.lower())
                col = t.column(b.name)
                if (o is not None and isinstance(src, exp.Column) and src.table == e.alias
                        and src.name.lower() == b.name.lower() and col is not None and not col.nullable):
                    used.append(ci)
                    owners.add(o.alias)
                    break
        covered = {out[c.this.name.lower() if c.this.table == u.alias else c.expression.name.lower()].sql("duckdb")
                   for c in (conjs[i] for i in used)}
        if len(owners) != 1 or covered != {g.sql("duckdb") for g in d.group}:
            continue
        rest = [c for ci, c in enumerate(conjs) if ci not in used]
        q2 = Block([x for j, x in enumerate(q.units) if j != ui], q.ljs, rest, q.group, q.having, q.outputs,
                   q.out_kinds)
        if _reads_alias(q2, u.alias):
            continue
        return own_group_units(q2, catalog)
    return q


def key_self_semijoin_elimination(q: Block, catalog: Catalog) -> Block:
    """``EXISTS (SELECT 1 FROM T AS e WHERE e.k = o.k AND p(e))`` with ``o`` an inner-joined unit
    of the same base table T and ``k`` a key of NOT NULL columns: the only row ``e`` can be is
    ``o``'s own, so the EXISTS is ``p(o) IS TRUE`` (TRUE when ``p`` is empty)."""
    units = {u.alias: u for u in q.units if u.type_key.startswith("table:")}
    if not units:
        return q

    def fold(n: exp.Expression) -> exp.Expression:
        if not isinstance(n, exp.Exists) or not isinstance(n.this, exp.Select):
            return n
        if n.find_ancestor(exp.Select) is not None:
            return n  # inside another subquery, whose own aliases could shadow the block's
        sel = n.this
        frm = sel.args.get("from_") or sel.args.get("from")
        if frm is None or sel.args.get("joins") or not isinstance(frm.this, exp.Table) or sel.args.get("group"):
            return n
        t = frm.this
        alias = t.alias_or_name
        if (not alias.startswith("_e") or t.args.get("db") or t.args.get("joins")
                or set(sel.args) - {"expressions", "from", "from_", "where"}
                and any(sel.args.get(k) for k in set(sel.args) - {"expressions", "from", "from_", "where"})
                or [x.sql() for x in sel.expressions] != ["1"]):
            return n  # only the canonical bodies built above: SELECT 1 FROM one base table WHERE ...
        where = sel.args.get("where")
        conds = _conjuncts(where.this) if where is not None else []
        if any(c.find(exp.Select) for c in conds):
            return n
        for o in units.values():
            if o.type_key[6:] != t.name.lower():
                continue
            for k in _non_null_keys(catalog, t.name):
                used: list[int] = []
                for col in k:
                    hit = next((i for i, c in enumerate(conds) if isinstance(c, exp.EQ)
                                and all(isinstance(x, exp.Column) for x in (c.this, c.expression))
                                and {(c.this.table, c.this.name.lower()), (c.expression.table, c.expression.name.lower())}
                                == {(alias, col), (o.alias, col)}), None)
                    if hit is None:
                        break
                    used.append(hit)
                else:
                    rest = [_rename_all(c, {alias: o.alias}) for i, c in enumerate(conds) if i not in used]
                    if not rest:
                        return exp.true()
                    return exp.Is(this=exp.paren(exp.and_(*rest), copy=False), expression=exp.true())
        # uncorrelated: every in-scope row o of T is a candidate witness, ``p(o) IS TRUE`` implies the
        # EXISTS (all of them, so that the form does not depend on an order of the units)
        if conds and all(col.table == alias for c in conds for col in c.find_all(exp.Column)):
            wit = [exp.Is(this=exp.paren(exp.and_(*[_rename_all(c, {alias: o.alias}) for c in conds]), copy=False),
                          expression=exp.true())
                   for o in sorted(units.values(), key=lambda u: u.alias) if o.type_key[6:] == t.name.lower()]
            if wit:
                return exp.paren(exp.or_(*wit, n.copy()), copy=False)
        return n

    def apply(e: exp.Expression) -> exp.Expression:
        return e.copy().transform(fold, copy=False) if e.find(exp.Exists) else e

    return Block(q.units, [(u, apply(on)) for u, on in q.ljs], [apply(c) for c in q.conds], q.group, q.having,
                 [apply(o) for o in q.outputs], q.out_kinds)
