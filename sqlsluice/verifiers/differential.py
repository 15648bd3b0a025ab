"""Tier 3: bounded differential testing with generated databases, on DuckDB or on SQLite itself.

Many small databases that satisfy the schema's constraints (primary keys and UNIQUE, NOT NULL,
foreign keys between the tables the queries read) are generated, random and aimed at the
queries' constants (each constant, its neighbours, NULLs); both queries run on each; the first
difference is shrunk row by row and returned as a counterexample.  Finding no difference proves
nothing: this tier only ever refutes.

The queries run through an :class:`Executor`: :class:`DuckDBExecutor` (the default) or
:class:`SQLiteExecutor` (the standard library's sqlite3, tables declared with the schema's own
column types so that SQLite's type affinity holds), so that a SQLite query is tested with
SQLite's semantics (integer division, ASCII case-insensitive LIKE, bare columns in aggregates).
Counterexamples are INSERT statements built as sqlglot expressions and written in the target
dialect, identifiers quoted, so that they replay in that engine.
"""

from __future__ import annotations

import datetime as _dt
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.verifiers.compare import Semantics, compare_results
from sqlsluice.verifiers.sqlparse import Constants
from sqlsluice.verifiers.verdict import Counterexample

Row = tuple[Any, ...]
DB = dict[str, list[Row]]


def _kind(type_sql: str) -> str:
    t = type_sql.upper()
    if "INT" in t and "INTERVAL" not in t:
        return "int"
    if any(k in t for k in ("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")):
        return "num"
    if "BOOL" in t:
        return "bool"
    if "TIMESTAMP" in t or "DATETIME" in t:
        return "ts"
    if "DATE" in t:
        return "date"
    if "TIME" in t:
        return "time"
    return "str"


def _ddl_type(type_sql: str) -> str:
    kind = _kind(type_sql)
    return {"int": "BIGINT", "num": type_sql if "DECIMAL" in type_sql.upper() or "NUMERIC" in type_sql.upper()
            else "DOUBLE", "bool": "BOOLEAN", "ts": "TIMESTAMP", "date": "DATE", "time": "TIME",
            "str": "VARCHAR"}[kind]


def literal(v: Any) -> str:
    """A DuckDB SQL literal for a generated value."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int | float | Decimal):
        return repr(v) if not isinstance(v, Decimal) else str(v)
    if isinstance(v, _dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, _dt.date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, _dt.time):
        return f"TIME '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


def value_sql(v: Any, dialect: str) -> exp.Expression:
    """A generated value as a sqlglot literal for ``dialect`` (SQLite: dates and times as ISO text)."""
    if v is None:
        return exp.Null()
    if isinstance(v, bool):
        return exp.Boolean(this=v) if dialect != "sqlite" else exp.Literal.number(int(v))
    if isinstance(v, int | float | Decimal):
        text = str(v) if isinstance(v, Decimal) else repr(v)
        return exp.Neg(this=exp.Literal.number(text[1:])) if text.startswith("-") else exp.Literal.number(text)
    for py, sql_type in ((_dt.datetime, "TIMESTAMP"), (_dt.date, "DATE"), (_dt.time, "TIME")):
        if isinstance(v, py):
            text = v.isoformat(sep=" ") if isinstance(v, _dt.datetime) else v.isoformat()
            lit = exp.Literal.string(text)
            return lit if dialect == "sqlite" else exp.cast(lit, sql_type)
    return exp.Literal.string(str(v))


def insert_sql(table: str, columns: list[str], rows: list[Row] | list[list[Any]], dialect: str) -> str:
    """One multi-row INSERT with every identifier quoted, written by sqlglot for ``dialect``.

    >>> print(insert_sql("t", ["18_49", "order", "my col"], [(1, None, "it's")], "sqlite"))
    INSERT INTO "t" ("18_49", "order", "my col") VALUES (1, NULL, 'it''s');
    """
    target = exp.Schema(this=exp.Table(this=exp.to_identifier(table, quoted=True)),
                        expressions=[exp.to_identifier(c, quoted=True) for c in columns])
    values = exp.Values(expressions=[exp.Tuple(expressions=[value_sql(v, dialect) for v in r]) for r in rows])
    return exp.Insert(this=target, expression=values).sql(dialect) + ";"


def _sqlite_value(v: Any) -> Any:
    """A generated value as sqlite3 binds it (the same text :func:`value_sql` writes for SQLite)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, _dt.date | _dt.time):
        return v.isoformat()
    return v


class Executor(Protocol):
    """Where the differential tier runs queries: one in-memory database of the planned tables."""

    engine: str  # sqlglot dialect of the engine
    errors: tuple[type[Exception], ...]  # what a failing query raises

    def create(self, table: str, columns: list[tuple[str, str]]) -> None: ...
    def load(self, table: str, rows: list[Row]) -> None: ...
    def run(self, sql: str) -> list[Row]: ...
    def interrupt(self) -> None: ...
    def close(self) -> None: ...


