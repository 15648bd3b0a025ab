"""Embedded DuckDB backend (a file or ``:memory:``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from sqlsluice.databases.base import Backend, ColumnInfo, MaterializedResult, Plan, Result, Session
from sqlsluice.databases.catalog import Catalog, Column, ForeignKey, Table
from sqlsluice.errors import BackendError, QueryCanceled, SyntaxErrorSQL, UndefinedTable

_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_FIRST_WORD = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)(?:\s+([A-Za-z]+))?", re.S)


def command_words(sql: str) -> tuple[str, str]:
    """The first two keywords of a statement, upper-cased (``("CREATE", "TABLE")``)."""
    m = _FIRST_WORD.match(sql)
    if not m:
        return "", ""
    return (m.group(1) or "").upper(), (m.group(2) or "").upper()


def command_tag(sql: str, rowcount: int) -> str:
    """PostgreSQL-style command tag for a statement."""
    w1, w2 = command_words(sql)
    if w1 in ("SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "PRAGMA", "EXPLAIN", "FROM", "SUMMARIZE"):
        return f"SELECT {max(rowcount, 0)}"
    if w1 == "INSERT":
        return f"INSERT 0 {max(rowcount, 0)}"
    if w1 in ("UPDATE", "DELETE", "MERGE"):
        return f"{w1} {max(rowcount, 0)}"
    if w1 == "COPY":
        return f"COPY {max(rowcount, 0)}"
    if w1 in ("BEGIN", "START"):
        return "BEGIN"
    if w1 in ("COMMIT", "END"):
        return "COMMIT"
    if w1 in ("ROLLBACK", "ABORT"):
        return "ROLLBACK"
    if w1 in ("CREATE", "DROP", "ALTER") and w2:
        if w2 in ("OR", "TEMP", "TEMPORARY", "UNIQUE"):
            return f"{w1} TABLE" if "TABLE" in sql.upper()[:60] else w1
        return f"{w1} {w2}"
    return w1 or "OK"


def _map_error(e: Exception) -> BackendError:
    msg = str(e)
    if isinstance(e, duckdb.InterruptException):
        return QueryCanceled("canceling statement due to user request")
    if isinstance(e, duckdb.ParserException):
        err: BackendError = BackendError(msg, sqlstate=SyntaxErrorSQL.sqlstate)
        return err
    if isinstance(e, duckdb.CatalogException):
        code = UndefinedTable.sqlstate if "Table" in msg and "does not exist" in msg else "42703" \
            if "column" in msg.lower() else "42704"
        return BackendError(msg, sqlstate=code)
    if isinstance(e, duckdb.BinderException):
        return BackendError(msg, sqlstate="42703" if "column" in msg.lower() else "42804")
    if isinstance(e, duckdb.ConstraintException):
        return BackendError(msg, sqlstate="23505" if "unique" in msg.lower() or "primary" in msg.lower()
                            else "23502" if "NOT NULL" in msg else "23000")
    if isinstance(e, duckdb.ConversionException | duckdb.InvalidInputException):
        return BackendError(msg, sqlstate="22P02")
    if isinstance(e, duckdb.OutOfRangeException):
        return BackendError(msg, sqlstate="22003")
    if isinstance(e, duckdb.TransactionException):
        return BackendError(msg, sqlstate="25P02")
    if isinstance(e, duckdb.PermissionException):
        return BackendError(msg, sqlstate="42501")
    if "Division by zero" in msg:
        return BackendError(msg, sqlstate="22012")
    return BackendError(msg, sqlstate="XX000")


class DuckDBResult(Result):
    def __init__(self, cur: duckdb.DuckDBPyConnection, sql: str) -> None:
        self._cur = cur
        desc = cur.description
        self.columns = [ColumnInfo(d[0], str(d[1])) for d in desc] if desc else []
        self._count = 0
        self._done = False
        w1, _ = command_words(sql)
        # DML answers its affected-row count as a one-row result, unless it has RETURNING rows
        self._dml = w1 in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY") and not (
            _RETURNING.search(sql) and _RETURNING.search(re.sub(r"'(?:[^']|'')*'", "''", sql)))
        self._sql = sql
        if self._dml:
            # DuckDB returns the affected-row count as a one-row result
            row = cur.fetchone()
            self._count = int(row[0]) if row and row[0] is not None else 0
            self.columns = []
            self._done = True
        elif not self.columns:
            self._done = True
        self.rowcount = self._count

    @property
    def status(self) -> str:  # type: ignore[override]
        return command_tag(self._sql, self._count)

    def fetchmany(self, n: int = 1000) -> list[tuple[Any, ...]]:
        if self._done:
            return []
        try:
            rows = self._cur.fetchmany(n)
        except duckdb.Error as e:
            self._done = True
            raise _map_error(e) from e
        if len(rows) < n:
            self._done = True
        self._count += len(rows)
        self.rowcount = self._count
        return rows


class DuckDBSession(Session):
    def __init__(self, backend: DuckDBBackend) -> None:
        self.backend = backend
        self._con = backend._db.cursor()
        self._in_tx = False
        self._failed = False
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                timeout: float | None = None) -> Result:
        w1, _ = command_words(sql)
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._con.interrupt)
            timer.daemon = True
            timer.start()
        try:
            if params:
                self._con.execute(sql, list(params))
            else:
                self._con.execute(sql)
            result = DuckDBResult(self._con, sql)
        except duckdb.Error as e:
            if self._in_tx:
                self._failed = True
            err = _map_error(e)
            if timer is not None and not timer.is_alive() and isinstance(err, QueryCanceled):
                err = QueryCanceled("canceling statement due to statement timeout")
            raise err from e
        finally:
            if timer is not None:
                timer.cancel()
        if w1 in ("BEGIN", "START"):
            self._in_tx, self._failed = True, False
        elif w1 in ("COMMIT", "END", "ROLLBACK", "ABORT"):
            self._in_tx, self._failed = False, False
        return result

    def cancel(self) -> None:
        self._con.interrupt()

    @property
    def in_transaction(self) -> bool:
        return self._in_tx

    @property
    def transaction_failed(self) -> bool:
        return self._failed

    def close(self) -> None:
        try:
            if self._in_tx:
                self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        self._con.close()


class DuckDBBackend(Backend):
    dialect = "duckdb"

    def __init__(self, path: str = ":memory:", *, read_only: bool = False) -> None:
        self.path = path
        self.url = f"duckdb:///{path}"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as e:
            raise BackendError(f"cannot open DuckDB database {path}: {e}") from e

    def session(self) -> DuckDBSession:
        return DuckDBSession(self)

    def catalog(self, *, row_counts: bool = True) -> Catalog:
        con = self._db.cursor()
        try:
            tabs = con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() "
                "WHERE NOT internal AND database_name = current_database() "
                "ORDER BY schema_name, table_name").fetchall()
            cols = con.execute(
                "SELECT schema_name, table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE NOT internal AND database_name = current_database() "
                "ORDER BY schema_name, table_name, column_index").fetchall()
            cons = con.execute(
                "SELECT schema_name, table_name, constraint_type, constraint_column_names, "
                "referenced_table, referenced_column_names FROM duckdb_constraints() "
                "WHERE database_name = current_database()").fetchall()
            tables: dict[tuple[str, str], Table] = {}
            for s, t in tabs:
                tables[(s, t)] = Table(name=t, schema_name=s)
            for s, t, c, ty, nullable in cols:
                if (s, t) in tables:
                    tables[(s, t)].columns.append(Column(name=c, type=ty, nullable=bool(nullable)))
            for s, t, ctype, ccols, rtab, rcols in cons:
                tab = tables.get((s, t))
                if tab is None:
                    continue
                if ctype == "PRIMARY KEY":
                    tab.primary_key = list(ccols)
                elif ctype == "UNIQUE":
                    tab.unique.append(list(ccols))
                elif ctype == "FOREIGN KEY" and rtab:
                    tab.foreign_keys.append(ForeignKey(columns=list(ccols), ref_table=rtab,
                                                       ref_columns=list(rcols or [])))
                elif ctype == "NOT NULL":
                    for cn in ccols:
                        col = tab.column(cn)
                        if col is not None:
                            col.nullable = False
            if row_counts:
                for (s, t), tab in tables.items():
                    q = f'SELECT count(*) FROM "{s}"."{t}"'
                    tab.row_count = int(con.execute(q).fetchone()[0])  # type: ignore[index]
            return Catalog(tables=list(tables.values()), dialect="duckdb")
        finally:
            con.close()

    def execute_readonly(self, sql: str, *, timeout: float) -> MaterializedResult:
        with self.session() as s:
            s.execute("BEGIN TRANSACTION READ ONLY")
            try:
                r = s.execute(sql, timeout=timeout)
                rows = r.fetchall() if r.columns else []
                return MaterializedResult(columns=r.columns, rows=rows, status=r.status, rowcount=r.rowcount)
            finally:
                try:
                    s.execute("ROLLBACK")
                except BackendError:
                    pass

    def readonly_snapshot(self, sqls: Sequence[str], *, timeout: float) -> list[list[tuple[Any, ...]]]:
        with self.session() as s:
            s.execute("BEGIN TRANSACTION READ ONLY")  # one transaction: one snapshot
            try:
                out = []
                for q in sqls:
                    r = s.execute(q, timeout=timeout)
                    out.append(r.fetchall() if r.columns else [])
                return out
            finally:
                try:
                    s.execute("ROLLBACK")
                except BackendError:
                    pass

    def function_volatility(self, names: Sequence[str]) -> dict[str, str]:
        wanted = sorted({n.lower() for n in names})
        if not wanted:
            return {}
        con = self._db.cursor()
        try:
            rows = con.execute(
                "SELECT lower(function_name), max(CASE stability WHEN 'VOLATILE' THEN 3 "
                "WHEN 'CONSISTENT_WITHIN_QUERY' THEN 2 ELSE 1 END) FROM duckdb_functions() "
                "WHERE lower(function_name) IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [wanted]).fetchall()
        except duckdb.Error as e:
            raise _map_error(e) from e
        finally:
            con.close()
        return {str(n): {3: "v", 2: "s"}.get(int(v), "i") for n, v in rows}

    def output_columns(self, sql: str) -> list[ColumnInfo]:
        con = self._db.cursor()
        try:
            rel = con.sql(sql)
            return [ColumnInfo(n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
        except duckdb.Error as e:
            raise _map_error(e) from e
        finally:
            con.close()

    def explain(self, sql: str) -> Plan:
        con = self._db.cursor()
        try:
            rows = con.execute("EXPLAIN (FORMAT json) " + sql).fetchall()
        except duckdb.Error as e:
            raise _map_error(e) from e
        finally:
            con.close()
        raw = json.loads(rows[0][1])
        return Plan(cost=duckdb_plan_cost(raw), rows=_root_rows(raw), raw=raw, backend="duckdb")

    def close(self) -> None:
        self._db.close()


def _card(node: dict[str, Any]) -> float:
    v = (node.get("extra_info") or {}).get("Estimated Cardinality")
    try:
        return float(str(v).lstrip("~")) if v is not None else 0.0
    except ValueError:
        return 0.0


def duckdb_plan_cost(plan: Any) -> float:
    """DuckDB reports no cost; use the sum of estimated cardinalities over all operators
    (the C_out cost model), which grows with the work a plan does."""
    total = 0.0
    stack = list(plan) if isinstance(plan, list) else [plan]
    while stack:
        n = stack.pop()
        total += _card(n)
        stack.extend(n.get("children") or [])
    return total


def _root_rows(plan: Any) -> float | None:
    nodes = plan if isinstance(plan, list) else [plan]
    for n in nodes:
        c = _card(n)
        if c:
            return c
        for ch in n.get("children") or []:
            r = _root_rows(ch)
            if r:
                return r
    return None
