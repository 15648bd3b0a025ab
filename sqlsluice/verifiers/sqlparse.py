"""Parsing helpers shared by the tiers: parse, check tables, transpile to DuckDB, collect constants."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import cast

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.errors import SyntaxErrorSQL, UndefinedTable


def parse_query(sql: str, dialect: str) -> exp.Expression:
    """Parse one query; a syntax error or a non-query statement raises :class:`SyntaxErrorSQL`."""
    try:
        stmts = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as e:
        raise SyntaxErrorSQL(f"cannot parse SQL: {str(e).splitlines()[0]}: {sql[:80]!r}") from e
    if len(stmts) != 1:
        raise SyntaxErrorSQL(f"expected exactly one query, got {len(stmts)}: {sql[:80]!r}")
    q = stmts[0]
    if not isinstance(q, exp.Query):
        raise SyntaxErrorSQL(f"not a query (SELECT/UNION/...): {sql[:80]!r}")
    return cast(exp.Expression, q)


def referenced_tables(q: exp.Expression) -> set[str]:
    """Base-table names a query reads (CTE names excluded), lower-cased."""
    ctes = {c.alias_or_name.lower() for c in q.find_all(exp.CTE)}
    out = set()
    for t in q.find_all(exp.Table):
        if isinstance(t.this, exp.Identifier) and t.name:
            name = t.name.lower()
            if name not in ctes:
                out.add(name)
    return out


def check_tables(q: exp.Expression, catalog: Catalog, sql: str) -> set[str]:
    names = referenced_tables(q)
    for n in sorted(names):
        if catalog.table(n) is None:
            raise UndefinedTable(f"unknown table {n!r} in query {sql[:80]!r}")
    return names


def to_duckdb(q: exp.Expression, dialect: str) -> str:
    if dialect == "duckdb":
        return q.sql("duckdb")
    return q.sql("duckdb")


@dataclass
class Constants:
    ints: set[int] = field(default_factory=set)
    nums: set[float] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)
    dates: set[_dt.date] = field(default_factory=set)
    # column name (lower case) -> literals it is compared with (``c = 5``, ``c IN (..)``, BETWEEN)
    by_column: dict[str, set[str]] = field(default_factory=dict)
    # column names equated with another column (join keys)
    join_columns: set[str] = field(default_factory=set)


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def collect_constants(*qs: exp.Expression) -> Constants:
    """Literals of the queries, to aim generated data at their predicates."""
    c = Constants()
    for q in qs:
        for lit in q.find_all(exp.Literal):
            if lit.is_string:
                s = lit.this
                m = _DATE.match(s)
                if m:
                    try:
                        c.dates.add(_dt.date(int(m[1]), int(m[2]), int(m[3])))
                    except ValueError:
                        pass
                if len(s) <= 40:
                    c.strings.add(s)
                    if "%" in s or "_" in s:
                        c.strings.add(s.replace("%", "").replace("_", "x"))
                        c.strings.add(s.replace("%", "zz").replace("_", "y"))
            else:
                try:
                    v = float(lit.this)
                except ValueError:
                    continue
                if v.is_integer() and abs(v) < 2**62:
                    c.ints.add(int(v))
                else:
                    c.nums.add(v)
        for node in q.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like):
            col = node.this
            if isinstance(col, exp.Column):
                others = [node.expression] if not isinstance(node, exp.In | exp.Between) else (
                    node.expressions if isinstance(node, exp.In) else [node.args.get("low"), node.args.get("high")])
                for o in others:
                    if isinstance(o, exp.Literal):
                        c.by_column.setdefault(col.name.lower(), set()).add(o.this)
            elif isinstance(node.expression, exp.Column) and isinstance(col, exp.Literal):
                c.by_column.setdefault(node.expression.name.lower(), set()).add(col.this)
            if isinstance(node, exp.EQ) and isinstance(col, exp.Column) and isinstance(node.expression, exp.Column):
                c.join_columns.update({col.name.lower(), node.expression.name.lower()})
    return c


def sqlite_quoted_strings(q: exp.Expression, catalog: Catalog) -> exp.Expression:
    """SQLite reads a double-quoted name that names no column as a string: make it one.

    Conservative: only an unqualified, double-quoted name that is neither a column of a table
    the query reads nor an alias or column list name defined anywhere in the query.

    >>> from sqlsluice.databases import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE t (dept TEXT)", "sqlite")
    >>> q = sqlglot.parse_one('SELECT "dept" FROM t WHERE dept = "CV"', read="sqlite")
    >>> sqlite_quoted_strings(q, cat).sql("sqlite")
    'SELECT "dept" FROM t WHERE dept = \\'CV\\''
    """
    known: set[str] = set()
    for name in referenced_tables(q):
        t = catalog.table(name)
        if t is not None:
            known.update(c.name.lower() for c in t.columns)
    for node in q.find_all(exp.Alias, exp.TableAlias, exp.CTE):
        if node.alias:
            known.add(node.alias.lower())
        if isinstance(node, exp.TableAlias):
            known.update(c.name.lower() for c in node.columns)
    q = q.copy()
    for col in list(q.find_all(exp.Column)):
        ident = col.this
        if (isinstance(ident, exp.Identifier) and ident.quoted and not col.table
                and ident.name.lower() not in known):
            col.replace(exp.Literal.string(ident.name))
    return q