class DuckDBExecutor:
    """Embedded DuckDB; columns get DuckDB's type for their kind (:func:`_ddl_type`)."""

    engine = "duckdb"
    errors: tuple[type[Exception], ...] = (duckdb.Error,)

    def __init__(self) -> None:
        self.con = duckdb.connect(":memory:")

    def create(self, table: str, columns: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"{_quote(c, 'duckdb')} {_ddl_type(t)}" for c, t in columns)
        self.con.execute(f"CREATE TABLE {_quote(table, 'duckdb')} ({cols})")

    def load(self, table: str, rows: list[Row]) -> None:
        self.con.execute(f"DELETE FROM {_quote(table, 'duckdb')}")
        if rows:  # one INSERT with literals: much faster than executemany for a handful of rows
            vals = ", ".join("(" + ", ".join(literal(v) for v in r) + ")" for r in rows)
            self.con.execute(f"INSERT INTO {_quote(table, 'duckdb')} VALUES {vals}")

    def run(self, sql: str) -> list[Row]:
        return [tuple(r) for r in self.con.execute(sql).fetchall()]

    def interrupt(self) -> None:
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()


class SQLiteExecutor:
    """The standard library's sqlite3; columns keep the schema's declared type (type affinity)."""

    engine = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self) -> None:
        self.con = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)

    def create(self, table: str, columns: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"{_quote(c, 'sqlite')} {t}" for c, t in columns)
        self.con.execute(f"CREATE TABLE {_quote(table, 'sqlite')} ({cols})")

    def load(self, table: str, rows: list[Row]) -> None:
        self.con.execute(f"DELETE FROM {_quote(table, 'sqlite')}")
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            self.con.executemany(f"INSERT INTO {_quote(table, 'sqlite')} VALUES ({marks})",
                                 [tuple(_sqlite_value(v) for v in r) for r in rows])

    def run(self, sql: str) -> list[Row]:
        return [tuple(r) for r in self.con.execute(sql).fetchall()]

    def interrupt(self) -> None:
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()


class PostgresExecutor:
    """A configured PostgreSQL server (never one started per pair): the tables live in a schema of
    their own, dropped on close; columns keep the schema's declared types."""

    engine = "postgres"

    def __init__(self, url: str) -> None:
        import uuid

        import psycopg

        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self.con = psycopg.connect(url, autocommit=True)
        self.schema = f"sluice_verify_{uuid.uuid4().hex[:12]}"
        self.con.execute(f'CREATE SCHEMA "{self.schema}"')
        self.con.execute(f'SET search_path TO "{self.schema}"')

    def create(self, table: str, columns: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"{_quote(c, 'postgres')} {t}" for c, t in columns)
        self.con.execute(f"CREATE TABLE {_quote(table, 'postgres')} ({cols})")  # type: ignore[arg-type]

    def load(self, table: str, rows: list[Row]) -> None:
        self.con.execute(f"DELETE FROM {_quote(table, 'postgres')}")  # type: ignore[arg-type]
        if rows:
            marks = ", ".join("%s" for _ in rows[0])
            with self.con.cursor() as cur:
                cur.executemany(f"INSERT INTO {_quote(table, 'postgres')} VALUES ({marks})",  # type: ignore[arg-type]
                                [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in rows])

    def run(self, sql: str) -> list[Row]:
        cur = self.con.execute(sql)  # type: ignore[arg-type]
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def interrupt(self) -> None:
        self.con.cancel()

    def close(self) -> None:
        try:
            self.con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')  # type: ignore[arg-type]
        finally:
            self.con.close()


def make_executor(engine: str, url: str | None = None) -> Executor:
    """``"sqlite"`` runs on SQLite itself, ``"postgres"`` on the PostgreSQL at ``url``; anything
    else on DuckDB."""
    if engine == "postgres" and url:
        return PostgresExecutor(url)
    return SQLiteExecutor() if engine == "sqlite" else DuckDBExecutor()


def _quote(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect)


@dataclass
class DiffResult:
    counterexample: Counterexample | None = None
    databases: int = 0
    max_rows: int = 0
    total_rows: int = 0
    errors: int = 0
    note: str = ""
    first_error: str = ""


@dataclass
class _Col:
    name: str
    kind: str
    nullable: bool
    decimal_scale: int = 2
    limit: float = float("inf")  # DECIMAL(p, s): values below 10^(p - s) in magnitude fit


@dataclass
class _Tab:
    name: str
    cols: list[_Col]
    keys: list[list[int]] = field(default_factory=list)
    fks: list[tuple[list[int], str, list[int]]] = field(default_factory=list)


