"""``sluice bench rules-fuzz``: differential fuzzing of the rewrite rules on DuckDB and PostgreSQL.

Random, seeded queries over a small keyed schema are prepared (parsed and qualified) and
handed to each rule, once and to a fixed point.  Whenever the SQL changes, the rule's input
and its output run on several data instances (random; many NULLs and duplicates; some
tables empty; all tables empty) in embedded DuckDB and in a throwaway PostgreSQL cluster
(READ ONLY transactions with a statement timeout), and the results are compared exactly:
column names, then rows (in order when the query orders totally, else as bags; NUMERIC
exact, floats to 9 significant digits).  A mismatch is minimised (clauses, predicates,
select items, joins, CTEs, set-operation branches, then data rows) into a reproducer.

The pseudo-rule ``prepare`` compares the raw query with its prepared (qualified) form, the
input every rule sees.

Example: sluice bench rules-fuzz --queries 2000 --seed 1 --json fuzz.json
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog, Column, Table
from sqlsluice.rewriters.rules import RULE_ERRORS, RULES, Rule, fixed_point, prepare, run_rule

ENGINES = ("duckdb", "postgresql")
SQLGLOT_DIALECT = {"duckdb": "duckdb", "postgresql": "postgres"}
PREPARE = "prepare"  # pseudo-rule: the raw query against its prepared form
# A reason that says only the output names differ.  For ``prepare`` this is expected and not
# counted as a mismatch: qualify names unnamed columns (``_col_0``) and the rewriter puts the
# original's names back (``rewriters.api.match_columns``); for a rule it is a mismatch.
RENAMED = "column names"
CHAIN = "chain"  # pseudo-rule: every rule in a seeded random order, each to a fixed point

# ---------------------------------------------------------------------------------------------
# schema and data

INT, STR, NUM = "INTEGER", "VARCHAR", "NUMERIC(10,2)"
# name -> (columns, primary key); t3 has no key (duplicate rows), t4 a composite key
_TABLES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "t1": ([("k", INT), ("a", INT), ("b", INT), ("s", STR), ("n", NUM)], ["k"]),
    "t2": ([("k", INT), ("t1k", INT), ("a", INT), ("s", STR)], ["k"]),
    "t3": ([("a", INT), ("b", INT), ("s", STR)], []),
    "t4": ([("k1", INT), ("k2", INT), ("v", INT), ("n", NUM), ("s", STR)], ["k1", "k2"]),
}


def catalog() -> Catalog:
    """The fuzzer's schema: keyed tables t1, t2, t4 (composite key) and key-less t3."""
    tables = []
    for name, (cols, pk) in _TABLES.items():
        tables.append(Table(name=name, columns=[Column(name=c, type=t, nullable=c not in pk) for c, t in cols],
                            primary_key=list(pk)))
    return Catalog(tables=tables)


Data = dict[str, list[tuple[Any, ...]]]
INSTANCE_KINDS = ("random", "nulls_dups", "some_empty", "all_empty")


def _value(rng: random.Random, typ: str, null_p: float) -> Any:
    if rng.random() < null_p:
        return None
    if typ == INT:
        return rng.randint(0, 4)
    if typ == STR:
        return rng.choice(("x", "y", "z", "xy"))
    return Decimal(rng.choice(("0.50", "1.25", "2.00", "3.33", "-1.10")))


def make_instance(kind: str, seed: int) -> Data:
    """Rows per table for one data instance; keys are unique, t3 has duplicate rows."""
    rng = random.Random(f"{seed}:{kind}")
    null_p = {"random": 0.15, "nulls_dups": 0.5}.get(kind, 0.2)
    empty: set[str] = set()
    if kind == "all_empty":
        empty = set(_TABLES)
    elif kind == "some_empty":
        empty = set(rng.sample(sorted(_TABLES), 2))
    out: Data = {}
    for name, (cols, pk) in _TABLES.items():
        if name in empty:
            out[name] = []
            continue
        n = rng.randint(3, 8) if kind != "nulls_dups" else rng.randint(5, 10)
        rows: list[tuple[Any, ...]] = []
        seen: set[tuple[Any, ...]] = set()
        for _ in range(n * 3):
            if len(rows) >= n:
                break
            row = []
            for c, t in cols:
                if c in pk:
                    row.append(rng.randint(0, 9) if len(pk) == 1 else rng.randint(0, 3))
                else:
                    row.append(_value(rng, t, null_p))
            key = tuple(row[i] for i, (c, _) in enumerate(cols) if c in pk)
            if pk and key in seen:
                continue
            seen.add(key)
            rows.append(tuple(row))
        if not pk and rows:  # duplicates in the key-less table
            rows += [rng.choice(rows) for _ in range(len(rows) if kind == "nulls_dups" else 2)]
        out[name] = rows
    return out


