"""Resolve the ``schema`` argument of :func:`verify` into a :class:`Catalog`.

Accepted: a :class:`~sqlsluice.databases.Catalog`; ``{table: {column: type}}``; a DDL string;
a path to a DDL file; a live database URL (``duckdb:///...``, ``postgresql://...``); a SQLite
database file or ``sqlite:///path`` (its ``CREATE TABLE`` statements, read-only).

Annotated DDL (the BIRD schemas of the shared data) names a table's key in a comment just
above its CREATE TABLE (``-- 954 rows, primary key: (raceId)``); a table whose DDL declares
no key gets that one, so that generated databases respect it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog, Column, ForeignKey, Table
from sqlsluice.errors import ConfigError, SyntaxErrorSQL

SchemaLike = Catalog | str | Path | dict[str, dict[str, str]]
_URL_PREFIXES = ("duckdb://", "postgresql://", "postgres://", "postgresql+psycopg://")


def load_schema(schema: Any, dialect: str = "duckdb") -> Catalog:
    """Turn any accepted schema form into a catalog (names matched case-insensitively later)."""
    if isinstance(schema, Catalog):
        return schema
    if isinstance(schema, dict):
        return Catalog(tables=[Table(name=t, columns=[Column(name=c, type=ty) for c, ty in cols.items()])
                               for t, cols in schema.items()], dialect=dialect)
    if isinstance(schema, Path):
        return _from_file(schema, dialect)
    if isinstance(schema, str):
        text = schema.strip()
        if text.startswith("sqlite:///"):
            return _from_sqlite_file(Path(text[len("sqlite:///"):]), dialect)
        if text.startswith(_URL_PREFIXES):
            from sqlsluice.databases import connect

            backend = connect(text)
            try:
                return backend.catalog(row_counts=False)
            finally:
                backend.close()
        if "\n" not in text and not text.upper().startswith(("CREATE", "ALTER")) and len(text) < 4096:
            return _from_file(Path(text), dialect)
        return _from_ddl(text, dialect)
    raise ConfigError(f"schema must be a Catalog, a DDL string, a DDL file or a database URL, not {type(schema).__name__}")


def _from_file(path: Path, dialect: str) -> Catalog:
    with path.open("rb") as f:
        if f.read(16) == b"SQLite format 3\x00":
            return _from_sqlite_file(path, dialect)
    return _from_ddl(path.read_text(), dialect)


def _from_sqlite_file(path: Path, dialect: str) -> Catalog:
    """The tables of a SQLite database file, from the DDL SQLite keeps (opened read-only)."""
    import sqlite3

    if not path.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                               "AND name NOT LIKE 'sqlite_%'").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise ConfigError(f"cannot read the schema of SQLite database {path}: {e}") from e
    cat = _from_ddl(";\n".join(r[0] for r in rows), "sqlite")
    cat.dialect = dialect
    return cat


def _from_ddl(ddl: str, dialect: str) -> Catalog:
    try:
        cat = Catalog.from_ddl(ddl, dialect)
    except sqlglot.errors.ParseError as e:
        raise SyntaxErrorSQL(f"cannot parse schema DDL: {str(e).splitlines()[0]}") from e
    if not cat.tables:
        raise ConfigError("schema DDL defines no tables (expected CREATE TABLE statements)")
    _commented_keys(ddl, cat)
    return cat


_COMMENTED_KEY = re.compile(
    r"^--[^\n]*\bprimary key: \(([^)\n]+)\)[^\n]*\n(?:\s*--[^\n]*\n)*\s*CREATE\s+TABLE\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(?:\"([^\"]+)\"|`([^`]+)`|\[([^\]]+)\]|([\w.]+))", re.IGNORECASE | re.MULTILINE)


def _commented_keys(ddl: str, cat: Catalog) -> None:
    """Primary keys named in comments above CREATE TABLE, for tables whose DDL declares none.

    >>> c = _from_ddl("-- 2 rows, primary key: (id)\\nCREATE TABLE t (id integer, x text);", "sqlite")
    >>> c.tables[0].primary_key, c.tables[0].columns[0].nullable
    (['id'], False)
    """
    for m in _COMMENTED_KEY.finditer(ddl):
        name = next(g for g in m.groups()[1:] if g)
        t = cat.table(name.split(".")[-1])
        cols = [c.strip().strip('"`[]') for c in m.group(1).split(",")]
        if t is None or t.primary_key or not all(t.column(c) is not None for c in cols):
            continue
        t.primary_key = [t.column(c).name for c in cols]  # type: ignore[union-attr]
        for c in cols:
            t.column(c).nullable = False  # type: ignore[union-attr]


@functools.cache
def calcite_ddl() -> str:
    """DDL of the EMP/DEPT schema of Calcite's rule tests (shipped as package data)."""
    return resources.files("sqlsluice.verifiers").joinpath("data/calcite_emp_dept.sql").read_text()


def calcite_catalog() -> Catalog:
    return Catalog.from_ddl(calcite_ddl(), "duckdb")


def verieql_catalog(schema: dict[str, dict[str, str]], constraints: list[dict[str, Any]]) -> Catalog:
    """The catalog of one VeriEQL benchmark record (``schema`` + ``constraint`` fields)."""
    tables = {t.lower(): Table(name=t, columns=[Column(name=c, type=_verieql_type(ty)) for c, ty in cols.items()])
              for t, cols in schema.items()}

    def split(ref: str) -> tuple[Table | None, str]:
        t, _, c = ref.partition("__")
        return tables.get(t.lower()), c

    for con in constraints:
        if "not_null" in con:
            t, c = split(con["not_null"]["value"])
            col = t.column(c) if t else None
            if col is not None:
                col.nullable = False
        elif "primary" in con:
            refs = [split(x["value"]) for x in con["primary"]]
            if refs and refs[0][0] is not None:
                t0 = refs[0][0]
                t0.primary_key = [c for _, c in refs]
                for c in t0.primary_key:
                    col = t0.column(c)
                    if col is not None:
                        col.nullable = False
        elif "foreign" in con:
            (t1, c1), (t2, c2) = (split(x["value"]) for x in con["foreign"][:2])
            if t1 is not None and t2 is not None:
                t1.foreign_keys.append(ForeignKey(columns=[c1], ref_table=t2.name, ref_columns=[c2]))
    return Catalog(tables=list(tables.values()), dialect="duckdb")


def _verieql_type(t: str) -> str:
    try:
        return exp.DataType.build(t).sql("duckdb")
    except (sqlglot.errors.ParseError, ValueError):  # unknown type names fall back to text
        return "VARCHAR"