class DifferentialTester:
    """Runs two queries on generated databases of the tables they read.

    ``engine``: where the queries run (``"duckdb"``, the default, ``"sqlite"``, or ``"postgres"``
    with ``url``; the queries must be written for it).  ``dialect``: the dialect the counterexample INSERTs are written in
    (default: the catalog's).
    """

    def __init__(self, catalog: Catalog, tables: set[str], q1: str, q2: str, constants: Constants, *,
                 semantics: Semantics = "bag", ordered: bool = False, seed: int = 0,
                 nondeterministic: bool = False, engine: str = "duckdb", dialect: str | None = None,
                 url: str | None = None) -> None:
        self.q1, self.q2 = q1, q2
        self.semantics = semantics
        self.ordered = ordered
        self.nondet = nondeterministic
        self.rng = random.Random(seed)
        self.dense_rng = random.Random(seed + 1)  # the dense databases' own generator (search)
        self.catalog = catalog
        self.exe = make_executor(engine, url)
        self.engine = self.exe.engine
        self.errors = self.exe.errors
        self.dialect = dialect or catalog.dialect or self.engine
        self.tabs = self._plan(catalog, tables)
        for t in self.tabs:
            table = catalog.table(t.name)
            assert table is not None
            self.exe.create(t.name, [(c.name, col.type if (col := table.column(c.name)) else "VARCHAR")
                                     for c in t.cols])
        self._tie_variants: dict[tuple[str, int], tuple[str, str] | None] = {}
        self.last_hit = False  # whether a query returned rows on the last database tried
        self._keyed: dict[tuple[str, str, int], tuple[str, int] | None] = {}
        # Both queries sort (ORDER BY at the top) but neither order is total: results are still
        # compared as bags, and also as lists where both orders are determined (no ties between
        # rows that differ), so that a wrong ORDER direction is refuted.
        self.sorted_both = (semantics == "bag" and not ordered
                            and all(_top_sorted(q, self.engine) for q in (q1, q2)))
        # a query that compares a count with n needs groups of more than n rows: now and then a
        # database that large (up to 60 rows a table), most rows copies of one with new keys
        self.count_rows = min(60, max((v for v in constants.ints if 8 <= v <= 58), default=0) + 2)
        self.pools = self._pools(constants)
        self.exact: dict[str, dict[str, list[Any]]] = {}  # per column name, the literals themselves
        self.aimed = self._aimed(constants)
        self.join_columns = set(constants.join_columns)
        self.negated = negated_tables(q1, self.engine) | negated_tables(q2, self.engine)
        self._deadline: float | None = None
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="sluice-verify-watchdog", daemon=True)
        self._watchdog.start()

    def close(self) -> None:
        self._closed.set()
        self._watchdog.join(timeout=1.0)
        self.exe.close()

    # -- schema ---------------------------------------------------------------------------

    def _plan(self, catalog: Catalog, names: set[str]) -> list[_Tab]:
        tabs: dict[str, _Tab] = {}
        for n in sorted(names):
            t = catalog.table(n)
            if t is None:
                continue
            cols = [_Col(c.name, _kind(c.type), c.nullable, _scale(c.type), _limit(c.type)) for c in t.columns]
            idx = {c.name.lower(): i for i, c in enumerate(cols)}
            keys = [[idx[k.lower()] for k in key if k.lower() in idx] for key in t.keys]
            tabs[t.name.lower()] = _Tab(t.name, cols, [k for k in keys if k])
        for n, tab in tabs.items():
            t = catalog.table(n)
            assert t is not None
            idx = {c.name.lower(): i for i, c in enumerate(tab.cols)}
            for fk in t.foreign_keys:
                parent = tabs.get(fk.ref_table.lower())
                if parent is None:
                    continue  # parent not read by the queries: any child value is consistent
                pidx = {c.name.lower(): i for i, c in enumerate(parent.cols)}
                try:
                    tab.fks.append(([idx[c.lower()] for c in fk.columns], parent.name.lower(),
                                    [pidx[c.lower()] for c in fk.ref_columns]))
                except KeyError:
                    continue
        # parents before children (self references are generated from the table's own rows)
        order: list[_Tab] = []
        seen: set[str] = set()

        def visit(n: str, stack: tuple[str, ...] = ()) -> None:
            if n in seen or n in stack:
                return
            for _, p, _ in tabs[n].fks:
                if p != n:
                    visit(p, (*stack, n))
            seen.add(n)
            order.append(tabs[n])

        for n in tabs:
            visit(n)
        return order

    def _pools(self, k: Constants) -> dict[str, list[Any]]:
        ints = {0, 1, 2, 3, -1, 10, 20, 30}
        for v in k.ints:
            ints.update({v - 1, v, v + 1})
        if self.count_rows > 2:  # enough distinct keys for the large databases
            ints.update(range(100, 100 + self.count_rows))
        nums = {0.0, 1.0, 1.5, -2.5, 100.0, 10.0}
        for f in k.nums:
            nums.update({f, f - 0.5, f + 0.5})
        for v in k.ints:
            nums.update({float(v), v - 0.5, v + 0.5})
        strs = {"a", "b", "", "A", "ab"} | set(k.strings)
        if self.engine == "sqlite":  # numbers as text: TEXT columns compared with numbers (affinity)
            strs |= {str(v) for v in k.ints} | {str(v + 1) for v in k.ints}
            strs |= {s.swapcase() for s in k.strings if s.swapcase() != s}  # LIKE is ASCII case-insensitive
            strs |= {"1", "2", "10", "1.5"}  # numbers kept as TEXT, compared with numbers or sums of them
        base = _dt.date(2000, 1, 1)
        dates = {base, base + _dt.timedelta(days=1), _dt.date(1999, 12, 31), _dt.date(2002, 6, 15)}
        for d in k.dates:
            dates.update({d, d - _dt.timedelta(days=1), d + _dt.timedelta(days=1)})
        # SQLite keeps dates as text: a DATE column can hold a date and time ('2000-01-01 12:30:00')
        with_times = ([_dt.datetime(d.year, d.month, d.day, 12, 30) for d in sorted(dates)]
                      if self.engine == "sqlite" else [])
        return {
            "int": sorted(v for v in ints if abs(v) < 2**62),
            "num": sorted(nums),
            "str": sorted(strs),
            "bool": [True, False],
            "date": sorted(dates) + with_times,
            "ts": sorted(_dt.datetime(d.year, d.month, d.day) for d in dates)
            + [_dt.datetime(2000, 1, 1, 12, 30)],
            "time": [_dt.time(0, 0), _dt.time(12, 34, 56), _dt.time(23, 59, 59)],
        }

    def _aimed(self, k: Constants) -> dict[str, dict[str, list[Any]]]:
        """Per column name, the values around the literals it is compared with in the queries."""
        out: dict[str, dict[str, list[Any]]] = {}
        for name, lits in k.by_column.items():
            kinds: dict[str, set[Any]] = {}
            for lit in lits:
                try:
                    f = float(lit)
                    if f.is_integer() and abs(f) < 2**62:
                        kinds.setdefault("int", set()).update({int(f) - 1, int(f), int(f) + 1})
                    kinds.setdefault("num", set()).update({f - 0.5, f, f + 0.5})
                    if self.engine == "sqlite":  # TEXT compared with a number: type affinity
                        kinds.setdefault("str", set()).add(lit)
                except ValueError:
                    kinds.setdefault("str", set()).update({lit, lit.replace("%", "").replace("_", "x")})
                    if self.engine == "sqlite":  # LIKE is ASCII case-insensitive in SQLite
                        kinds["str"].add(lit.replace("%", "").replace("_", "x").swapcase())
                    try:
                        d = _dt.date.fromisoformat(lit[:10])
                        around = {d - _dt.timedelta(days=1), d, d + _dt.timedelta(days=1)}
                        kinds.setdefault("date", set()).update(around)
                        kinds.setdefault("ts", set()).update(_dt.datetime(x.year, x.month, x.day) for x in around)
                    except ValueError:
                        pass
            # the literal itself twice as often as its neighbours
            exact = {kind: [x for x in v if repr(x) in {repr(y) for y in _exact(lits, kind)}] for kind, v in kinds.items()}
            out[name] = {kind: sorted(v, key=repr) + exact[kind] for kind, v in kinds.items()}
            self.exact[name] = {kind: v for kind, v in exact.items() if v}
        return out

    # -- generation -------------------------------------------------------------------------
    def _value(self, c: _Col, pool_cap: int, null_p: float, focus: float = 0.0, join_width: int = 2) -> Any:
        aimed = self.aimed.get(c.name.lower(), {}).get(c.kind)
        filtered = focus == 1.0 and (aimed or c.name.lower() in self.join_columns)  # dense: never NULL
        if c.nullable and not filtered and self.rng.random() < null_p:
            return None
        pool = self.pools[c.kind]
        if aimed and self.rng.random() < focus:
            exact = self.exact.get(c.name.lower(), {}).get(c.kind) if focus == 1.0 else None
            pool = exact if exact and self.rng.random() < 0.7 else aimed  # dense: mostly the literal itself
        elif c.name.lower() in self.join_columns and self.rng.random() < focus:
            pool = pool[:join_width]  # join keys from two values (or one): joins find partners
        if c.limit != float("inf"):  # a number the column cannot hold would fail the whole database
            pool = [v for v in pool if abs(v) < c.limit] or [0]
        if pool_cap < len(pool):
            pool = pool[:pool_cap] if self.rng.random() < 0.5 else self.rng.sample(pool, pool_cap)
        v = self.rng.choice(pool)
        if c.kind == "num" and isinstance(v, float):
            return Decimal(str(round(v, c.decimal_scale))) if c.decimal_scale >= 0 else v
        return v

    def generate(self, max_rows: int, *, large: bool = False, dense: bool = False) -> DB:
        """One random database of at most ``max_rows`` rows a table (``large``: at least half as many,
        mostly copies of one row).  ``dense``: every column compared with a literal takes a value
        aimed at it (mostly the literal itself), join columns one or two values, neither NULL, most tables non-empty
        (those read only under NOT EXISTS mostly empty) and half the rows copies of another with new keys
        (foreign keys drawn again from few parents): a query joining many filtered tables returns
        rows only when every filter holds at once, which independent draws rarely give (1 database
        in 150 on DSB's q10 shape), and a join that should have been a semi-join shows only when
        one parent row has two matching children."""
        db: DB = {}
        pool_cap = self.rng.choice([2, 3, 4, 8, 100])
        null_p = self.rng.choice([0.0, 0.1, 0.3])
        dup_p = (0.95 if large else 0.5 if dense  # near-duplicate rows: DISTINCT, bags
                 else self.rng.choice([0.0, 0.0, 0.5]))
        focus = self.rng.choice([0.3, 0.8, 0.95]) if not dense else 1.0  # how often a column takes aimed values
        join_width = 2 if not dense else self.rng.choice([1, 2])
        filled = self.rng.choice([0.6, 0.9]) if dense else 0.0  # dense: how many tables get rows
        for t in self.tabs:
            low = max_rows // 2 if large else 1 if dense and self.rng.random() < filled else 0
            n = self.rng.randint(low, max_rows)
            if dense and t.name.lower() in self.negated and self.rng.random() < 0.7:
                n = 0  # a table read only under NOT EXISTS / NOT IN: rows there mostly empty the result
            rows: list[Row] = []
            seen_keys: list[set[tuple[Any, ...]]] = [set() for _ in t.keys]
            for _ in range(n * 2):
                if len(rows) >= n:
                    break
                if rows and self.rng.random() < dup_p:
                    # copy a row and redraw only its key columns
                    row = list(self.rng.choice(rows))
                    for key in t.keys:
                        for i in key:
                            row[i] = self._value(t.cols[i], 100, 0.0)
                else:
                    row = [self._value(c, pool_cap, null_p, focus, join_width) for c in t.cols]
                ok = True
                for cols, parent, pcols in t.fks:
                    prow = self._pick_parent(db, rows, t, parent, pcols)
                    if prow is None:
                        if all(t.cols[i].nullable for i in cols):
                            for i in cols:
                                row[i] = None
                        else:
                            ok = False
                    else:
                        for i, v in zip(cols, prow, strict=True):
                            row[i] = v
                for ki, key in enumerate(t.keys):
                    kv = tuple(row[i] for i in key)
                    if any(v is None for v in kv):
                        if any(not t.cols[i].nullable for i in key):
                            ok = False
                        continue  # UNIQUE allows NULLs
                    if kv in seen_keys[ki]:
                        ok = False
                if ok:
                    for ki, key in enumerate(t.keys):
                        seen_keys[ki].add(tuple(row[i] for i in key))
                    rows.append(tuple(row))
            db[t.name] = rows
        return db

    def _pick_parent(self, db: DB, own: list[Row], t: _Tab, parent: str, pcols: list[int]) -> tuple[Any, ...] | None:
        prows = own if parent == t.name.lower() else next(
            (r for name, r in db.items() if name.lower() == parent), [])
        cands = [tuple(r[i] for i in pcols) for r in prows]
        cands = [c for c in cands if all(v is not None for v in c)]
        if not cands or (self.rng.random() < 0.1 and parent == t.name.lower()):
            return None
        return self.rng.choice(cands)

    # -- execution ------------------------------------------------------------------------
    def load(self, db: DB, reverse: bool = False) -> None:
        for t in self.tabs:
            rows = db.get(t.name, [])
            self.exe.load(t.name, list(reversed(rows)) if reverse else rows)

    def run(self, sql: str, deadline: float) -> list[Row]:
        self._deadline = deadline
        try:
            return self.exe.run(sql)
        finally:
            self._deadline = None

    def _watch(self) -> None:
        """One watchdog per tester: interrupts a query that runs past its deadline."""
        while not self._closed.wait(0.05):
            d = self._deadline
            if d is not None and time.monotonic() > d:
                self._deadline = None
                self.exe.interrupt()

    def differs(self, db: DB, deadline: float) -> tuple[list[Row], list[Row]] | None:
        """Both result sets when the queries differ on ``db`` (and the difference is stable)."""
        self.load(db)
        r1 = self.run(self.q1, deadline)
        r2 = self.run(self.q2, deadline)
        self.last_hit = bool(r1 or r2)
        if compare_results(r1, r2, semantics=self.semantics, ordered=self.ordered):
            if not self.sorted_both or compare_results(r1, r2, semantics=self.semantics, ordered=True):
                return None
            # the same rows in another order: a difference when each query's order is determined
            # on this database (its list is the same whichever way its ties are broken)
            return (r1, r2) if self._orders_determined(r1, r2, deadline) else None
        # Guard against order-dependent queries (LIMIT without a total order, ROW_NUMBER ...):
        # a difference counts only if each query returns the same rows when the insertion order flips
        # (the same list when the results are compared as lists: a wrongly assumed total order).
        self.load(db, reverse=True)
        s1 = self.run(self.q1, deadline)
        s2 = self.run(self.q2, deadline)
        if not (compare_results(r1, s1, semantics=self.semantics, ordered=self.ordered)
                and compare_results(r2, s2, semantics=self.semantics, ordered=self.ordered)):
            return None
        if compare_results(s1, s2, semantics=self.semantics, ordered=self.ordered):
            return None
        self.load(db)
        if self._rests_on_tie(r1, r2, deadline):
            return None
        return r1, r2

    def _rests_on_tie(self, r1: list[Row], r2: list[Row], deadline: float) -> bool:
        """True when the difference may be only which rows tie at an ORDER BY ... LIMIT boundary.

        Each query with a top-level ORDER BY and LIMIT is run again with its ties broken both
        ways (every output column appended to the ORDER BY, ascending then descending); when
        some way of breaking the ties of q1 gives some way of breaking those of q2, the database
        proves nothing.  (The caller has loaded the database.)

        Under bag semantics, when both queries are plain enough (:func:`keyed_variant`), the
        check is exact instead: each query's possible results are its rows before the boundary
        tie plus any choice of the rows tied at the boundary, and the database proves something
        only when no possible result of q1 is one of q2."""
        if self.semantics == "bag" and not self.ordered:  # lists (total orders) are compared below
            try:
                c1, c2 = self._choices(self.q1, r1, deadline), self._choices(self.q2, r2, deadline)
            except self.errors as e:
                if "interrupt" in str(e).lower() or "cancel" in str(e).lower():
                    return True
                c1 = c2 = None
            if c1 is not None and c2 is not None:
                return possibly_equal(c1, c2)
        outs: list[list[list[Row]]] = []
        for q, r in ((self.q1, r1), (self.q2, r2)):
            seen = [r]
            v = self._tie_breaks(q, len(r[0])) if r else None
            if v is not None:
                try:
                    seen += [self.run(v[0], deadline), self.run(v[1], deadline)]
                except self.errors as e:
                    if "interrupt" in str(e).lower() or "cancel" in str(e).lower():
                        return True  # ran out of time (a loaded machine): the ties were not checked
                    # a variant the engine rejects: the reversed-load check stands alone
            outs.append(seen)
        if len(outs[0]) == 1 and len(outs[1]) == 1:
            return False
        return any(compare_results(a, b, semantics=self.semantics, ordered=self.ordered)
                   for a in outs[0] for b in outs[1])

    def _choices(self, sql: str, r: list[Row], deadline: float) -> Choices | None:
        """``(fixed rows, rows tied at the LIMIT boundary, how many of those)`` for ``sql`` on the
        loaded database (its result ``r``); None when the query is not plain enough."""
        if not r:
            return [], [], 0
        width = len(r[0])
        key = ("keyed", sql, width)
        if key not in self._keyed:
            self._keyed[key] = keyed_variant(sql, width, self.engine)
        v = self._keyed[key]
        if v is None:
            return None
        if v[0] == "":
            return list(r), [], 0  # no LIMIT: the rows are the rows
        variant, limit = v
        rows = self.run(variant, deadline)
        if len(rows) <= limit:
            return [x[:width] for x in rows], [], 0
        boundary = rows[limit - 1][width:]
        fixed = [x[:width] for x in rows[:limit] if x[width:] != boundary]
        pool = [x[:width] for x in rows if x[width:] == boundary]
        choice = (fixed, pool, limit - len(fixed))
        return choice if possibly_equal(choice, (list(r), [], 0)) else None  # the analysis must explain r

    def _tie_breaks(self, sql: str, width: int, *, need_limit: bool = True) -> tuple[str, str] | None:
        key = (sql, width) if need_limit else (sql, -width)
        if key not in self._tie_variants:
            self._tie_variants[key] = tie_break_variants(sql, width, self.engine, need_limit=need_limit)
        return self._tie_variants[key]

    def _orders_determined(self, r1: list[Row], r2: list[Row], deadline: float) -> bool:
        """Each query returns the same list with its ties broken ascending and descending by every
        output column (the caller has loaded the database)."""
        for q, r in ((self.q1, r1), (self.q2, r2)):
            if not r:
                continue
            v = self._tie_breaks(q, len(r[0]), need_limit=False)
            if v is None:
                return False
            try:
                if not all(compare_results(r, self.run(x, deadline), semantics="bag", ordered=True) for x in v):
                    return False
            except self.errors:
                return False
        return True

    def search(self, budget_s: float, *, max_dbs: int = 100000, min_dbs: int = 0) -> DiffResult:
        """Try databases until ``budget_s`` is spent, but at least ``min_dbs`` of them (within four
        times the budget), so that a loaded machine does not silently test less."""
        res = DiffResult()
        start = time.monotonic()
        deadline = start + budget_s
        hard = start + 4 * budget_s + 0.5
        i = 0
        while i < max_dbs and ((now := time.monotonic()) < deadline or (i < min_dbs and now < hard)):
            # sizes grow slowly: most bugs show on 1-3 rows, joins and groups need a few more
            max_rows = 1 + min(7, i // 15) if i % 5 else self.rng.randint(0, 3)
            large = self.count_rows > 2 and i % 10 == 7
            batch = [self.generate(self.count_rows if large else max_rows, large=large)]
            i += 1
            if i % 4 == 1:  # now and then a dense database too, from a generator of its own (so that
                # the sequence of the other databases stays what it was), and its rows doubled
                self.rng, self.dense_rng = self.dense_rng, self.rng
                try:
                    batch.append(self.generate(self.rng.randint(1, 3), dense=True))
                finally:
                    self.rng, self.dense_rng = self.dense_rng, self.rng
            for n, db in enumerate(batch):
                res.databases += 1
                sizes = [len(r) for r in db.values()]
                res.max_rows = max(res.max_rows, max(sizes, default=0))
                res.total_rows += sum(sizes)
                try:
                    d = self.differs(db, max(deadline, time.monotonic()) + 1.0)
                    if d is None and n and self.last_hit and (twice := self.doubled(db)) is not None:
                        db, d = twice, self.differs(twice, max(deadline, time.monotonic()) + 1.0)
                        res.databases += 1
                except self.errors as e:
                    res.errors += 1
                    if not res.first_error:
                        res.first_error = str(e).splitlines()[0]
                    continue
                if d is not None:
                    db, d = self.shrink(db, d, start + budget_s * 1.5 + 0.5)
                    res.counterexample = Counterexample(
                        inserts=self.inserts(db), q1_rows=[list(r) for r in d[0]], q2_rows=[list(r) for r in d[1]])
                    return res
        return res

    def doubled(self, db: DB) -> DB | None:
        """``db`` with every row copied once, the copy's key columns given values no row has.

        Tried after a database on which a query returns rows: every row that matched once now has a
        twin with the same join and filter values, so a rewrite that joins where the original tested
        for existence (EXISTS written as a join of the matching rows, without DISTINCT) counts a
        customer twice.  Still a database of the schema: keys stay unique (fresh values), a table
        whose key includes a foreign-key column keeps its rows as they are (a fresh value would
        reference no parent), and a table without a key gets exact copies.  None when nothing could
        be copied."""
        out: DB = {}
        fresh = 0
        copied = False
        for t in self.tabs:
            rows = db.get(t.name, [])
            key_cols = sorted({i for key in t.keys for i in key})
            fk_cols = {i for cols, _, _ in t.fks for i in cols}
            if not rows or any(i in fk_cols or t.cols[i].kind in ("bool", "time") for i in key_cols):
                out[t.name] = rows
                continue
            taken = [{r[i] for r in rows} for i in key_cols]
            twins = []
            for r in rows:
                row = list(r)
                for j, i in enumerate(key_cols):
                    v = _distinct_value(t.cols[i].kind, 10_000 + fresh)
                    fresh += 1
                    if v in taken[j] or (isinstance(v, int) and abs(v) >= t.cols[i].limit):
                        break
                    row[i] = v
                else:
                    twins.append(tuple(row))
                    continue
                break
            if len(twins) != len(rows):
                out[t.name] = rows
                continue
            out[t.name] = rows + twins
            copied = True
        return out if copied else None

    def shrink(self, db: DB, d: tuple[list[Row], list[Row]], deadline: float) -> tuple[DB, tuple[list[Row], list[Row]]]:
        """Delete rows one at a time while the queries still differ (FK-consistent deletions only)."""
        changed = True
        while changed and time.monotonic() < deadline:
            changed = False
            for t in reversed(self.tabs):
                rows = db[t.name]
                j = 0
                while j < len(rows) and time.monotonic() < deadline:
                    cand = dict(db)
                    cand[t.name] = rows[:j] + rows[j + 1:]
                    if not self._fk_ok(cand):
                        j += 1
                        continue
                    try:
                        nd = self.differs(cand, deadline + 1.0)
                    except self.errors:
                        nd = None
                    if nd is not None:
                        db, d, rows, changed = cand, nd, cand[t.name], True
                    else:
                        j += 1
        self.load(db)
        return db, d

    def _fk_ok(self, db: DB) -> bool:
        for t in self.tabs:
            for cols, parent, pcols in t.fks:
                pname = next(x.name for x in self.tabs if x.name.lower() == parent)
                have = {tuple(r[i] for i in pcols) for r in db[pname]}
                for r in db[t.name]:
                    v = tuple(r[i] for i in cols)
                    if all(x is not None for x in v) and v not in have:
                        return False
        return True

    def inserts(self, db: DB) -> list[str]:
        """The database as INSERTs; parents the queries do not read get the rows their children's
        foreign keys need (key values, other columns NULL or a default), listed first."""
        out = self._parent_inserts(db)
        for t in self.tabs:
            rows = db.get(t.name, [])
            if rows:
                out.append(insert_sql(t.name, [c.name for c in t.cols], rows, self.dialect))
        return out


    def _parent_inserts(self, db: DB) -> list[str]:
        planned = {t.name.lower() for t in self.tabs}
        needed: dict[str, dict[tuple[str, ...], set[tuple[Any, ...]]]] = {}
        for t in self.tabs:
            table = self.catalog.table(t.name)
            if table is None:
                continue
            idx = {c.name.lower(): i for i, c in enumerate(t.cols)}
            for fk in table.foreign_keys:
                if fk.ref_table.lower() in planned or self.catalog.table(fk.ref_table) is None:
                    continue
                try:
                    cols = [idx[c.lower()] for c in fk.columns]
                except KeyError:
                    continue
                vals = {tuple(r[i] for i in cols) for r in db.get(t.name, [])}
                vals = {v for v in vals if all(x is not None for x in v)}
                if vals:
                    needed.setdefault(fk.ref_table.lower(), {}).setdefault(
                        tuple(c.lower() for c in fk.ref_columns), set()).update(vals)
        out = []
        defaults = {"int": 0, "num": 0, "str": "", "bool": False, "date": _dt.date(2000, 1, 1),
                    "ts": _dt.datetime(2000, 1, 1), "time": _dt.time(0, 0)}
        for pname, by_cols in needed.items():
            p = self.catalog.table(pname)
            assert p is not None
            key_cols = {c.lower() for key in p.keys for c in key}
            rows: list[list[Any]] = []
            for kcols, vals in by_cols.items():
                for v in sorted(vals, key=repr):
                    given = dict(zip(kcols, v, strict=True))
                    row = []
                    for c in p.columns:
                        if c.name.lower() in given:
                            row.append(given[c.name.lower()])
                        elif c.name.lower() in key_cols:  # a key column: a value of its own per row
                            row.append(_distinct_value(_kind(c.type), len(rows)))
                        else:
                            row.append(None if c.nullable else defaults[_kind(c.type)])
                    rows.append(row)
            out.append(insert_sql(p.name, [c.name for c in p.columns], rows, self.dialect))
        return out


Choices = tuple[list[Row], list[Row], int]


def possibly_equal(c1: Choices, c2: Choices) -> bool:
    """Whether some result of the first equals (as a bag) some result of the second, each result
    being its fixed rows plus ``k`` of its tied rows.

    >>> possibly_equal(([("a",)], [("b",), ("c",)], 1), ([("a",), ("c",)], [], 0))
    True
    >>> possibly_equal(([("a",)], [("b",), ("c",)], 1), ([("b",), ("c",)], [], 0))
    False
    """
    from collections import Counter

    (f1, p1, k1), (f2, p2, k2) = c1, c2
    a, b, pa, pb = Counter(f1), Counter(f2), Counter(p1), Counter(p2)
    need_from_p1, need_from_p2 = b - a, a - b  # rows one side fixes and the other must choose
    if need_from_p1 - pa or need_from_p2 - pb:
        return False
    m1, m2 = k1 - sum(need_from_p1.values()), k2 - sum(need_from_p2.values())
    if m1 != m2 or m1 < 0:
        return False
    return sum(((pa - need_from_p1) & (pb - need_from_p2)).values()) >= m1


def keyed_variant(sql: str, width: int, dialect: str) -> tuple[str, int] | None:
    """For a plain ``SELECT .. ORDER BY keys LIMIT n`` (no DISTINCT, OFFSET or set operation): the
    query without its LIMIT and with its ORDER BY keys appended to the output, and n; ``("", 0)``
    without a LIMIT; None otherwise."""
    try:
        q = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return None
    limit = q.args.get("limit")
    if limit is None and not q.args.get("offset") and not q.args.get("fetch"):
        return "", 0
    order = q.args.get("order")
    n = limit.expression if isinstance(limit, exp.Limit) else None
    if (not isinstance(q, exp.Select) or q.args.get("distinct") or q.args.get("offset") or not isinstance(order, exp.Order)
            or not isinstance(n, exp.Literal) or n.is_string or not n.this.isdigit() or int(n.this) < 1
            or len(q.selects) != width or any(isinstance(s, exp.Star) or s.find(exp.Star) for s in q.selects)):
        return None
    outputs = {s.alias.lower(): s.this for s in q.selects if isinstance(s, exp.Alias)}
    keys = []
    for o in order.expressions:
        k = o.this
        if isinstance(k, exp.Literal) and not k.is_string and k.this.isdigit() and 1 <= int(k.this) <= width:
            sel = q.selects[int(k.this) - 1]
            k = sel.this if isinstance(sel, exp.Alias) else sel
        elif isinstance(k, exp.Column) and not k.table and k.name.lower() in outputs:
            k = outputs[k.name.lower()]
        keys.append(k.copy())
    v = q.copy()
    v.set("limit", None)
    v.set("expressions", [*v.expressions, *(exp.alias_(k, f"_sluice_k{i}") for i, k in enumerate(keys))])
    return v.sql(dialect), int(n.this)


def _top_sorted(sql: str, dialect: str) -> bool:
    try:
        return isinstance(sqlglot.parse_one(sql, read=dialect).args.get("order"), exp.Order)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return False


def tie_break_variants(sql: str, width: int, dialect: str, *, need_limit: bool = True) -> tuple[str, str] | None:
    """``sql`` with its top-level ORDER BY extended by output positions 1..width, ascending
    (NULLS FIRST) and descending (NULLS LAST); None without a top-level ORDER BY (and, with
    ``need_limit``, a LIMIT or OFFSET)."""
    try:
        q = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return None
    order = q.args.get("order")
    if not isinstance(order, exp.Order) or (need_limit and not (q.args.get("limit") or q.args.get("offset"))):
        return None
    out = []
    for desc in (False, True):
        v = q.copy()
        keys = [exp.Ordered(this=exp.Literal.number(i), desc=desc, nulls_first=not desc)
                for i in range(1, width + 1)]
        v.args["order"].set("expressions", [*v.args["order"].expressions, *keys])
        out.append(v.sql(dialect))
    return out[0], out[1]


def _distinct_value(kind: str, i: int) -> Any:
    """The i-th of many distinct values of a kind (a parent row's own key, outside the pools)."""
    if kind in ("int", "num"):
        return 1000 + i
    if kind in ("date", "ts"):
        d = _dt.date(1990, 1, 1) + _dt.timedelta(days=i)
        return d if kind == "date" else _dt.datetime(d.year, d.month, d.day)
    if kind == "time":
        return _dt.time(i // 3600 % 24, i // 60 % 60, i % 60)
    if kind == "bool":
        return bool(i % 2)
    return f"key{i}"


def _exact(lits: set[str], kind: str) -> list[Any]:
    out: list[Any] = []
    for lit in lits:
        try:
            f = float(lit)
            out.append(int(f) if kind == "int" and f.is_integer() else f)
        except ValueError:
            if kind == "str":
                out.append(lit)
    return out


def negated_tables(sql: str, dialect: str) -> set[str]:
    """Tables a query reads only inside ``NOT EXISTS`` / ``NOT IN (subquery)`` (lower case).

    >>> sorted(negated_tables("SELECT a FROM t WHERE NOT EXISTS (SELECT 1 FROM u, t WHERE u.x = t.a) "
    ...                       "AND a NOT IN (SELECT y FROM v)", "duckdb"))
    ['u', 'v']
    """
    try:
        q = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return set()
    under: set[int] = set()
    for n in q.find_all(exp.Not):
        inner = n.this.unnest() if isinstance(n.this, exp.Expression) else None
        if isinstance(inner, exp.Exists) or (isinstance(inner, exp.In) and inner.args.get("query") is not None):
            under.update(id(t) for t in inner.find_all(exp.Table))
    inside = {t.name.lower() for t in q.find_all(exp.Table) if id(t) in under}
    outside = {t.name.lower() for t in q.find_all(exp.Table) if id(t) not in under}
    return inside - outside


def _limit(type_sql: str) -> float:
    """10^(p - s) for DECIMAL(p, s) (infinity for other types): the bound of what the column holds.

    >>> _limit("DECIMAL(5,2)"), _limit("INTEGER")
    (1000, inf)
    """
    t = type_sql.upper()
    if "DECIMAL" in t or "NUMERIC" in t:
        try:
            params = [int(p.this.this) for p in exp.DataType.build(type_sql).expressions]
        except (ValueError, AttributeError, TypeError):
            return float("inf")
        if params:
            return 10 ** (params[0] - (params[1] if len(params) > 1 else 0))
    return float("inf")


def _scale(type_sql: str) -> int:
    t = type_sql.upper()
    if "DECIMAL" in t or "NUMERIC" in t:
        try:
            dt = exp.DataType.build(type_sql)
            params = [int(p.this.this) for p in dt.expressions]
            return params[1] if len(params) > 1 else 0
        except (ValueError, AttributeError, TypeError):
            return 2
    return -1