def _lit(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def inserts(data: Data) -> list[str]:
    return [f"INSERT INTO {t} VALUES " + ", ".join("(" + ", ".join(_lit(v) for v in r) + ")" for r in rows)
            for t, rows in data.items() if rows]


# ---------------------------------------------------------------------------------------------
# query generator


@dataclass
class GenQuery:
    sql: str
    shape: str
    ordered: bool = False  # the outer ORDER BY is a total order: compare rows in order
    duckdb_only: bool = False
    fragile: bool = False  # an outer LIMIT relies on a derived table's ORDER BY (unspecified in SQL)
    cols: list[str] | None = None  # output names when known, named and unique


_INT_COLS = {t: [c for c, ty in cols if ty == INT] for t, (cols, _) in _TABLES.items()}
_STR_COLS = {t: [c for c, ty in cols if ty == STR] for t, (cols, _) in _TABLES.items()}
_NUM_COLS = {t: [c for c, ty in cols if ty == NUM] for t, (cols, _) in _TABLES.items()}
_LONG_NUMERIC = ("1.0000000000000000000000000001", "0.1000000000000000000000000003", "12345678901234.567890123")


class Generator:
    """Seeded random queries; each shape aims at the constructs some rules look for."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.side = random.Random(seed * 7919 + 1)  # for the shapes added later (see query())
        self.n = 0
        self.shapes: list[tuple[Callable[[], GenQuery], float]] = [
            (self.basic, 3), (self.joins, 3), (self.group, 3), (self.empty_agg, 1), (self.distinct_on, 1),
            (self.setop, 3.5), (self.union_prune, 2.5), (self.scalar_sub, 3), (self.exists, 2), (self.in_sub, 3),
            (self.or_in, 2), (self.semi, 2.5), (self.filtered_scalars, 1.5), (self.filtered_derived, 2.5),
            (self.cte, 3.5), (self.left_key, 2), (self.distinct_keys, 2.5), (self.derived, 4), (self.const, 2.5), (self.hazards, 3), (self.misc, 2),
        ]

    # small pieces ----------------------------------------------------------------------------
    def pick(self, seq: Sequence[Any]) -> Any:
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def k(self) -> int:
        return self.rng.randint(0, 4)

    def table(self, keyed: bool | None = None) -> str:
        pool = [t for t, (_, pk) in _TABLES.items() if keyed is None or bool(pk) == keyed]
        return str(self.pick(pool))

    def icol(self, a: str, t: str) -> str:
        return f"{a}.{self.pick(_INT_COLS[t])}"

    def pred(self, a: str, t: str, depth: int = 0) -> str:
        r = self.rng.random()
        c = self.icol(a, t)
        if r < 0.3:
            return f"{c} {self.pick(('=', '<>', '<', '<=', '>', '>='))} {self.k()}"
        if r < 0.4:
            return f"{c} IS {self.pick(('', 'NOT '))}NULL"
        if r < 0.47:
            return f"{c} BETWEEN {self.k()} AND {self.k() + 1}"
        if r < 0.54:
            return f"{c} {self.pick(('', 'NOT '))}IN ({self.k()}, {self.k()})"
        if r < 0.62:
            return f"{a}.{self.pick(_STR_COLS[t])} {self.pick(('=', '<>'))} '{self.pick(('x', 'y'))}'"
        if r < 0.68:
            return f"COALESCE({c}, {self.k()}) > {self.k()}"
        if r < 0.74 and depth < 2:
            return f"({self.pred(a, t, depth + 1)} OR {self.pred(a, t, depth + 1)})"
        if r < 0.78 and depth < 2:
            return f"NOT ({self.pred(a, t, depth + 1)})"
        if r < 0.84:
            return self.pick(("1 = 1", "2 + 3 > 4", "'a' = 'a'", "TRUE", "1 < 0 OR 1 = 1"))
        if r < 0.9:
            return f"{c} + {self.k()} > {self.k()} * 2"
        return f"{c} = {self.icol(a, t)}"

    def where(self, a: str, t: str, p: float = 0.7) -> str:
        if not self.chance(p):
            return ""
        terms = [self.pred(a, t) for _ in range(self.rng.randint(1, 3))]
        return " WHERE " + " AND ".join(terms)

    def item(self, a: str, t: str, name: str) -> str:
        r = self.rng.random()
        c = self.icol(a, t)
        if r < 0.45:
            return f"{c} AS {name}"
        if r < 0.55:
            return f"{c} + {self.k()} AS {name}"
        if r < 0.65:
            return (f"CASE WHEN {c} > {self.k()} THEN 'hi' WHEN {c} IS NULL THEN 'null' ELSE 'lo' END "
                    f"AS {name}")
        if r < 0.75:
            return f"COALESCE({c}, -1) AS {name}"
        if r < 0.82:
            return f"{a}.{self.pick(_STR_COLS[t])} AS {name}"
        if r < 0.88 and _NUM_COLS[t]:
            return f"{a}.{self.pick(_NUM_COLS[t])} * {self.pick(_LONG_NUMERIC)} AS {name}"
        if r < 0.94:
            return f"{c} * {self.k()} - 1 AS {name}"
        return f"{c} AS {name}"

    def items(self, a: str, t: str, n: int | None = None) -> tuple[str, list[str]]:
        n = n or self.rng.randint(1, 3)
        names = [f"c{i}" for i in range(n)]
        return ", ".join(self.item(a, t, nm) for nm in names), names

    def order_total(self, srcs: list[tuple[str, str]]) -> str:
        """ORDER BY that orders rows totally (keys of keyed sources, all columns of the others)."""
        keys = []
        for a, t in srcs:
            cols, pk = _TABLES[t]
            keys += [f"{a}.{c}" for c in (pk or [c for c, _ in cols])]
        return " ORDER BY " + ", ".join(keys)

    def limit(self) -> str:
        return f" LIMIT {self.rng.randint(1, 4)}"

    # shapes ----------------------------------------------------------------------------------
    def basic(self) -> GenQuery:
        t = self.table()
        a = self.pick((t, "x"))
        alias = "" if a == t else " AS x"
        if self.chance(0.1):
            return GenQuery(f"SELECT * FROM {t}{alias}{self.where(a, t)}", "basic_star")
        sel, names = self.items(a, t)
        if self.chance(0.1):  # unnamed output columns
            sel = f"{self.icol(a, t)} + 1, {self.icol(a, t)}"
            names = []
        distinct = "DISTINCT " if self.chance(0.2) else ""
        sql = f"SELECT {distinct}{sel} FROM {t}{alias}{self.where(a, t)}"
        if not distinct and self.chance(0.35):
            return GenQuery(sql + self.order_total([(a, t)]) + self.limit(), "basic_limit", ordered=True, cols=names)
        return GenQuery(sql, "basic", cols=names or None)

    def joins(self) -> GenQuery:
        t1, t2 = self.table(), self.table()
        kind = self.pick(("JOIN", "INNER JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "CROSS JOIN", ","))
        on = "" if kind in ("CROSS JOIN", ",") else f" ON {self.icol('p', t1)} = {self.icol('q', t2)}"
        if on and self.chance(0.3):
            on += f" AND {self.pred('q', t2)}"
        srcs = [("p", t1), ("q", t2)]
        frm = f"{t1} AS p {kind} {t2} AS q{on}"
        if self.chance(0.25):
            t3 = self.table()
            k3 = self.pick(("JOIN", "LEFT JOIN", "FULL JOIN"))
            frm += f" {k3} {t3} AS r ON {self.icol('r', t3)} = {self.icol('q', t2)}"
            srcs.append(("r", t3))
        w = ""
        if self.chance(0.6):
            a, t = self.pick(srcs)
            w = f" WHERE {self.pred(a, t)}"
        a1, ta = srcs[0]
        a2, tb = srcs[1]
        names = ["c0", "c1", "c2"]
        sel = f"{self.item(a1, ta, 'c0')}, {self.item(a2, tb, 'c1')}, {self.icol(a2, tb)} AS c2"
        sql = f"SELECT {sel} FROM {frm}{w}"
        if self.chance(0.3) and kind not in ("FULL JOIN",):
            return GenQuery(sql + self.order_total(srcs) + self.limit(), "join_limit", ordered=kind in
                            ("JOIN", "INNER JOIN", "CROSS JOIN", ","), cols=names)
        return GenQuery(sql, "join", cols=names)

    def group(self) -> GenQuery:
        t = self.table()
        g1 = self.icol(t, t)
        g2 = self.icol(t, t)
        agg = self.pick(("COUNT(*)", f"SUM({self.icol(t, t)})", f"MAX({self.icol(t, t)})",
                         f"MIN({t}.{self.pick(_STR_COLS[t])})", f"AVG({self.icol(t, t)})",
                         f"COUNT(DISTINCT {self.icol(t, t)})"))
        r = self.rng.random()
        if r < 0.25 and g1 != g2:
            grp, sel = f"ROLLUP ({g1}, {g2})", f"{g1} AS g1, {g2} AS g2"
            names = ["g1", "g2", "v"]
        else:
            grp, sel, names = g1, f"{g1} AS g1", ["g1", "v"]
        having = f" HAVING {agg} > {self.k()}" if self.chance(0.3) and "MIN(" not in agg else ""
        if self.chance(0.15):
            having = f" HAVING COUNT(*) >= 1 OR {agg} IS NULL"
        sql = f"SELECT {sel}, {agg} AS v FROM {t}{self.where(t, t, 0.5)} GROUP BY {grp}{having}"
        if grp == g1 and self.chance(0.25):
            return GenQuery(sql + " ORDER BY g1" + self.limit(), "group_limit", ordered=True, cols=names)
        return GenQuery(sql, "group", cols=names)

    def empty_agg(self) -> GenQuery:
        t = self.table()
        c = self.icol(t, t)
        return GenQuery(f"SELECT COUNT(*) AS n, SUM({c}) AS s, MAX({c}) AS m, AVG({c}) AS av, "
                        f"COALESCE(SUM({c}), 0) AS z FROM {t} WHERE {c} > {self.pick((3, 4, 10))}", "empty_agg",
                        cols=["n", "s", "m", "av", "z"])

    def distinct_on(self) -> GenQuery:
        t = self.pick(("t1", "t2"))
        g = self.icol(t, t)
        sql = (f"SELECT DISTINCT ON ({g}) {g} AS g, {t}.k AS kk, {t}.s AS ss FROM {t}{self.where(t, t, 0.4)} "
               f"ORDER BY {g}, {t}.k")
        return GenQuery(sql, "distinct_on", ordered=True, cols=["g", "kk", "ss"])

    def _branch(self, n: int, tag: str | None = None) -> str:
        t = self.table()
        a = f"b{self.rng.randint(0, 99)}"
        cols = ", ".join(f"{self.icol(a, t)} AS c{i}" for i in range(n))
        if tag is not None:
            cols += f", '{tag}' AS ty"
        return f"SELECT {cols} FROM {t} AS {a}{self.where(a, t, 0.5)}"

    def setop(self) -> GenQuery:
        n = self.rng.randint(1, 2)
        op = self.pick(("UNION", "UNION", "UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL",
                        "UNION BY NAME", "UNION ALL BY NAME"))
        names = [f"c{i}" for i in range(n)]
        sql = f"{self._branch(n)} {op} {self._branch(n)}"
        if self.chance(0.25):
            sql += f" {self.pick(('UNION', 'UNION ALL', 'EXCEPT'))} {self._branch(n)}"
        if self.chance(0.3):
            sql = f"SELECT * FROM ({sql}) AS u WHERE u.c0 {self.pick(('>', '<', '='))} {self.k()}"
        return GenQuery(sql, "setop", duckdb_only="BY NAME" in op, cols=names)

    def union_prune(self) -> GenQuery:
        n = self.rng.randint(1, 2)
        false = self.pick(("'w' = 's'", "FALSE", "'a' = 'b'"))
        branches = [self._branch(n) for _ in range(self.rng.randint(2, 3))]
        i = self.rng.randrange(len(branches))
        b = branches[i]
        branches[i] = b + (" AND " if " WHERE " in b else " WHERE ") + false
        if self.chance(0.2):  # an aggregate without GROUP BY returns one row on no input
            branches[i] = f"SELECT COUNT(*) AS c0{', 1' if n == 2 else ''} FROM t3 WHERE {false}"
        if self.chance(0.3):  # first branch with other names than the second
            branches[0] = branches[0].replace(" AS c0", " AS first0")
        names = ["first0" if " AS first0" in branches[0] else "c0"] + (["c1"] if n == 2 else [])
        sql = " UNION ALL ".join(branches)
        if self.chance(0.3):
            sql = f"SELECT * FROM ({sql}) AS u"
        return GenQuery(sql, "union_prune", cols=names)

    def scalar_sub(self) -> GenQuery:
        agg = self.pick(("AVG", "SUM", "MIN", "MAX", "COUNT", "SUM"))
        inner_t = self.pick(("t2", "t3", "t4"))
        col = self.icol("i", inner_t)
        corr = {"t2": "i.t1k", "t3": "i.a", "t4": "i.k1"}[inner_t]
        extra = f" AND {self.pred('i', inner_t)}" if self.chance(0.4) else ""
        arg = "*" if agg == "COUNT" and self.chance(0.5) else col
        sub = f"(SELECT {agg}({arg}) FROM {inner_t} AS i WHERE {corr} = o.k{extra})"
        if self.chance(0.2):
            sub = f"(SELECT {agg}({arg}) + 1 FROM {inner_t} AS i WHERE {corr} = o.{self.pick(('k', 'a'))}{extra})"
        if self.chance(0.25):
            sub = f"(SELECT {agg}({arg}) FROM {inner_t} AS i{self.where('i', inner_t, 0.6)})"  # uncorrelated
        lhs = self.pick(("o.a", "o.b", "o.k", f"o.a * {self.pick((1, 2))}"))
        op = self.pick(("=", "<", ">", ">=", "<>"))
        cmp = f"{lhs} {op} {sub}" if self.chance(0.7) else f"{sub} {op} {lhs}"
        if self.chance(0.3):
            cmp = f"{lhs} {op} 2 * {sub}"
        w = f" WHERE {cmp}" + (f" AND {self.pred('o', 't1')}" if self.chance(0.4) else "")
        if self.chance(0.15):
            w = f" WHERE {cmp} OR {self.pred('o', 't1')}"
        sel = "o.k AS k, o.a AS a"
        if self.chance(0.25):
            sel += f", {sub} AS sv"
        return GenQuery(f"SELECT {sel} FROM t1 AS o{w}", "scalar_sub")

    def exists(self) -> GenQuery:
        inner_t = self.pick(("t2", "t3", "t4"))
        corr = {"t2": "i.t1k = o.k", "t3": "i.a = o.a", "t4": "i.k1 = o.k"}[inner_t]
        if self.chance(0.3):
            corr += " AND " + {"t2": "i.a = o.b", "t3": "i.b = o.b", "t4": "i.v = o.a"}[inner_t]
        extra = f" AND {self.pred('i', inner_t)}" if self.chance(0.5) else ""
        proj = self.pick(("*", "1", "i.*"))
        ex = f"EXISTS (SELECT {proj} FROM {inner_t} AS i WHERE {corr}{extra})"
        if self.chance(0.2):
            ex = f"EXISTS (SELECT MAX(i.{_INT_COLS[inner_t][0]}) FROM {inner_t} AS i WHERE {corr}{extra})"
        r = self.rng.random()
        if r < 0.45:
            w = f"{ex} AND {self.pred('o', 't1')}"
        elif r < 0.7:
            w = f"({ex} OR {self.pred('o', 't1')})"
        elif r < 0.85:
            w = f"NOT {ex}"
        else:
            w = ex
        sel = self.pick(("o.k, o.a", "o.a, o.s", "o.*"))
        return GenQuery(f"SELECT {sel} FROM t1 AS o WHERE {w}", "exists")

    def count_test(self) -> GenQuery:
        """``(SELECT COUNT(*) ..) > 0`` and its near misses (count_positive_to_exists)."""
        inner_t = self.pick(("t2", "t3", "t4"))
        corr = {"t2": "i.t1k = o.k", "t3": "i.a = o.a", "t4": "i.k1 = o.k"}[inner_t]
        if self.chance(0.2):
            corr = f"(({corr} AND {self.pred('i', inner_t)}) OR ({corr} AND {self.pred('i', inner_t)}))"
        extra = f" AND {self.pred('i', inner_t)}" if self.chance(0.5) else ""
        where = f" WHERE {corr}{extra}" if self.chance(0.85) else self.where("i", inner_t, 0.6)  # or uncorrelated
        arg = self.pick(("*", "*", "*", "*", "1", "NULL", self.icol("i", inner_t), f"DISTINCT {self.icol('i', inner_t)}"))
        tail = self.pick(("",) * 10 + (" GROUP BY i.a", " HAVING COUNT(*) > 1", " OFFSET 1", " LIMIT 1"))
        sub = f"(SELECT COUNT({arg}) FROM {inner_t} AS i{where}{tail})"
        test = self.pick((f"{sub} > 0", f"{sub} >= 1", f"{sub} <> 0", f"0 < {sub}", f"1 <= {sub}",
                          f"{sub} > 0", f"{sub} >= 0", f"{sub} > 1", f"{sub} = 0", f"{sub} > o.a"))
        r = self.rng.random()
        if r < 0.45:
            w = f" WHERE {test} AND {self.pred('o', 't1')}"
        elif r < 0.65:
            w = f" WHERE ({test} OR {self.pred('o', 't1')})"
        elif r < 0.8:
            w = f" WHERE NOT {test}"
        else:
            w = ""
        sel = "o.k AS k, o.a AS a" + (f", {test} AS t" if not w or self.chance(0.2) else "")
        return GenQuery(f"SELECT {sel} FROM t1 AS o{w}", "count_test")

    def exists_neq(self) -> GenQuery:
        """EXISTS correlated by ``=`` and another comparison (exists_table_materialize), and near misses."""
        inner_t = self.pick(("t2", "t3", "t4"))
        eq = {"t2": "i.t1k = o.k", "t3": "i.a = o.a", "t4": "i.k1 = o.k"}[inner_t]
        other = self.pick((f"{self.icol('i', inner_t)} <> o.b", f"{self.icol('i', inner_t)} < o.a",
                           f"{self.icol('i', inner_t)} >= o.b", f"o.a <> {self.icol('i', inner_t)}"))
        terms = [eq, other] if self.chance(0.85) else [eq]  # equality only: must not fire
        if self.chance(0.5):
            terms.append(self.pred("i", inner_t))
        self.rng.shuffle(terms)
        src = f"{inner_t} AS i"
        if self.chance(0.1):
            src += ", t1 AS x"  # two tables: must not fire
        proj = self.pick(("*", "1", "i.*", self.icol("i", inner_t)))
        ex = f"EXISTS (SELECT {proj} FROM {src} WHERE {' AND '.join(terms)})"
        r = self.rng.random()
        if r < 0.4:
            w = f"{ex} AND {self.pred('o', 't1')}"
        elif r < 0.6:
            w = f"({ex} OR {self.pred('o', 't1')})"
        elif r < 0.85:
            w = f"NOT {ex}"
        else:
            w = ex
        sel = self.pick(("o.k, o.a", "o.a, o.s", "COUNT(DISTINCT o.a) AS n, SUM(o.b) AS s"))
        sql = f"SELECT {sel} FROM t1 AS o WHERE {w}"
        if self.chance(0.2):
            sql = f"WITH c AS (SELECT t3.a AS a FROM t3) {sql} AND o.a IN (SELECT c.a FROM c)"
        return GenQuery(sql, "exists_neq")

    def _in_query(self, keyed: bool) -> str:
        r = self.rng.random()
        if keyed:
            if r < 0.35:
                t = self.pick(("t1", "t2"))
                return f"SELECT i.k FROM {t} AS i{self.where('i', t, 0.5)}"
            if r < 0.55:
                return f"SELECT DISTINCT i.a FROM t3 AS i{self.where('i', 't3', 0.4)}"
            if r < 0.75:
                return f"SELECT i.b FROM t3 AS i{self.where('i', 't3', 0.4)} GROUP BY i.b"
            if r < 0.85:
                return "SELECT d.k FROM (SELECT i.k AS k, i.a AS a FROM t2 AS i WHERE i.a > 0) AS d"
            return "SELECT i.k1 FROM t4 AS i"  # not unique: k1 alone is no key
        t = self.pick(("t2", "t3", "t4"))
        return f"SELECT {self.icol('i', t)} FROM {t} AS i{self.where('i', t, 0.5)}"

    def in_sub(self) -> GenQuery:
        keyed = self.chance(0.7)
        lhs = self.pick(("o.k", "o.a", "o.b"))
        neg = "NOT " if self.chance(0.25) else ""
        sub = self._in_query(keyed)
        if self.chance(0.2):
            sub = f"{sub} ORDER BY 1"
        term = f"{lhs} {neg}IN ({sub})"
        if self.chance(0.15):
            term = f"{lhs} IN (SELECT i.a FROM t3 AS i WHERE i.b = o.b)"  # correlated
        w = term + (f" AND {self.pred('o', 't1')}" if self.chance(0.4) else "")
        if self.chance(0.1):
            w = f"{term} OR {self.pred('o', 't1')}"
        frm = "t1 AS o"
        if self.chance(0.2):
            frm += self.pick((" JOIN t2 AS j ON j.t1k = o.k", " LEFT JOIN t2 AS j ON j.t1k = o.k"))
        sql = f"SELECT o.k AS k, o.a AS a FROM {frm} WHERE {w}"
        if self.chance(0.2):
            return GenQuery(sql + " ORDER BY o.k" + (", j.k" if "j" in frm.split() else "") + self.limit(),
                            "in_limit", ordered="LEFT" not in frm and "JOIN" not in frm)
        return GenQuery(sql, "in", cols=["k", "a"])

    def or_in(self) -> GenQuery:
        lhs = self.pick(("o.k", "o.a"))
        q1, q2 = self._in_query(self.chance(0.5)), self._in_query(self.chance(0.5))
        if self.chance(0.2):
            q2 = "SELECT i.a, i.b FROM t3 AS i"  # column count differs: an error either way
        neg = "NOT " if self.chance(0.15) else ""
        w = f"({lhs} IN ({q1}) OR {lhs} {neg}IN ({q2}))"
        if self.chance(0.4):
            w = f"{self.pred('o', 't1')} AND {w}"
        return GenQuery(f"SELECT o.k AS k, o.b AS b FROM t1 AS o WHERE {w}", "or_in", cols=["k", "b"])

    def semi(self) -> GenQuery:
        r = self.rng.random()
        if r < 0.4:
            body = f"SELECT DISTINCT i.a AS v FROM t3 AS i{self.where('i', 't3', 0.5)}"
        elif r < 0.6:
            body = f"SELECT i.a AS v FROM t2 AS i INTERSECT SELECT j.a AS v FROM t3 AS j{self.where('j', 't3', 0.4)}"
        elif r < 0.7:
            body = "SELECT i.a AS v FROM t2 AS i INTERSECT SELECT j.s AS v FROM t3 AS j"  # types differ
        elif r < 0.8:
            body = f"SELECT i.a AS v FROM t2 AS i {self.pick(('UNION', 'EXCEPT'))} SELECT j.b AS v FROM t3 AS j"
        elif r < 0.9:
            body = "SELECT DISTINCT i.a AS v, i.b AS w FROM t3 AS i"
        else:
            body = "SELECT i.a AS v FROM t3 AS i INTERSECT ALL SELECT j.a AS v FROM t2 AS j"
        two = " AS w" in body
        lhs = self.pick(("o.a", "o.b", "o.k"))
        cond = f"{lhs} = s.v" + (" AND o.b = s.w" if two else "")
        if self.chance(0.5):
            frm = f"t1 AS o, ({body}) AS s WHERE {cond}"
        else:
            frm = f"t1 AS o JOIN ({body}) AS s ON {cond}"
        if self.chance(0.3):
            frm += (" AND " if " WHERE " in frm else " WHERE ") + self.pred("o", "t1")
        sel = self.pick(("o.k AS k, o.a AS a", "o.k AS k, s.v AS v", "o.s AS s2"))
        return GenQuery(f"SELECT {sel} FROM {frm}", "semi")

    def filtered_scalars(self) -> GenQuery:
        t = self.pick(("t3", "t1", "t4"))
        subs = []
        for _ in range(self.rng.randint(2, 3)):
            agg = self.pick(("COUNT(*)", f"SUM({self.icol(t, t)})", f"AVG({self.icol(t, t)})",
                             f"MAX({self.icol(t, t)})", f"MIN({self.icol(t, t)})"))
            subs.append(f"(SELECT {agg} FROM {t}{self.where(t, t, 0.8)})")
        if self.chance(0.2):
            subs[-1] = f"(SELECT COUNT(*) FROM t2{self.where('t2', 't2', 0.8)})"
        sel = ", ".join(f"{s} AS v{i}" for i, s in enumerate(subs))
        if self.chance(0.2):
            sel = f"{subs[0]} + {subs[1]} AS v0" + "".join(f", {s} AS v{i}" for i, s in enumerate(subs[2:], 2))
        r = self.rng.random()
        if r < 0.4:
            return GenQuery(f"SELECT {sel}", "filtered_scalars")
        if r < 0.8:
            return GenQuery(f"SELECT o.k AS k, {sel} FROM t2 AS o{self.where('o', 't2', 0.6)}", "filtered_scalars")
        return GenQuery(f"SELECT o.k AS k FROM t2 AS o WHERE o.a < {subs[0]} AND o.a >= {subs[1]}",
                        "filtered_scalars")

    def filtered_derived(self) -> GenQuery:
        t = self.pick(("t3", "t1", "t4"))
        common = self.pred(t, t) if self.chance(0.5) else ""
        ders = []
        for i in range(self.rng.randint(2, 3)):
            agg = self.pick(("COUNT(*)", f"SUM({self.icol(t, t)})", f"AVG({self.icol(t, t)})",
                             f"MAX({self.icol(t, t)})"))
            terms = [x for x in (common, self.pred(t, t) if self.chance(0.8) else "") if x]
            w = " WHERE " + " AND ".join(terms) if terms else ""
            ders.append(f"(SELECT {agg} AS a{i} FROM {t}{w}) AS s{i}")
        if self.chance(0.15):
            ders.append("t2 AS o")
        frm = ", ".join(ders)
        r = self.rng.random()
        if r < 0.5:
            sel = "*"
        else:
            sel = ", ".join(f"s{i}.a{i}" + (" + 1" if i == 0 and self.chance(0.2) else "") + f" AS r{i}"
                            for i in range(len([d for d in ders if d.startswith("(")])))
        return GenQuery(f"SELECT {sel} FROM {frm}", "filtered_derived")

    def cte(self) -> GenQuery:
        r = self.rng.random()
        t = self.table()
        if r < 0.28:  # used several times
            body = f"SELECT {t}.{_INT_COLS[t][0]} AS x, {self.icol(t, t)} AS y FROM {t}{self.where(t, t, 0.5)}"
            sql = (f"WITH c AS ({body}) SELECT c.x AS x, d.y AS y FROM c JOIN c AS d ON c.x = d.x "
                   f"WHERE d.y {self.pick(('>', '<', '<>'))} {self.k()}")
            if self.chance(0.3):
                sql = f"WITH c AS ({body}) SELECT c.x AS x FROM c WHERE c.x IN (SELECT c.y FROM c)"
        elif r < 0.55:  # aggregating, used once
            g = self.icol(t, t)
            order = f" ORDER BY {g}" if self.chance(0.3) else ""
            sql = (f"WITH c AS (SELECT {g} AS g, COUNT(*) AS n, SUM({self.icol(t, t)}) AS s FROM {t} GROUP BY {g}"
                   f"{order}) "
                   f"SELECT c.g AS g, c.n AS n, c.s AS s FROM c WHERE c.n {self.pick(('>', '>='))} 1")
            if self.chance(0.3):
                sql = (f"WITH c AS (SELECT COUNT(*) AS n FROM {t}) SELECT o.k AS k, c.n AS n FROM t1 AS o, c "
                       f"WHERE o.a < c.n")
        elif r < 0.6:  # a CTE whose name shadows a base table
            shadow = self.pick(("t1", "t2", "t3"))
            sql = (f"WITH {shadow} AS (SELECT b.a AS a, b.b AS b FROM t3 AS b WHERE b.a > {self.k()}) "
                   f"SELECT {shadow}.a AS a, {shadow}.b AS b FROM {shadow}")
            if self.chance(0.4):
                sql = ("WITH t3 AS (SELECT t1.k AS a, t1.a AS b FROM t1) SELECT x.a AS a FROM t3 AS x "
                       "WHERE x.b IN (SELECT t3.b FROM t3)")
            return GenQuery(sql, "cte_shadow")
        elif r < 0.85:  # unused and chained CTEs
            sql = (f"WITH u AS (SELECT t2.k AS k FROM t2), v AS (SELECT t1.k AS k, t1.a AS a FROM t1 "
                   f"{self.where('t1', 't1', 0.6)[1:]}) SELECT v.k AS k FROM v WHERE v.a {self.pick(('>', '<'))} "
                   f"{self.k()}")
            if self.chance(0.4):
                sql = ("WITH u AS (SELECT t2.k AS k FROM t2), w AS (SELECT u.k AS k FROM u) "
                       "SELECT t1.k AS k FROM t1")
        else:  # nested WITH inside a derived table, CTE with a column list
            sql = (f"SELECT d.x AS x FROM (WITH c AS (SELECT {self.icol(t, t)} AS x FROM {t}) "
                   f"SELECT c.x AS x FROM c, c AS e WHERE c.x = e.x) AS d")
            if self.chance(0.5):
                sql = "WITH c(x, y) AS (SELECT t3.a, t3.b FROM t3) SELECT c.x AS x, c.y AS y FROM c, c AS e " \
                      "WHERE c.x = e.y"
        if self.chance(0.25) and sql.startswith("WITH "):  # an unused CTE, ordered without LIMIT
            sql = f"WITH z AS (SELECT t2.k AS k FROM t2 ORDER BY t2.k), {sql[5:]}"
        return GenQuery(sql, "cte")

    def left_key(self) -> GenQuery:
        r = self.rng.random()
        if r < 0.45:
            sql = "SELECT q.k AS k, q.a AS a FROM t2 AS q LEFT JOIN t1 AS p ON p.k = q.t1k"
        elif r < 0.6:
            sql = "SELECT q.a AS a, q.b AS b FROM t3 AS q LEFT JOIN t4 AS p ON p.k1 = q.a AND p.k2 = q.b"
        elif r < 0.7:
            sql = "SELECT q.a AS a FROM t3 AS q LEFT JOIN t4 AS p ON p.k1 = q.a"  # not a full key
        elif r < 0.8:
            sql = "SELECT q.a AS a FROM t2 AS q LEFT JOIN t3 AS p ON p.a = q.a"  # no key
        elif r < 0.9:
            sql = "SELECT q.k AS k FROM t2 AS q LEFT JOIN t1 AS p ON p.k = q.t1k AND p.a > 1"
        else:
            sql = "SELECT * FROM t2 AS q LEFT JOIN t1 AS p ON p.k = q.t1k"
        if self.chance(0.5):
            sql += f" WHERE {self.pred('q', 't3' if 't3 AS q' in sql else 't2')}"
        if self.chance(0.2):
            sql = f"SELECT COUNT(*) AS n FROM ({sql}) AS d"
        return GenQuery(sql, "left_key")

    def distinct_keys(self) -> GenQuery:
        r = self.rng.random()
        if r < 0.4:
            sql = f"SELECT DISTINCT t1.k AS k, t1.a AS a FROM t1{self.where('t1', 't1', 0.5)}"
        elif r < 0.6:
            sql = "SELECT DISTINCT p.k AS k, q.k AS qk, q.a AS a FROM t1 AS p JOIN t2 AS q ON q.t1k = p.k"
        elif r < 0.7:
            sql = "SELECT DISTINCT p.k AS k, q.a AS a FROM t1 AS p LEFT JOIN t2 AS q ON q.t1k = p.k"
        elif r < 0.8:
            sql = "SELECT DISTINCT t4.k1 AS k1, t4.k2 AS k2 FROM t4"
        elif r < 0.9:
            sql = "SELECT DISTINCT t4.k1 AS k1 FROM t4"
        else:
            sql = "SELECT DISTINCT p.k AS k, q.a AS a FROM t1 AS p, t3 AS q WHERE p.a = q.a"
        return GenQuery(sql, "distinct_keys")

    def derived(self) -> GenQuery:
        r = self.rng.random()
        if r < 0.25:  # UNION ALL with a type tag, filter above
            inner = f"{self._branch(2, 's')} UNION ALL {self._branch(2, 'w')}"
            w = self.pick(("d.ty = 's'", f"d.c0 > {self.k()}", "d.c1 IS NULL", "d.ty = 'w' AND d.c0 < 3"))
            return GenQuery(f"SELECT d.c0 AS c0, d.ty AS ty FROM ({inner}) AS d WHERE {w}", "derived_union",
                            cols=["c0", "ty"])
        if r < 0.37:  # aggregate derived table, predicate on the aggregate output
            t = self.table()
            g = self.icol(t, t)
            inner = f"SELECT {g} AS g, COUNT(*) AS n, MAX({self.icol(t, t)}) AS m FROM {t} GROUP BY {g}"
            w = self.pick(("d.n > 1", f"d.g = {self.k()}", "d.m IS NULL", f"d.n + d.g > {self.k()}"))
            return GenQuery(f"SELECT d.g AS g, d.n AS n FROM ({inner}) AS d WHERE {w}", "derived_agg")
        if r < 0.55:  # simple derived tables to merge
            t = self.table()
            inner = f"SELECT {t}.{_INT_COLS[t][0]} AS x, {self.icol(t, t)} AS y FROM {t}{self.where(t, t, 0.6)}"
            if self.chance(0.5):
                return GenQuery(f"SELECT d.x AS x, d.y + 1 AS y1 FROM ({inner}) AS d WHERE d.y > {self.k()}",
                                "derived_merge")
            return GenQuery(f"SELECT d.x AS x, o.a AS a FROM ({inner}) AS d JOIN t1 AS o ON o.k = d.x", "derived_merge")
        if r < 0.8:  # ordered derived table without LIMIT
            t = self.table()
            inner = f"SELECT {self.icol(t, t)} AS x FROM {t} ORDER BY 1"
            if self.chance(0.4):
                return GenQuery(f"SELECT o.k AS k FROM t1 AS o WHERE o.a IN ({inner})", "derived_sorted")
            return GenQuery(f"SELECT d.x AS x FROM ({inner}) AS d", "derived_sorted")
        if r < 0.9:  # ordered derived table under an outer LIMIT (order unspecified by SQL)
            t = self.pick(("t1", "t2"))
            return GenQuery(f"SELECT d.k AS k FROM (SELECT {t}.k AS k FROM {t} ORDER BY {t}.k DESC) AS d"
                            f"{self.limit()}", "derived_sorted_limit", fragile=True)
        # ordered derived table with its own LIMIT, ordered again outside
        t = self.pick(("t1", "t2"))
        return GenQuery(f"SELECT d.k AS k FROM (SELECT {t}.k AS k FROM {t} ORDER BY {t}.k DESC LIMIT 3) AS d "
                        f"ORDER BY d.k", "derived_limit", ordered=True)

    def const(self) -> GenQuery:
        t = self.pick(("t1", "t4"))
        lit = self.pick(_LONG_NUMERIC)
        r = self.rng.random()
        if r < 0.35:
            return GenQuery(f"SELECT {lit} * 3 AS x, {lit} + 0.1 AS y, 2 + 3 AS z", "const_numeric")
        if r < 0.5:
            return GenQuery(f"SELECT {lit} * 3, 1 + 1", "const_unnamed")
        if r < 0.75:
            n = _NUM_COLS[t][0]
            return GenQuery(f"SELECT {t}.{n} * ({lit} * 3) AS x FROM {t} WHERE {t}.{n} * 1 > {lit} - 1 "
                            f"AND 2 + 3 > 1", "const_numeric")
        if r < 0.85:
            e = self.pick(("7 / 2", "-7 / 2", "-7 % 3", "1 / 3 * 3", "2 ^ 3", "'a' || 'b'", "NULL + 1",
                           "CAST('12' AS INTEGER) + 1", "10 / 4.0", "1 - 0.9", "3 * 0.1", "ABS(-2) + 1",
                           "CASE WHEN 1 > 2 THEN 'a' ELSE 'b' END", "COALESCE(NULL, 2) * 2", "NOT (1 = 1)",
                           "1 = 1 AND NULL", "NULL OR 1 = 0", "(1 + 2) * 3 - 4 / 2", "5 - 3 - 1", "8 / 4 / 2",
                           "2 * 3 > 5", "'x' < 'y'", "ROUND(2.5)", "0.1 + 0.2 = 0.3", "-(-3)"))
            c = self.icol(t, t)
            return GenQuery(self.pick((f"SELECT {e} AS x, {c} AS y FROM {t}",
                                       f"SELECT {c} AS y FROM {t} WHERE {c} > {e}" if "'" not in e else
                                       f"SELECT {c} AS y FROM {t} WHERE {e} = 'ab'",
                                       f"SELECT {c} + {e} AS y FROM {t}" if "'" not in e and "=" not in e
                                       and ">" not in e and "<" not in e and "NOT" not in e and "AND" not in e
                                       and "OR" not in e else f"SELECT {e} AS y")), "const_expr")
        return GenQuery(f"SELECT {self.icol(t, t)} AS x FROM {t} WHERE {self.icol(t, t)} > 2 + {self.k()} OR "
                        f"{self.pick(('1 = 0', 'NULL = NULL', 'NOT TRUE', '1 = 1'))}", "const_filter")

    def hazards(self) -> GenQuery:
        """Shapes at the edge of a rule's preconditions (the hazards their docstrings name)."""
        k = self.k()
        cases = [
            # set-operation precedence: INTERSECT binds tighter than UNION / EXCEPT
            (f"{self._branch(1)} {self.pick(('UNION', 'UNION ALL', 'EXCEPT'))} {self._branch(1)} INTERSECT "
             f"{self._branch(1)}", "precedence"),
            # a predicate on a ROLLUP / CUBE / GROUPING SETS output pushed below the grouping
            (f"SELECT d.g1 AS g1, d.g2 AS g2, d.n AS n FROM (SELECT t1.a AS g1, t1.b AS g2, COUNT(*) AS n FROM t1 "
             f"GROUP BY {self.pick(('ROLLUP (t1.a, t1.b)', 'CUBE (t1.a, t1.b)', 'GROUPING SETS ((t1.a, t1.b), (t1.a), ())'))}"
             f") AS d WHERE {self.pick(('d.g2 IS NULL', f'd.g1 = {k}', 'COALESCE(d.g2, 0) = 0', 'd.n > 1'))}",
             "rollup_filter"),
            # constants and CASE on the NULL side of an outer join, merged into the outer query
            (f"SELECT o.k AS k, d.c AS c, d.e AS e FROM t1 AS o {self.pick(('LEFT', 'FULL', 'RIGHT'))} JOIN "
             f"(SELECT t2.t1k AS t1k, 1 AS c, COALESCE(t2.a, 0) AS e FROM t2 WHERE t2.a > 0) AS d "
             f"ON d.t1k = o.k", "null_side_const"),
            ("SELECT o.k AS k, d.c AS c FROM t1 AS o LEFT JOIN (SELECT t2.t1k AS t1k, CASE WHEN t2.a IS NULL "
             "THEN 'none' ELSE 'some' END AS c FROM t2) AS d ON d.t1k = o.k", "null_side_const"),
            # a CTE that shadows a keyed base table, with the key's name but not its uniqueness
            ("WITH t1 AS (SELECT b.a AS k, b.b AS a FROM t3 AS b) SELECT DISTINCT t1.k AS k, t1.a AS a FROM t1",
             "shadow_key"),
            ("WITH t1 AS (SELECT b.a AS k, b.b AS a FROM t3 AS b) SELECT q.k AS k FROM t2 AS q "
             "LEFT JOIN t1 AS p ON p.k = q.t1k", "shadow_key"),
            ("WITH t2 AS (SELECT b.a AS k, b.b AS a FROM t3 AS b) SELECT o.k AS k FROM t1 AS o "
             "WHERE o.a IN (SELECT t2.k FROM t2)", "shadow_key"),
            ("SELECT d.x AS x, t3.a AS a FROM (WITH t3 AS (SELECT t1.k AS a FROM t1) SELECT t3.a AS x FROM t3) "
             "AS d, t3 WHERE d.x = t3.a", "shadow_scope"),
            # an aggregate branch without GROUP BY pruned; a pruned branch that fixed the column type
            ("SELECT u.c0 / 2 AS h FROM (SELECT t1.n AS c0 FROM t1 WHERE 'w' = 's' UNION ALL "
             "SELECT t2.a AS c0 FROM t2) AS u", "prune_type"),
            ("SELECT u.c0 / 2 AS h FROM (SELECT t2.a AS c0 FROM t2 UNION ALL SELECT t1.n AS c0 FROM t1 "
             "WHERE FALSE) AS u", "prune_type"),
            # EXISTS where FALSE and NULL differ
            ("SELECT o.k AS k FROM t1 AS o WHERE (EXISTS (SELECT 1 FROM t3 AS i WHERE i.a = o.a)) = FALSE",
             "exists_negative"),
            ("SELECT o.k AS k FROM t1 AS o WHERE CASE WHEN EXISTS (SELECT 1 FROM t3 AS i WHERE i.a = o.a) "
             "THEN 0 ELSE 1 END = 1", "exists_negative"),
            ("SELECT o.k AS k FROM t1 AS o WHERE EXISTS (SELECT 1 FROM t3 AS i WHERE i.a = o.a) IS NOT TRUE",
             "exists_negative"),
            # DISTINCT ON keeps the first row of each group in the ORDER BY: the sort decides
            ("SELECT d.a AS a, d.k AS k FROM (SELECT DISTINCT ON (t1.a) t1.a AS a, t1.k AS k FROM t1 "
             "ORDER BY t1.a, t1.k DESC) AS d", "distinct_on_sorted"),
            ("WITH c AS (SELECT DISTINCT ON (t2.t1k) t2.t1k AS g, t2.k AS k FROM t2 ORDER BY t2.t1k, t2.k DESC) "
             "SELECT c.g AS g, c.k AS k FROM c", "distinct_on_sorted"),
            # IN subqueries with their own ORDER BY ... LIMIT under OR
            ("SELECT o.k AS k FROM t1 AS o WHERE o.a IN (SELECT i.a FROM t3 AS i ORDER BY i.a, i.b, i.s LIMIT 2) "
             "OR o.a IN (SELECT j.k FROM t2 AS j)", "in_limit_or"),
            (f"SELECT o.k AS k FROM t1 AS o WHERE o.a IN (SELECT i.k FROM t2 AS i ORDER BY i.k LIMIT {k})",
             "in_limit_key"),
            # correlated scalar aggregates next to outer joins, COUNT and arithmetic
            (f"SELECT o.k AS k FROM t1 AS o LEFT JOIN t2 AS j ON j.t1k = o.k WHERE o.a >= "
             f"(SELECT {self.pick(('MAX', 'MIN', 'SUM', 'AVG'))}(i.b) FROM t3 AS i WHERE i.a = o.a)", "scalar_outer"),
            ("SELECT o.k AS k FROM t1 AS o WHERE o.a >= (SELECT COALESCE(MAX(i.b), 0) FROM t3 AS i "
             "WHERE i.a = o.a)", "scalar_coalesce"),
            ("SELECT o.k AS k FROM t1 AS o WHERE o.b = (SELECT MAX(i.b) FROM t3 AS i WHERE i.a = o.a + 0)",
             "scalar_expr_corr"),
            # several scalar aggregates, one with DISTINCT, under DISTINCT / LIMIT
            (f"SELECT DISTINCT (SELECT COUNT(DISTINCT t3.a) FROM t3 WHERE t3.b > {k}) AS v0, (SELECT COUNT(*) "
             f"FROM t3 WHERE t3.b <= {k}) AS v1 FROM t1", "filtered_distinct"),
            # FILTER clauses whose condition folds to a constant
            (f"SELECT COUNT(*) FILTER (WHERE {self.pick(('1 = 1', '2 + 3 > 4', 't3.a > 1 OR 1 = 1', '1 = 0'))}) AS c, "
             f"SUM(t3.b) FILTER (WHERE t3.a > {k}) AS s FROM t3", "filter_constant"),
            # derived aggregate tables with DISTINCT aggregates and string aggregates
            (f"SELECT * FROM (SELECT COUNT(DISTINCT t3.b) AS a0 FROM t3 WHERE t3.a > {k}) AS s0, "
             f"(SELECT MAX(t3.s) AS a1 FROM t3 WHERE t3.a <= {k}) AS s1", "filtered_derived_distinct"),
        ]
        sql, shape = self.pick(cases)
        return GenQuery(sql, "hazard_" + shape, cols=None)

    def misc(self) -> GenQuery:
        """USING / NATURAL joins, quoted names, ordinals, windows, column lists, ANY / ALL, unqualified names."""
        k = self.k()
        j = self.pick(("JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"))
        cases = [
            f"SELECT * FROM t1 {j} t2 USING (k) WHERE t1.a > {k}",
            f"SELECT k, t1.a AS a FROM t1 {j} t2 USING (k)",
            "SELECT * FROM t1 NATURAL JOIN t2",
            "SELECT * FROM t1 AS x JOIN t1 AS y USING (k, a)",
            f"SELECT k AS k FROM t2 {j} t1 USING (k, a) WHERE k > {k}",
            'SELECT d."A" + d.a AS x FROM (SELECT t1.a AS "A", t1.b AS a FROM t1) AS d',
            'SELECT t1.a AS "A", t1.k AS "Kk" FROM t1',
            f'SELECT d."Kk" AS k FROM (SELECT t1.k AS "Kk", t1.a AS kk FROM t1) AS d WHERE d.kk > {k}',
            "SELECT t3.a, COUNT(*) FROM t3 GROUP BY 1",
            "SELECT t3.a AS g, SUM(t3.b) AS s FROM t3 GROUP BY g",
            "SELECT d.k AS k, d.rn AS rn FROM (SELECT t1.k AS k, ROW_NUMBER() OVER (PARTITION BY t1.a "
            "ORDER BY t1.k) AS rn FROM t1) AS d WHERE d.rn = 1",
            f"SELECT d.k AS k, d.s AS s FROM (SELECT t1.k AS k, SUM(t1.b) OVER (PARTITION BY t1.a) AS s FROM t1) "
            f"AS d WHERE d.k > {k}",
            f"SELECT d.x AS x FROM (SELECT t1.k, t1.a FROM t1) AS d(x, y) WHERE d.y > {k}",
            f"SELECT d.x AS x FROM (SELECT t1.k AS k, t1.a AS a FROM t1 UNION ALL SELECT t2.k, t2.a FROM t2) "
            f"AS d(x, y) WHERE d.y = {k}",
            "SELECT t1.k AS k FROM t1 WHERE t1.a > ALL (SELECT t3.a FROM t3)",
            "SELECT t1.k AS k FROM t1 WHERE t1.a = ANY (SELECT t3.b FROM t3)",
            "SELECT t1.k AS k FROM t1 WHERE t1.a <> ALL (SELECT t3.b FROM t3 WHERE t3.b IS NOT NULL)",
            f"SELECT t1.k AS k FROM t1 ORDER BY t1.k LIMIT 2 OFFSET {k % 3}",
            "SELECT k, a FROM t1 WHERE a IN (SELECT a FROM t3)",
            "SELECT k FROM t1 WHERE EXISTS (SELECT 1 FROM t3 WHERE t3.a = a)",
            "SELECT k FROM t1 WHERE b = (SELECT MAX(b) FROM t3 WHERE t3.a = t1.a)",
            "SELECT k FROM t1 WHERE b < (SELECT AVG(t3.b) FROM t3 WHERE a = t1.a)",
            "SELECT s, COUNT(*) AS n FROM t2 GROUP BY s HAVING COUNT(*) > 1",
        ]
        sql = self.pick(cases)
        ordered = "LIMIT" in sql
        return GenQuery(sql, "misc", ordered=ordered)

    def wrap(self, q: GenQuery) -> GenQuery:
        if not q.cols or len(set(q.cols)) != len(q.cols) or q.ordered:
            return q
        r = self.rng.random()
        cols = ", ".join(f"w.{c} AS {c}" for c in q.cols)
        if r < 0.4:
            sql = f"SELECT {cols} FROM ({q.sql}) AS w WHERE w.{q.cols[0]} IS NOT NULL"
        elif r < 0.7:
            sql = f"WITH w AS ({q.sql}) SELECT {cols} FROM w"
        else:
            sql = f"SELECT COUNT(*) AS n, COUNT(w.{q.cols[0]}) AS m FROM ({q.sql}) AS w"
        return GenQuery(sql, q.shape + "+wrap", duckdb_only=q.duckdb_only, cols=None)

    def query(self) -> GenQuery:
        fns = [f for f, _ in self.shapes]
        weights = [w for _, w in self.shapes]
        fn = self.rng.choices(fns, weights)[0]
        q: GenQuery = fn()
        if self.chance(0.12):
            q = self.wrap(q)
        # shapes added later replace some plain queries (basic, joins, misc), built from a side
        # stream: the main stream draws exactly as before, so the other shapes keep their queries
        # at the same positions (recorded runs and reproducers still replay)
        r = self.side.random()
        if fn in (self.basic, self.joins, self.misc) and r < 0.7:
            main, self.rng = self.rng, self.side
            try:
                q = self.count_test() if r < 0.3 else self.exists_neq()
            finally:
                self.rng = main
        self.n += 1
        return q


# One query per rule that meets its preconditions: every run starts with these, so that each rule
# is exercised even in a short run (the random queries then vary the shapes around them).
CORPUS: tuple[str, ...] = (
    "SELECT o.k AS k FROM t1 AS o WHERE o.a > (SELECT AVG(i.a) FROM t2 AS i WHERE i.t1k = o.k)",
    "SELECT o.k AS k FROM t1 AS o WHERE EXISTS (SELECT * FROM t2 AS i WHERE i.t1k = o.k AND i.a > 1) OR o.a = 2",
    "SELECT o.k AS k FROM t1 AS o WHERE o.a = 1 AND (o.k IN (SELECT i.t1k FROM t2 AS i) OR o.k IN (SELECT j.a FROM t3 AS j))",
    "SELECT o.a AS a FROM t1 AS o, (SELECT DISTINCT i.a AS a FROM t3 AS i) AS s WHERE o.a = s.a",
    "SELECT (SELECT COUNT(*) FROM t3 WHERE t3.a < 2) AS c, (SELECT AVG(t3.b) FROM t3 WHERE t3.a >= 2) AS m FROM t1 WHERE t1.k = 1",
    "SELECT * FROM (SELECT COUNT(*) AS a FROM t3 WHERE t3.a = 1 AND t3.b < 3) AS s1, (SELECT AVG(t3.b) AS b FROM t3 WHERE t3.a = 1 AND t3.b >= 3) AS s2",
    "WITH c AS (SELECT t3.a AS a FROM t3) SELECT c.a AS a FROM c, c AS d WHERE c.a = d.a",
    "SELECT d.k AS k FROM (SELECT t1.k AS k, 's' AS ty FROM t1 UNION ALL SELECT t2.k AS k, 'w' AS ty FROM t2) AS d WHERE d.ty = 's'",
    "SELECT t1.a AS a FROM t1 WHERE t1.b > 1 UNION ALL SELECT t2.a AS a FROM t2 WHERE 'w' = 's'",
    "SELECT t1.a AS a FROM t1 WHERE 1 = 1 AND t1.a > 2 + 3",
    "WITH c AS (SELECT t3.a AS a, SUM(t3.b) AS s FROM t3 GROUP BY t3.a) SELECT c.a AS a, c.s AS s FROM c",
    "SELECT d.a AS a FROM (SELECT t1.a AS a FROM t1 AS t1 WHERE t1.b = 1) AS d",
    "SELECT DISTINCT t1.k AS k, t1.a AS a FROM t1",
    "SELECT q.a AS a FROM t2 AS q LEFT JOIN t1 AS p ON p.k = q.t1k",
    "SELECT t3.a AS a FROM t3 WHERE t3.a IN (SELECT t1.k FROM t1 WHERE t1.b > 0)",
    "SELECT t1.k AS k FROM t1 WHERE t1.a IN (SELECT t3.a FROM t3 ORDER BY t3.a)",
    "SELECT d.a AS a FROM (SELECT t3.a AS a FROM t3 ORDER BY t3.a) AS d ORDER BY d.a",
    "WITH c AS (SELECT 1 AS a), d AS (SELECT t1.k AS k FROM t1) SELECT d.k AS k FROM d",
    "SELECT t1.a AS a FROM t1 UNION SELECT t3.a AS a FROM t3",
    "SELECT o.k AS k FROM t1 AS o WHERE (SELECT COUNT(*) FROM t2 AS i WHERE i.t1k = o.k AND i.a > 1) > 0",
    "SELECT o.k AS k FROM t1 AS o WHERE EXISTS (SELECT * FROM t2 AS i WHERE i.t1k = o.k AND i.a <> o.b)",
)


def generate(n: int, seed: int) -> list[GenQuery]:
    """``n`` random queries; the same seed gives the same queries."""
    g = Generator(seed)
    return [g.query() for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# engines


@dataclass
class Result:
    cols: list[str] | None = None
    rows: list[tuple[Any, ...]] | None = None
    error: str | None = None

    def brief(self, limit: int = 50) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        rows = self.rows or []
        return {"columns": self.cols, "rows": [[_show(v) for v in r] for r in rows[:limit]],
                "row_count": len(rows)}


def _show(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if v is None or isinstance(v, int | float | str | bool):
        return v
    return str(v)


class DuckEngine:
    name = "duckdb"

    def __init__(self, timeout_s: float = 5.0) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.timeout_s = timeout_s
        self.current: str | None = None

    def load(self, schema: str, ddl: list[str], data: Data) -> None:
        self.con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self.con.execute(f"CREATE SCHEMA {schema}")
        self.current = None  # the schema was dropped: set it again
        self._use(schema)
        for stmt in ddl:
            self.con.execute(stmt)
        for t, rows in data.items():
            if rows:
                self.con.executemany(f"INSERT INTO {t} VALUES ({', '.join('?' * len(rows[0]))})", rows)

    def _use(self, schema: str) -> None:
        if self.current != schema:
            self.con.execute(f"SET schema = '{schema}'")
            self.current = schema

    def run(self, schema: str, sql: str) -> Result:
        self._use(schema)
        timer = threading.Timer(self.timeout_s, self.con.interrupt)
        timer.start()
        try:
            cur = self.con.execute(sql)
            cols = [d[0] for d in cur.description or []]
            return Result(cols, cur.fetchall())
        except Exception as e:
            return Result(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        finally:
            timer.cancel()

    def close(self) -> None:
        self.con.close()


class PgEngine:
    name = "postgresql"

    def __init__(self, timeout_s: float = 5.0) -> None:
        import psycopg

        from sqlsluice.databases.pgcluster import PgCluster

        self.cluster = PgCluster()
        try:
            self.cluster.start()
            self.dsn = self.cluster.create_database("fuzz")
            self.admin = psycopg.connect(self.dsn, autocommit=True)
        except BaseException:  # also an interrupt while starting: leave no server behind
            self.cluster.stop()
            raise
        self.timeout_ms = int(timeout_s * 1000)
        self.readers: dict[str, Any] = {}

    def load(self, schema: str, ddl: list[str], data: Data) -> None:
        a = self.admin
        a.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
        a.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        a.execute(f"SET search_path TO {schema}")  # type: ignore[arg-type]
        for stmt in ddl:
            a.execute(stmt)  # type: ignore[arg-type]
        with a.cursor() as cur:
            for t, rows in data.items():
                if rows:
                    cur.executemany(f"INSERT INTO {t} VALUES ({', '.join(['%s'] * len(rows[0]))})",  # type: ignore[arg-type]
                                    rows)

    def _reader(self, schema: str) -> Any:
        import psycopg

        c = self.readers.get(schema)
        if c is None or c.closed:
            c = psycopg.connect(self.dsn, options=f"-c search_path={schema} -c statement_timeout={self.timeout_ms}"
                                " -c default_transaction_read_only=on")
            c.read_only = True  # every statement in its own READ ONLY transaction, rolled back
            self.readers[schema] = c
        return c

    def run(self, schema: str, sql: str) -> Result:
        c = self._reader(schema)
        try:
            with c.cursor() as cur:
                cur.execute(sql)
                cols = [d.name for d in cur.description or []]
                rows = cur.fetchall()
            return Result(cols, rows)
        except Exception as e:
            return Result(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        finally:
            try:
                c.rollback()
            except Exception:
                c.close()

    def close(self) -> None:
        for c in self.readers.values():
            c.close()
        self.admin.close()
        self.cluster.stop()


Engine = DuckEngine | PgEngine


# ---------------------------------------------------------------------------------------------
# comparison


def _norm(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int | Decimal):
        return ("n", v)  # exact: 3 == Decimal('3.00'), 1.0000000000000000000000000001 stays exact
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return ("f", str(v))
        return ("f", float(f"{v:.9g}"))
    return ("s", str(v))


def compare(a: Result, b: Result, ordered: bool) -> str | None:
    """None when ``b`` returns what ``a`` returns, else a short reason."""
    if b.error is not None:
        return f"candidate failed: {b.error}"
    if len(a.cols or []) != len(b.cols or []):
        return f"column count {len(a.cols or [])} != {len(b.cols or [])}"
    ra = [tuple(_norm(v) for v in r) for r in a.rows or []]
    rb = [tuple(_norm(v) for v in r) for r in b.rows or []]
    if ordered and ra != rb:
        return "rows differ (ordered)" if Counter(ra) == Counter(rb) else "rows differ"
    if Counter(ra) != Counter(rb):
        return f"rows differ ({len(ra)} vs {len(rb)} rows)"
    if a.cols != b.cols:
        return f"{RENAMED} {a.cols} != {b.cols}"  # same rows: only the names changed
    return None


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class RuleStats:
    fired: int = 0
    fired_by_engine: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    mismatches: Counter[str] = field(default_factory=Counter)
    fragile: int = 0
    raised: int = 0
    renamed: int = 0


@dataclass
class Finding:
    rule: str
    engine: str
    mode: str  # once | fixpoint
    query: GenQuery
    instance: str
    reason: str
    rule_obj: Rule | None = None


class _Chain:
    """A rule function that applies ``order`` (each rule to a fixed point), as a search might."""

    def __init__(self, order: list[Rule]) -> None:
        self.order = order
        self.applied: list[str] = []
        self.raised = 0

    def __call__(self, expr: exp.Expr, *, schema: Catalog | None = None, dialect: str | None = None) -> exp.Expr:
        def run(r: Rule, t: exp.Expr) -> exp.Expr:
            if r.needs and t.find(*r.needs) is None:
                return t
            try:
                return r.fn(t, schema=schema, dialect=dialect)
            except Exception:  # counted here, not in RULE_ERRORS: the rule's own row counts it once
                self.raised += 1
                return t

        tree, self.applied, _ = fixed_point(expr, self.order, run)
        return tree


class Fuzzer:
    """One run: the engines, the data instances and a cache of results."""

    def __init__(self, engines: Sequence[str] = ENGINES, seed: int = 0, timeout_s: float = 5.0,
                 log: Callable[[str], None] | None = None) -> None:
        self.catalog = catalog()
        self.seed = seed
        self.instances = {f"i{n}_{kind}": make_instance(kind, seed) for n, kind in enumerate(INSTANCE_KINDS)}
        self.engines: dict[str, Engine] = {}
        self.log = log or (lambda m: None)
        self.cache: dict[tuple[str, str, str], Result] = {}
        self.prepared: dict[tuple[str, str], tuple[exp.Expr, str]] = {}
        try:
            for e in engines:
                self.engines[e] = DuckEngine(timeout_s) if e == "duckdb" else PgEngine(timeout_s)
                for inst, data in self.instances.items():
                    self.engines[e].load(inst, self.ddl(e), data)
        except BaseException:
            self.close()
            raise

    def ddl(self, engine: str) -> list[str]:
        return self.catalog.to_ddl(SQLGLOT_DIALECT[engine], foreign_keys=False)

    def close(self) -> None:
        for e in self.engines.values():
            e.close()
        self.engines.clear()

    def run(self, engine: str, schema: str, sql: str) -> Result:
        key = (engine, schema, sql)
        r = self.cache.get(key)
        if r is None:
            r = self.engines[engine].run(schema, sql)
            if len(self.cache) > 200_000:
                self.cache.clear()
            self.cache[key] = r
        return r

    # rule application -----------------------------------------------------------------------
    def candidates(self, rule: Rule | None, raw: str, engine: str) -> tuple[str, dict[str, str]] | None:
        """``(input SQL, {mode: candidate SQL})`` for one rule (``None``: prepare) on one engine."""
        d = SQLGLOT_DIALECT[engine]
        got = self.prepared.get((raw, engine))
        if got is None:
            try:
                t = prepare(raw, self.catalog, d)
                got = (t, t.sql(dialect=d))
            except Exception:
                return None
            if len(self.prepared) > 64:
                self.prepared.clear()
            self.prepared[(raw, engine)] = got
        tree, base = got[0].copy(), got[1]  # a copy: a rule that edits its input must not spoil the next
        if rule is None:
            return raw, ({"once": base} if base != raw else {})
        try:
            once = run_rule(rule, tree, self.catalog, d)
            if once is tree:
                return base, {}
            out = {"once": once.sql(dialect=d)}
            if rule.name == CHAIN:  # already to a fixed point, rule by rule
                return base, {k: v for k, v in out.items() if v != base}
            done = [False]

            def step(r: Rule, t: exp.Expr) -> exp.Expr:
                if not done[0]:
                    done[0] = True
                    return once
                return run_rule(r, t, self.catalog, d)

            fixed, _, _ = fixed_point(tree, [rule], step)
            fsql = fixed.sql(dialect=d)
            if fsql != out["once"]:
                out["fixpoint"] = fsql
        except Exception as e:  # sql generation failed on a rule's output
            return base, {"once": f"/* rule output not printable: {type(e).__name__} */ SELECT"}
        return base, {k: v for k, v in out.items() if v != base}

    def check(self, rule: Rule | None, raw: str, engine: str, ordered: bool, schemas: Iterable[str],
              modes: Sequence[str] = ("once", "fixpoint")) -> tuple[bool, list[tuple[str, str, str]]]:
        """``(fired, [(mode, instance, reason)])`` for one rule, query and engine."""
        got = self.candidates(rule, raw, engine)
        if got is None:
            return False, []
        base, cands = got
        found = []
        for mode, cand in cands.items():
            if mode not in modes:
                continue
            for inst in schemas:
                a = self.run(engine, inst, base)
                if a.error is not None:
                    continue  # the rule's input fails on this engine: skipped
                b = self.run(engine, inst, cand)
                why = compare(a, b, ordered)
                if why is not None:
                    found.append((mode, inst, why))
                    break
        return bool(cands), found


def fuzz(*, queries: int, seed: int, engines: Sequence[str] = ENGINES, rules: Sequence[Rule] | None = None,
         include_prepare: bool = True, include_chain: bool = True, minimise: bool = True, max_reproducers: int = 3,
         log: Callable[[str], None] | None = None, progress: Callable[[int, int], None] | None = None
         ) -> dict[str, Any]:
    """Generate ``queries`` queries, check every rule on every engine; the report as a dict."""
    say = log or (lambda m: None)
    rules = list(RULES if rules is None else rules)
    chain = include_chain and len(rules) > 1
    names = ([PREPARE] if include_prepare else []) + [r.name for r in rules] + ([CHAIN] if chain else [])
    by_name: dict[str, Rule | None] = {PREPARE: None, **{r.name: r for r in rules}}
    stats = {n: RuleStats() for n in names}
    errors_before = Counter(RULE_ERRORS)
    head = [GenQuery(sql, "corpus") for sql in CORPUS[:queries // 4]]
    gen = head + generate(queries - len(head), seed)
    findings: list[Finding] = []
    warnings: list[dict[str, Any]] = []
    t0 = time.monotonic()
    fz = Fuzzer(engines, seed, log=say)
    try:
        schemas = list(fz.instances)
        chain_raised = 0
        for qi, q in enumerate(gen):
            if chain:
                order = list(rules)
                random.Random(f"{seed}:{qi}").shuffle(order)
                fn = _Chain(order)
                by_name[CHAIN] = Rule(CHAIN, None, "every rule in a seeded random order, each to a fixed point",
                                      fn, ("fuzz",))
            for name in names:
                rule = by_name[name]
                st = stats[name]
                fired_any = False
                for eng in engines:
                    if q.duckdb_only and eng != "duckdb":
                        continue
                    fired, found = fz.check(rule, q.sql, eng, q.ordered, schemas)
                    if fired:
                        fired_any = True
                        st.fired_by_engine[eng] += 1
                    for mode, inst, why in found:
                        if rule is None and why.startswith(RENAMED):
                            st.renamed += 1
                            continue
                        if q.fragile:
                            st.fragile += 1
                            warnings.append({"rule": name, "engine": eng, "sql": q.sql, "instance": inst,
                                             "reason": why, "note": "outer LIMIT over a derived table's ORDER BY: "
                                             "the original's rows are unspecified in SQL"})
                            continue
                        st.mismatches[eng] += 1
                        findings.append(Finding(name, eng, mode, q, inst, why, rule))
                if fired_any:
                    st.fired += 1
            if chain:
                chain_raised += fn.raised
            if progress is not None:
                progress(qi + 1, len(gen))
        for name in names:
            if name not in (PREPARE, CHAIN):
                stats[name].raised = RULE_ERRORS[name] - errors_before[name]
        if chain:
            stats[CHAIN].raised = chain_raised
        reproducers = []
        seen: Counter[tuple[str, str]] = Counter()
        for f in findings:
            if seen[(f.rule, f.engine)] >= max_reproducers:
                continue
            seen[(f.rule, f.engine)] += 1
            say(f"minimising {f.rule} on {f.engine}: {f.reason}")
            reproducers.append(reproduce(fz, f.rule_obj, f, minimise=minimise,
                                         minimised=seen[(f.rule, f.engine)] == 1))
    finally:
        fz.close()
    ddl = {e: catalog().to_ddl(SQLGLOT_DIALECT[e], foreign_keys=False) for e in engines}
    table = {n: {"fired": s.fired, "fired_by_engine": dict(s.fired_by_engine),
                 "mismatches": {e: s.mismatches[e] for e in engines}, "order_dependent": s.fragile,
                 "renamed_only": s.renamed, "raised": s.raised} for n, s in stats.items()}
    return {
        "settings": {"queries": queries, "seed": seed, "engines": list(engines), "rules": names,
                     "instances": list(INSTANCE_KINDS)},
        "schema_ddl": ddl,
        "shapes": dict(Counter(q.shape for q in gen)),
        "rules": table,
        "totals": {"queries": len(gen), "mismatches": sum(sum(s.mismatches.values()) for s in stats.values()),
                   "mismatching_rules": sorted(n for n, s in stats.items() if sum(s.mismatches.values())),
                   "rules_never_fired": sorted(n for n, s in stats.items() if not s.fired),
                   "order_dependent": sum(s.fragile for s in stats.values()),
                   "seconds": round(time.monotonic() - t0, 1)},
        "reproducers": reproducers,
        "findings": [{"rule": f.rule, "engine": f.engine, "mode": f.mode, "instance": f.instance,
                      "reason": f.reason, "sql": f.query.sql} for f in findings[:500]],
        "warnings": warnings[:20],
    }


# ---------------------------------------------------------------------------------------------
# minimisation


def _edit(tree: exp.Expr, i: int, action: str, arg: Any) -> None:
    """Apply one reduction to node ``i`` (in ``walk`` order) of ``tree``, in place."""
    node = list(tree.walk())[i]
    if action == "child":  # replace the node by one of its operands
        node.replace(node.args[arg])
    elif action == "unset":  # drop a clause
        node.set(arg, None)
    elif action == "item":  # drop a select item or a CTE
        node.expressions[arg].pop()
    elif action == "join":
        node.args["joins"][arg].pop()


def _reductions(sql: str, dialect: str) -> list[str]:
    """Smaller variants of ``sql``: one clause, predicate, item, join, CTE or branch dropped."""
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except Exception:
        return []
    edits: list[tuple[int, str, Any]] = []
    for i, n in enumerate(tree.walk()):
        if isinstance(n, exp.Union | exp.Intersect | exp.Except | exp.And | exp.Or):
            edits += [(i, "child", "this"), (i, "child", "expression")]
        elif isinstance(n, exp.Not):
            edits.append((i, "child", "this"))
        elif isinstance(n, exp.Select):
            edits += [(i, "unset", k) for k in ("where", "having", "group", "distinct", "limit")
                      if n.args.get(k) is not None]
            if n.args.get("order") is not None and n.args.get("limit") is None:
                edits.append((i, "unset", "order"))  # never an ORDER BY that a LIMIT needs
            if len(n.expressions) > 1:
                edits += [(i, "item", j) for j in range(len(n.expressions))]
            edits += [(i, "join", j) for j in range(len(n.args.get("joins") or []))]
        elif isinstance(n, exp.With) and len(n.expressions) > 1:
            edits += [(i, "item", j) for j in range(len(n.expressions))]
    out: list[str] = []
    for i, action, arg in edits:
        t = tree.copy()
        try:
            _edit(t, i, action, arg)
            v = t.sql(dialect=dialect)
        except Exception:
            continue
        if v != sql and v not in out:
            out.append(v)
    out.sort(key=len)
    return out


def _shrink_data(still: Callable[[Data], bool], data: Data, budget: list[int]) -> Data:
    cur = {t: list(r) for t, r in data.items()}
    for t in list(cur):
        rows = cur[t]
        chunk = max(1, len(rows) // 2)
        while rows and chunk >= 1 and budget[0] > 0:
            i = 0
            progressed = False
            while i < len(rows) and budget[0] > 0:
                trial = rows[:i] + rows[i + chunk:]
                budget[0] -= 1
                if still({**cur, t: trial}):
                    rows = trial
                    cur[t] = rows
                    progressed = True
                else:
                    i += chunk
            if not progressed:
                if chunk == 1:
                    break
                chunk = max(1, chunk // 2)
    return cur


def reproduce(fz: Fuzzer, rule: Rule | None, f: Finding, *, minimise: bool = True, minimised: bool = True
              ) -> dict[str, Any]:
    """A reproducer for a finding, minimised (query first, then data) when asked."""
    eng = f.engine
    d = SQLGLOT_DIALECT[eng]
    modes = (f.mode,)
    sql = f.query.sql
    data = fz.instances[f.instance]
    scratch = "mini"
    steps = 0
    if minimise and minimised:
        budget = [250]

        def fails_sql(s: str) -> bool:
            budget[0] -= 1
            return bool(fz.check(rule, s, eng, f.query.ordered, [f.instance], modes)[1])

        changed = True
        while changed and budget[0] > 0:
            changed = False
            for s in _reductions(sql, d):
                if budget[0] <= 0:
                    break
                if fails_sql(s):
                    sql, changed, steps = s, True, steps + 1
                    break

        def fails_data(dd: Data) -> bool:
            fz.engines[eng].load(scratch, fz.ddl(eng), dd)
            fz.cache = {k: v for k, v in fz.cache.items() if k[1] != scratch}
            return bool(fz.check(rule, sql, eng, f.query.ordered, [scratch], modes)[1])

        data = _shrink_data(fails_data, data, [150])
    fz.engines[eng].load(scratch, fz.ddl(eng), data)
    fz.cache = {k: v for k, v in fz.cache.items() if k[1] != scratch}
    got = fz.candidates(rule, sql, eng)
    base, cands = got if got is not None else (sql, {})
    cand = cands.get(f.mode) or cands.get("once") or ""
    a, b = fz.run(eng, scratch, base), fz.run(eng, scratch, cand) if cand else Result(error="rule no longer fires")
    reason = compare(a, b, f.query.ordered) if a.error is None else f"input failed: {a.error}"
    chain: dict[str, Any] = {}
    if rule is not None and isinstance(rule.fn, _Chain):
        chain = {"chain_order": [r.name for r in rule.fn.order], "chain_applied": list(rule.fn.applied)}
    return {**chain,"rule": f.rule, "engine": eng, "dialect": d, "mode": f.mode, "shape": f.query.shape,
            "reason": reason or f.reason, "ordered": f.query.ordered, "minimised": minimise and minimised,
            "query_steps": steps, "schema_ddl": fz.ddl(eng), "data_inserts": inserts(data),
            "generated_sql": f.query.sql, "original_sql": sql, "rule_input_sql": base, "rewritten_sql": cand,
            "original_result": a.brief(), "rewritten_result": b.brief()}


# ---------------------------------------------------------------------------------------------
# the command


def print_report(rep: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table as RTable

    engines = rep["settings"]["engines"]
    t = RTable(title=f"rules-fuzz: {rep['totals']['queries']} queries, seed {rep['settings']['seed']}, "
                     f"{rep['totals']['seconds']} s")
    t.add_column("rule", no_wrap=True)
    t.add_column("fired", justify="right")
    for e in engines:
        t.add_column(f"mismatches {e}", justify="right")
    t.add_column("order-dep.", justify="right")
    t.add_column("renamed only", justify="right")
    t.add_column("raised", justify="right")
    for name, s in rep["rules"].items():
        t.add_row(name, str(s["fired"]), *(str(s["mismatches"][e]) for e in engines), str(s["order_dependent"]),
                  str(s["renamed_only"]), str(s["raised"]))
    con = Console(width=max(Console().width, 150))
    con.print(t)
    tot = rep["totals"]
    con.print(f"mismatches: {tot['mismatches']} ({', '.join(tot['mismatching_rules']) or 'none'}); "
              f"rules never fired: {', '.join(tot['rules_never_fired']) or 'none'}")
    for r in rep["reproducers"]:
        if r["minimised"]:
            con.print(f"[bold]{r['rule']}[/bold] on {r['engine']}: {r['reason']}\n  original: {r['original_sql']}\n"
                      f"  rewritten: {r['rewritten_sql']}", markup=True, highlight=False)


def run_command(*, queries: int, seed: int, json_out: Path | None, backends: str, rules: str | None,
                progress: Callable[[int, int], None] | None = None) -> int:
    """``sluice bench rules-fuzz``: run, print the table, write the JSON; the exit code (1: a mismatch)."""
    from sqlsluice.errors import InvalidParameterValue
    from sqlsluice.rewriters.rules import BY_NAME

    engines = tuple(b.strip() for b in backends.split(",") if b.strip())
    bad = [b for b in engines if b not in ENGINES]
    if bad or not engines:
        raise InvalidParameterValue(f"unknown backend(s) {', '.join(bad) or backends!r}: use duckdb,postgresql")
    chosen: list[Rule] | None = None
    include_prepare = True
    if rules:
        wanted = [r.strip() for r in rules.split(",") if r.strip()]
        unknown = [r for r in wanted if r not in BY_NAME and r != PREPARE]
        if unknown:
            raise InvalidParameterValue(f"unknown rule(s): {', '.join(unknown)}")
        chosen = [BY_NAME[r] for r in wanted if r != PREPARE]
        include_prepare = PREPARE in wanted
    import signal

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through fuzz's finally: the PostgreSQL cluster is stopped

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        rep = fuzz(queries=queries, seed=seed, engines=engines, rules=chosen, include_prepare=include_prepare,
                   log=lambda m: print(m, file=sys.stderr, flush=True), progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_report(rep)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rep, indent=1, default=str), encoding="utf-8")
        print(f"wrote {json_out}")
    return 1 if rep["totals"]["mismatches"] else 0
